//! 2×2 max-pooling with stride 1 (the DP MNIST CNN's pooling), fast on the CPU.
//!
//! libtorch's CPU `max_pool2d` kernel for NCHW tensors loops output by output and was about half of
//! the CNN's whole non-private step (≈ 12 ms of a 26 ms step on one thread for the 256×16×14×14
//! activation), while its backward is cheap. [`max_pool_2x2_s1`] computes the same result in two
//! parts:
//! 1. the argmax index of every 2×2 window, found by a plain loop over the input's memory (no
//!    gradient), with *exactly* libtorch's rule (`cpu_max_pool` in ATen's `MaxPoolKernel.cpp`):
//!    scan the window row by row and take an element when `v > max || v.is_nan()`, starting from
//!    max = −∞ at the window's first element — so ties go to the first maximum in scan order and a
//!    NaN wins like in libtorch;
//! 2. `gather` of the input at those indices, which autograd differentiates by scattering the
//!    output gradient back to the argmax positions — the same thing `max_pool2d`'s backward does
//!    with its saved indices.
//!
//! Both the values and the gradient therefore equal `max_pool2d(x, 2, 1)`'s: the values bit for bit,
//! the gradient up to the order in which overlapping windows' contributions are added (one input can
//! be the maximum of up to four windows). The tests compare the indices with
//! `max_pool2d_with_indices` exactly, including inputs full of ties (as after a ReLU, where a window
//! of zeros is a tie; the gradient there is zero anyway because ReLU's derivative at 0 is 0).
//! Other devices, dtypes and tiny inputs fall back to `max_pool2d`.
//!
//! The loop runs on libtorch's own OpenMP threads ([`crate::parallel`]), not on rayon: between
//! libtorch's OpenMP regions its threads still spin, and a rayon loop beside them made the whole W2
//! step slower at 2 threads than even a sequential loop (non-private 19.6 → 15.2 ms, ghost 26.2 →
//! 20.2 ms when the loop went sequential; criterion, same machine state).

use tch::{Device, Kind, Tensor};

/// `max_pool2d(x, kernel 2, stride 1, padding 0, dilation 1)` for `x` of shape `[n, c, h, w]`.
pub fn max_pool_2x2_s1(x: &Tensor) -> Tensor {
    let s = x.size();
    if x.device() != Device::Cpu || x.kind() != Kind::Float || s.len() != 4 || s[2] < 2 || s[3] < 2 {
        return x.max_pool2d([2, 2], [1, 1], [0, 0], [1, 1], false);
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let x = x.contiguous();
    let idx = tch::no_grad(|| argmax_2x2(&x, n * c, h as usize, w as usize));
    x.reshape([n, c, h * w]).gather(2, &idx.view([n, c, (h - 1) * (w - 1)]), false).view([n, c, h - 1, w - 1])
}

/// Per plane (`planes` of `h×w` in contiguous `x`), the flat index within the plane of each 2×2
/// window's maximum, by libtorch's rule (see the module doc). Returns `[planes·(h−1)·(w−1)]` int64.
fn argmax_2x2(x: &Tensor, planes: i64, h: usize, w: usize) -> Tensor {
    let (ho, wo) = (h - 1, w - 1);
    let out = Tensor::empty([planes * (ho * wo) as i64], (Kind::Int64, Device::Cpu));
    if planes == 0 {
        return out;
    }
    let len_in = planes as usize * h * w;
    // SAFETY: `x` is a contiguous f32 CPU tensor of `planes·h·w` elements that lives for this call
    // and is only read; `out` is a fresh contiguous int64 CPU tensor of `planes·ho·wo` elements that
    // nothing else references yet.
    let input = unsafe { std::slice::from_raw_parts(x.data_ptr() as *const f32, len_in) };
    let output =
        unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut i64, planes as usize * ho * wo) };
    // Planes in groups of PLANES_PER_TASK, each group one task on libtorch's threads.
    const PLANES_PER_TASK: usize = 32;
    crate::parallel::for_each_chunk_mut(output, PLANES_PER_TASK * ho * wo, |t, os| {
        let first_plane = t * PLANES_PER_TASK;
        for (q, o) in os.chunks_mut(ho * wo).enumerate() {
            argmax_plane(&input[(first_plane + q) * h * w..][..h * w], o, w, ho, wo);
        }
    });
    out
}

/// One plane's window argmaxes (see [`argmax_2x2`]).
fn argmax_plane(p: &[f32], o: &mut [i64], w: usize, ho: usize, wo: usize) {
    for i in 0..ho {
        for j in 0..wo {
            let first = i * w + j;
            let mut best = first;
            let mut m = f32::NEG_INFINITY;
            for k in [first, first + 1, first + w, first + w + 1] {
                let v = p[k];
                if v > m || v.is_nan() {
                    m = v;
                    best = k;
                }
            }
            o[i * wo + j] = best as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: &Tensor) {
        let (want, want_idx) = x.max_pool2d_with_indices([2, 2], [1, 1], [0, 0], [1, 1], false);
        let got = max_pool_2x2_s1(x);
        assert_eq!(got.size(), want.size());
        assert!(got.equal(&want), "values differ");
        let s = x.size();
        let idx = tch::no_grad(|| argmax_2x2(&x.contiguous(), s[0] * s[1], s[2] as usize, s[3] as usize));
        assert!(idx.equal(&want_idx.reshape([-1])), "argmax indices differ from libtorch's");
    }

    fn grads(x: &Tensor, go: &Tensor, fast: bool) -> Tensor {
        let x = x.detach().set_requires_grad(true);
        let h = x.relu();
        let o = if fast { max_pool_2x2_s1(&h) } else { h.max_pool2d([2, 2], [1, 1], [0, 0], [1, 1], false) };
        Tensor::run_backward(&[(o * go).sum(Kind::Float)], &[&x], false, false).remove(0)
    }

    #[test]
    fn equals_max_pool2d_values_indices_and_gradients() {
        let mut r = crate::rng::stream(Some(7), crate::rng::Stream::Data);
        use rand::RngExt;
        for (n, c, h, w) in [(3i64, 4i64, 14i64, 14i64), (2, 3, 5, 7), (1, 1, 2, 2)] {
            let numel = (n * c * h * w) as usize;
            // Continuous values, then values on a coarse grid (many ties), then after a ReLU.
            let cont: Vec<f32> = (0..numel).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
            let grid: Vec<f32> = (0..numel).map(|_| r.random_range(-2i32..3) as f32).collect();
            for v in [cont, grid] {
                let x = Tensor::from_slice(&v).view([n, c, h, w]);
                check(&x);
                check(&x.relu());
                let go: Vec<f32> =
                    (0..(n * c * (h - 1) * (w - 1)) as usize).map(|_| r.random::<f32>()).collect();
                let go = Tensor::from_slice(&go).view([n, c, h - 1, w - 1]);
                let (a, b) = (grads(&x, &go, true), grads(&x, &go, false));
                let diff = (&a - &b).abs().max().double_value(&[]);
                assert!(diff <= 1e-6, "gradient differs by {diff}");
            }
        }
    }

    #[test]
    fn nan_and_infinity_follow_libtorch() {
        let v = [f32::NAN, 1.0, 2.0, f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, f32::INFINITY, 3.0];
        let x = Tensor::from_slice(&v).view([1, 1, 3, 3]);
        let s = x.size();
        let (_, want_idx) = x.max_pool2d_with_indices([2, 2], [1, 1], [0, 0], [1, 1], false);
        let idx = argmax_2x2(&x, s[0] * s[1], 3, 3);
        assert!(idx.equal(&want_idx.reshape([-1])));
    }
}
