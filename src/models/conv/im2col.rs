//! im2col for the grad sampler, block by block: examples are padded and unfolded into one scratch
//! buffer per thread (reused across layers and steps), never for the whole batch at once (see the
//! module doc of [`super`]).

use super::{Conv2d, Geometry};
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

thread_local! {
    /// Scratch memory for padded input blocks and im2col blocks, reused across calls.
    static SCRATCH: RefCell<Option<Tensor>> = const { RefCell::new(None) };
}

/// Run `f` on a flat scratch tensor of `numel` elements with `like`'s kind and device. The buffer
/// is kept per thread and grown when needed; `f` must not call this again nor let the view escape.
pub(super) fn with_scratch<R>(numel: i64, like: &Tensor, f: impl FnOnce(&Tensor) -> R) -> R {
    SCRATCH.with(|cell| {
        let held = cell.borrow_mut().take();
        let buf = match held {
            Some(t)
                if t.numel() as i64 >= numel && t.kind() == like.kind() && t.device() == like.device() =>
            {
                t
            }
            _ => Tensor::empty([numel], (like.kind(), like.device())),
        };
        let r = f(&buf.narrow(0, 0, numel));
        *cell.borrow_mut() = Some(buf);
        r
    })
}

impl Conv2d {
    /// im2col of `a` (`[n, C, H, W]`): `[n, L, C·k_h·k_w]`, contiguous, the (c, kh, kw) order of
    /// `F.unfold`. Forms the whole batch at once; the grad sampler itself works in blocks.
    pub fn unfold(&self, a: &Tensor) -> Tensor {
        let g = self.geometry(a);
        let cols = Tensor::empty([g.k(), g.n, g.l()], (a.kind(), a.device()));
        self.for_blocks(a, g.n * g.k() * g.l(), true, |i0, b, blk| {
            cols.narrow(1, i0, b).copy_(blk);
        });
        cols.permute([1, 2, 0]).contiguous()
    }

    /// Calls `f(i0, b, cols)` for consecutive blocks of examples `i0..i0+b`, where `cols`
    /// (`[C·k_h·k_w, b, L]`, contiguous, in scratch memory valid only during the call) is the
    /// im2col of that block. Blocks hold at most `block_floats` column elements (at least one example).
    ///
    /// `example_major` only changes how the CPU path stores the block: `[b, C·k_h·k_w, L]` (each
    /// example's A_iᵀ compact, for the per-example products) instead of `[C·k_h·k_w, b, L]` (the
    /// block as one matrix, for the clipped sum); `f` sees the same `[C·k_h·k_w, b, L]` view.
    pub(super) fn for_blocks(
        &self,
        a: &Tensor,
        block_floats: i64,
        example_major: bool,
        mut f: impl FnMut(i64, i64, &Tensor),
    ) {
        let g = self.geometry(a);
        let (k, l) = (g.k(), g.l());
        if a.device() == Device::Cpu && a.kind() == Kind::Float {
            if g.n == 0 {
                return;
            }
            let b = (block_floats / (k * l).max(1)).clamp(1, g.n);
            let a = a.contiguous();
            // SAFETY: `a` is a contiguous f32 CPU tensor of n·C·H·W elements, alive and only read here.
            let x = unsafe {
                std::slice::from_raw_parts(a.data_ptr() as *const f32, (g.n * g.c * g.h * g.w) as usize)
            };
            return with_scratch(b * k * l, &a, |s| {
                let mut i0 = 0;
                while i0 < g.n {
                    let bb = b.min(g.n - i0);
                    let cols = s.narrow(0, 0, k * bb * l);
                    // SAFETY: `cols` is a contiguous f32 view of the scratch buffer, which nothing else
                    // touches during this call (see `with_scratch`).
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(cols.data_ptr() as *mut f32, (k * bb * l) as usize)
                    };
                    self.im2col_f32(x, &g, i0 as usize, bb as usize, example_major, out);
                    let view = if example_major {
                        cols.view([bb, k, l]).permute([1, 0, 2])
                    } else {
                        cols.view([k, bb, l])
                    };
                    f(i0, bb, &view);
                    i0 += bb;
                }
            });
        }
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let (hp, wp) = (g.hp, g.wp);
        self.for_padded_blocks(a, k * l, block_floats, |i0, bb, src, rest| {
            let v = src.as_strided(
                [g.c, g.kh, g.kw, bb, g.ho, g.wo],
                [hp * wp, dh * wp, dw, g.c * hp * wp, sh * wp, sw],
                src.storage_offset(),
            );
            let cols = rest.narrow(0, 0, k * bb * l);
            cols.view([g.c, g.kh, g.kw, bb, g.ho, g.wo]).copy_(&v);
            f(i0, bb, &cols.view([k, bb, l]));
        })
    }

    /// im2col of examples `i0..i0+bb` of `x` (contiguous `[n, C, H, W]`) into `out`, laid out
    /// `[C·k_h·k_w, bb, L]` (or `[bb, C·k_h·k_w, L]` when `example_major`):
    /// out[(c, κ_h, κ_w), e, (y, x)] = a[i0+e, c, s_h·y + d_h·κ_h − p_h, s_w·x + d_w·κ_w − p_w],
    /// zero outside the input (the padding). Rows of L outputs are filled in tasks of at least
    /// 4096 elements on libtorch's threads ([`crate::parallel`]); ≈ 8× faster than libtorch's copy
    /// from the strided 6-D view for the DP CNN's conv2 (the copy dominated the grad sampler there).
    pub(super) fn im2col_f32(
        &self,
        x: &[f32],
        g: &Geometry,
        i0: usize,
        bb: usize,
        example_major: bool,
        out: &mut [f32],
    ) {
        let (c, h, w) = (g.c as usize, g.h as isize, g.w as isize);
        let (kh, kw, ho, wo) = (g.kh as usize, g.kw as usize, g.ho as usize, g.wo as usize);
        let [sh, sw] = self.stride.map(|v| v as isize);
        let [dh, dw] = self.dilation.map(|v| v as isize);
        let [ph, pw] = self.padding.map(|v| v as isize);
        let (hw, chw, l, k) = ((h * w) as usize, c * (h * w) as usize, ho * wo, c * kh * kw);
        debug_assert_eq!(out.len(), k * bb * l);
        // Per row r = (c, κ_h, κ_w): the channel's offset, the input offsets (o_y, o_x) and the
        // output columns [x_lo, x_hi) whose input column s_w·x + o_x lies in [0, W). (A table, not
        // divisions per row: rows are as short as 25 elements.)
        let table: Vec<(usize, isize, isize, usize, usize)> = (0..k)
            .map(|r| {
                let (ci, ki, kj) = (r / (kh * kw), (r / kw) % kh, r % kw);
                let (oy, ox) = (ki as isize * dh - ph, kj as isize * dw - pw);
                let x_lo = if ox >= 0 { 0 } else { ((-ox + sw - 1) / sw) as usize }.min(wo);
                let x_hi = if w - ox <= 0 { 0 } else { ((w - ox + sw - 1) / sw) as usize }.clamp(x_lo, wo);
                (ci * hw, oy, ox, x_lo, x_hi)
            })
            .collect();
        let rows_per_task = 4096usize.div_ceil(l).max(1);
        crate::parallel::for_each_chunk_mut(out, rows_per_task * l, |task, rows| {
            let t0 = task * rows_per_task;
            let (mut r, mut e) = if example_major { (t0 % k, t0 / k) } else { (t0 / bb, t0 % bb) };
            for dst in rows.chunks_exact_mut(l) {
                let (coff, oy, ox, x_lo, x_hi) = table[r];
                let plane = &x[(i0 + e) * chw + coff..][..hw];
                for (y, d) in dst.chunks_exact_mut(wo).enumerate() {
                    let iy = y as isize * sh + oy;
                    if iy < 0 || iy >= h {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy * w) as usize..][..w as usize];
                    d[..x_lo].fill(0.0);
                    d[x_hi..].fill(0.0);
                    // For x in [x_lo, x_hi) the input column s_w·x + o_x lies in [0, W).
                    let first = (x_lo as isize * sw + ox) as usize;
                    if sw == 1 {
                        d[x_lo..x_hi].copy_from_slice(&src[first..first + (x_hi - x_lo)]);
                    } else {
                        for (v, s) in d[x_lo..x_hi].iter_mut().zip(src[first..].iter().step_by(sw as usize)) {
                            *v = *s;
                        }
                    }
                }
                // Next row in storage order.
                if example_major {
                    r += 1;
                    if r == k {
                        r = 0;
                        e += 1;
                    }
                } else {
                    e += 1;
                    if e == bb {
                        e = 0;
                        r += 1;
                    }
                }
            }
        });
    }

    /// Calls `f(i0, b, xp, rest)` for consecutive blocks of examples, where `xp` (`[b, C, H_p, W_p]`)
    /// is the zero-padded input of the block (a view of `a` when there is no padding) and `rest` a
    /// scratch region of `b · per_example` elements; both live in per-thread scratch memory and are
    /// valid only during the call. `b` is chosen so that `b · per_example ≤ block_floats` (b ≥ 1).
    pub(super) fn for_padded_blocks(
        &self,
        a: &Tensor,
        per_example: i64,
        block_floats: i64,
        mut f: impl FnMut(i64, i64, &Tensor, &Tensor),
    ) {
        let g = self.geometry(a);
        if g.n == 0 {
            return;
        }
        let b = (block_floats / per_example.max(1)).clamp(1, g.n);
        let [ph, pw] = self.padding;
        let (hp, wp) = (g.hp, g.wp);
        let padded = ph > 0 || pw > 0;
        let pad_len = if padded { b * g.c * hp * wp } else { 0 };
        let a = a.contiguous();
        with_scratch(pad_len + b * per_example, &a, |s| {
            let mut i0 = 0;
            while i0 < g.n {
                let bb = b.min(g.n - i0);
                let src = if padded {
                    let mut p = s.narrow(0, 0, bb * g.c * hp * wp).view([bb, g.c, hp, wp]);
                    let _ = p.zero_();
                    p.narrow(2, ph, g.h).narrow(3, pw, g.w).copy_(&a.narrow(0, i0, bb));
                    p
                } else {
                    a.narrow(0, i0, bb)
                };
                f(i0, bb, &src, &s.narrow(0, pad_len, bb * per_example));
                i0 += bb;
            }
        })
    }
}
