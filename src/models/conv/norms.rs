//! Per-sample squared norms of a convolution's weight gradient without keeping the gradients: the
//! three exact routes (ghost Gram of im2col, Gram from shifted blocks of the input's channel Gram
//! matrix, formed and dropped block by block) and the cost model that picks one (see the module
//! doc of [`super`]).

use super::{Conv2d, BLOCK_FLOATS, COPY_COST, SHIFT_SUM_COST};
use crate::models::layer::row_sq_norms;
use tch::{Kind, Tensor};

/// Per-example costs of the three norm routes, in multiply-add equivalents (see
/// [`GradSampler::ghost_sq_norm`] for [`Conv2d`]).
pub(super) struct NormCosts {
    pub(super) formed: i64,
    pub(super) gram: i64,
    pub(super) shifted: i64,
}

pub(super) enum NormRoute {
    Formed,
    Gram,
    Shifted,
}

impl NormCosts {
    pub(super) fn cheapest(&self) -> NormRoute {
        if self.shifted <= self.gram && self.shifted <= self.formed {
            NormRoute::Shifted
        } else if self.gram <= self.formed {
            NormRoute::Gram
        } else {
            NormRoute::Formed
        }
    }
}

impl Conv2d {
    /// ‖∇W_i‖² = ⟨g_iᵀ g_i, A_i A_iᵀ⟩ with A_i A_iᵀ taken from the Gram matrix of the padded input
    /// over channels, S_i = X_iᵀ X_i (`[P, P]`, P = H_p·W_p positions), without im2col:
    /// (A_i A_iᵀ)[p, q] = Σ_{(κ_h, κ_w)} S_i[s·p + d·κ, s·q + d·κ] — the sum of k_h·k_w strided
    /// shifted sub-blocks of S_i. Costs 2P²C + 2L²C_out + k²L² per example.
    pub fn shifted_gram_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        self.shifted_gram_sq_norm_blocked(a, g, BLOCK_FLOATS)
    }

    pub(super) fn shifted_gram_sq_norm_blocked(&self, a: &Tensor, g: &Tensor, block_floats: i64) -> Tensor {
        let geo = self.geometry(a);
        let g3 = Self::g3(g);
        let (hp, wp) = (geo.hp, geo.wp);
        let p = hp * wp;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let l = geo.l();
        let mut parts = Vec::new();
        self.for_padded_blocks(a, p * p, block_floats, |i0, b, xp, rest| {
            let x2 = xp.reshape([b, geo.c, p]);
            let s = rest.view([b, p, p]);
            let _ = x2.transpose(1, 2).bmm_out(&s, &x2);
            let shifted = s.as_strided(
                [b, geo.kh, geo.kw, geo.ho, geo.wo, geo.ho, geo.wo],
                [p * p, dh * wp * p + dh * wp, dw * p + dw, sh * wp * p, sw * p, sh * wp, sw],
                s.storage_offset(),
            );
            let aa = shifted.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float).reshape([b, l, l]);
            let gb = g3.narrow(0, i0, b);
            let gg = gb.transpose(1, 2).bmm(&gb);
            parts.push((gg * aa).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float));
        });
        self.bias_sq_norm(&g3, Tensor::cat(&parts, 0))
    }

    pub(super) fn norm_costs(&self, a: &Tensor) -> NormCosts {
        let geo = self.geometry(a);
        let co = self.weight.size()[0];
        let (k, l) = (geo.k(), geo.l());
        let p = geo.hp * geo.wp;
        NormCosts {
            formed: co * k * l + COPY_COST * k * l,
            gram: l * l * (co + k) + COPY_COST * k * l,
            shifted: p * p * geo.c + l * l * co + SHIFT_SUM_COST * geo.kh * geo.kw * l * l,
        }
    }

    pub(super) fn g3(g: &Tensor) -> Tensor {
        let s = g.size();
        g.reshape([s[0], s[1], -1])
    }

    pub(super) fn bias_sq_norm(&self, g3: &Tensor, w: Tensor) -> Tensor {
        if self.bias.is_some() {
            w + row_sq_norms(&g3.sum_dim_intlist(2, false, Kind::Float))
        } else {
            w
        }
    }

    /// ‖∇W_i‖² by the Gram-matrix formula ⟨g_iᵀ g_i, A_i A_iᵀ⟩, plus the bias part.
    pub fn gram_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        self.gram_sq_norm_blocked(a, g, BLOCK_FLOATS)
    }

    pub(super) fn gram_sq_norm_blocked(&self, a: &Tensor, g: &Tensor, block_floats: i64) -> Tensor {
        let g3 = Self::g3(g);
        let mut parts = Vec::new();
        self.for_blocks(a, block_floats, true, |i0, b, cols| {
            let gb = g3.narrow(0, i0, b);
            let gg = gb.transpose(1, 2).bmm(&gb);
            let at = cols.permute([1, 2, 0]);
            let aa = at.bmm(&cols.permute([1, 0, 2]));
            parts.push((gg * aa).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float));
        });
        self.bias_sq_norm(&g3, Tensor::cat(&parts, 0))
    }

    /// ‖∇W_i‖² from g_i A_i formed block by block in temporary memory, plus the bias part.
    pub fn formed_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        self.formed_sq_norm_blocked(a, g, BLOCK_FLOATS)
    }

    pub(super) fn formed_sq_norm_blocked(&self, a: &Tensor, g: &Tensor, block_floats: i64) -> Tensor {
        let g3 = Self::g3(g);
        let mut parts = Vec::new();
        self.for_blocks(a, block_floats, true, |i0, b, cols| {
            let m = g3.narrow(0, i0, b).bmm(&cols.permute([1, 2, 0]));
            parts.push(row_sq_norms(&m));
        });
        self.bias_sq_norm(&g3, Tensor::cat(&parts, 0))
    }
}
