//! The next-song model shaped like Deezer's MF-Transformer (APC-RTA, Bendada et al. SIGIR 2023, as
//! used by Baumann & Mendler-Dünner; recsys-notes.md §1.2–1.4), with exact per-playlist gradients.
//!
//! ```text
//! tokens [n, T] (song j ↦ j+1, 0 = PAD, left-padded so positions are right-aligned)
//!   → x = E[tokens]·m + P                       (tied table E [V+1, d], P [T, d], m = non-pad mask)
//!   → x = LN1(x + W_o·MHA_causal(W_qkv x));  x = LN2(x);  x = LN3(x + W2·GELU(W1 x))   (post-norm)
//!   → h_t;  score(j | context) = ⟨h_t, E[j+1]⟩  (the same table: no output layer, no bias)
//! ```
//! Loss of one training window (APC-RTA `compute_loss_batch`):
//! ℓ = mean_{t: m_t=1} −log σ(⟨h_t, e_{y_t}⟩) + mean_{k} −log σ(−⟨h̄, e_{n_k}⟩), with h̄ the mean of
//! h_t over non-pad positions and negatives n_k = `n_easy` uniform candidates plus the `n_hard`
//! candidates (of `n_candidates` uniform draws outside the playlist) with the largest ⟨e, h̄⟩.
//! No dropout (APC-RTA: 0.13) and no ALS initialisation (it would read the data outside DP).
//!
//! # Per-record gradients
//! A record is one playlist contributing `w` windows (rows `i·w .. (i+1)·w` of a [`Batch`]);
//! its loss is ℓ_i = Σ of its windows' losses. One backward from Σ_i ℓ_i to every DP layer's
//! output gives g; each layer's grad sampler then sees the record's `w` windows as one longer
//! sequence (`[n_rec, w·T, ·]`), which is exact because ∇W_i = Σ_{windows, t} g a^T.
//! **The tied embedding** is one lookup of the concatenated ids `[inputs | targets | negatives]`
//! (`[n, 2T+K]`), so its per-record gradient sums the input lookups and the output scoring rows:
//! ∇E_i[v] = Σ_{u: id_u = v} g_{i,u}, and its norm is the ghost norm
//! ‖∇E_i‖² = Σ_{u,u'} [id_u = id_{u'}] ⟨g_u, g_{u'}⟩ (pairs of equal ids; never a `[V, d]` tensor per
//! record), the clipped sum an `index_add` of c_i g_{i,u} ([`crate::models::Embedding`]).

use rand::RngExt;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::RecsysError;
use crate::models::layer::{sq_norms_of, weighted_sum};
use crate::models::{Embedding, GradSampler, LayerNorm, Linear, PositionEmbedding};
use crate::rng::ChaCha20Rng;

/// Padding token.
pub const PAD: i64 = 0;
/// Score added to masked attention keys (finite, so an all-masked row stays finite).
const MASKED: f64 = -1e9;

/// Sizes of the model and of its sampled loss.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RecShape {
    /// Width d (MF-Transformer: 128; smaller here for 2 cores).
    pub dim: i64,
    /// Attention heads (d must be a multiple).
    pub heads: i64,
    /// Feed-forward width (MF-Transformer: 4096).
    pub ff: i64,
    /// Input window T (MF-Transformer: windows of 11 songs = 10 inputs + the next).
    pub window: i64,
    /// Uniform candidates for negatives per window (APC-RTA: 1000).
    pub n_candidates: i64,
    /// Easy negatives: the first candidates (APC-RTA: 10).
    pub n_easy: i64,
    /// Hard negatives: the top candidates by ⟨e, h̄⟩ (APC-RTA: 40).
    pub n_hard: i64,
}

impl Default for RecShape {
    fn default() -> Self {
        RecShape { dim: 32, heads: 4, ff: 128, window: 10, n_candidates: 200, n_easy: 5, n_hard: 20 }
    }
}

impl RecShape {
    pub fn check(&self) -> Result<(), RecsysError> {
        for (field, v) in [
            ("dim", self.dim),
            ("heads", self.heads),
            ("ff", self.ff),
            ("window", self.window),
            ("n_candidates", self.n_candidates),
        ] {
            if v <= 0 {
                return Err(RecsysError::Invalid { field, value: v.to_string(), reason: "must be positive" });
            }
        }
        if self.dim % self.heads != 0 {
            return Err(RecsysError::Invalid {
                field: "dim",
                value: self.dim.to_string(),
                reason: "must be a multiple of heads",
            });
        }
        if self.n_easy < 0 || self.n_hard < 0 || self.n_easy + self.n_hard == 0 {
            return Err(RecsysError::Invalid {
                field: "n_easy/n_hard",
                value: format!("{}/{}", self.n_easy, self.n_hard),
                reason: "must be ≥ 0 with a positive sum",
            });
        }
        if self.n_easy > self.n_candidates || self.n_hard > self.n_candidates {
            return Err(RecsysError::Invalid {
                field: "n_candidates",
                value: self.n_candidates.to_string(),
                reason: "must be ≥ n_easy and ≥ n_hard",
            });
        }
        Ok(())
    }
}

/// Training windows of a batch of records; rows `i·w .. (i+1)·w` belong to record i.
#[derive(Debug)]
pub struct Batch {
    /// `[n_rec·w, T]` input tokens, left-padded with [`PAD`].
    pub inputs: Tensor,
    /// `[n_rec·w, T]` next-song tokens (PAD where the input is PAD).
    pub targets: Tensor,
    /// `[n_rec·w, K]` negative tokens.
    pub negatives: Tensor,
    /// Windows per record.
    pub w: i64,
}

impl Batch {
    pub fn records(&self) -> i64 {
        self.inputs.size()[0] / self.w
    }
    /// The rows of records `start .. start+len`.
    pub fn narrow(&self, start: i64, len: i64) -> Batch {
        let (s, l) = (start * self.w, len * self.w);
        Batch {
            inputs: self.inputs.narrow(0, s, l),
            targets: self.targets.narrow(0, s, l),
            negatives: self.negatives.narrow(0, s, l),
            w: self.w,
        }
    }
}

/// Parameters in [`RecModel::parameters`] order: embedding, position, W_qkv (w, b), W_o (w, b),
/// LN1, LN2, W1, W2, LN3 (γ, β each).
#[derive(Debug)]
pub struct RecModel {
    pub shape: RecShape,
    /// Songs in the catalogue (ids `0..n_items`, tokens `1..=n_items`).
    pub n_items: i64,
    emb: Embedding,
    pos: PositionEmbedding,
    qkv: Linear,
    out: Linear,
    ln1: LayerNorm,
    ln2: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    ln3: LayerNorm,
}

/// Layer indices in the order of [`RecModel::samplers`].
const EMB: usize = 0;
const POS: usize = 1;
const N_LAYERS: usize = 9;

/// What one forward pass records for per-record gradients: per layer `(a, z)`.
type Tape = Vec<Option<(Tensor, Tensor)>>;

impl RecModel {
    /// A freshly initialised model for `n_items` songs. Init from `rng`: E, P ~ N(0, 1/d) (scores
    /// of order 1 against a LayerNorm output), PAD row 0; Linear U(±1/√fan_in); LN γ = 1, β = 0.
    pub fn new(n_items: i64, shape: RecShape, rng: &mut ChaCha20Rng) -> Result<RecModel, RecsysError> {
        shape.check()?;
        if n_items < 1 {
            return Err(RecsysError::Invalid {
                field: "n_items",
                value: n_items.to_string(),
                reason: "must be ≥ 1",
            });
        }
        let d = shape.dim;
        let sd = 1.0 / (d as f64).sqrt();
        let normal = |rng: &mut ChaCha20Rng, n: i64, zero_first: bool| {
            let v: Vec<f32> = (0..n * d)
                .map(|k| {
                    if zero_first && k < d {
                        0.0
                    } else {
                        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                        (z * sd) as f32
                    }
                })
                .collect();
            leaf(&v, &[n, d])
        };
        let emb = Embedding { weight: normal(rng, n_items + 1, true) };
        let pos = PositionEmbedding { weight: normal(rng, shape.window, false) };
        let linear = |rng: &mut ChaCha20Rng, din: i64, dout: i64| {
            let b = 1.0 / (din as f64).sqrt();
            let mut u = |n: i64| -> Tensor {
                let v: Vec<f32> = (0..n).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * b) as f32).collect();
                leaf(&v, &[n])
            };
            let w = u(din * dout).view([dout, din]).detach().set_requires_grad(true);
            Linear { weight: w, bias: Some(u(dout)) }
        };
        let ln = || LayerNorm {
            weight: leaf(&vec![1.0; d as usize], &[d]),
            bias: leaf(&vec![0.0; d as usize], &[d]),
            eps: 1e-5,
        };
        let qkv = linear(rng, d, 3 * d);
        let out = linear(rng, d, d);
        let ff1 = linear(rng, d, shape.ff);
        let ff2 = linear(rng, shape.ff, d);
        Ok(RecModel { shape, n_items, emb, pos, qkv, out, ln1: ln(), ln2: ln(), ff1, ff2, ln3: ln() })
    }

    /// The DP layers in a fixed order (index = tape slot).
    fn samplers(&self) -> [&dyn GradSampler; N_LAYERS] {
        [&self.emb, &self.pos, &self.qkv, &self.out, &self.ln1, &self.ln2, &self.ff1, &self.ff2, &self.ln3]
    }

    /// All trainable parameters, layer by layer.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.samplers().iter().flat_map(|s| s.params().into_iter().map(|p| p.shallow_clone())).collect()
    }

    pub fn num_params(&self) -> i64 {
        self.parameters().iter().map(|p| p.numel() as i64).sum()
    }

    /// The song embedding table without the PAD row: `[n_items, d]`.
    pub fn item_table(&self) -> Tensor {
        self.emb.weight.narrow(0, 1, self.n_items)
    }

    fn apply(&self, k: usize, x: &Tensor, tape: &mut Option<&mut Tape>) -> Tensor {
        let (a, z) = self.samplers()[k].forward(x);
        if let Some(t) = tape.as_deref_mut() {
            t[k] = Some((a, z.shallow_clone()));
        }
        z
    }

    /// The encoder on embedded inputs `e` (`[n, T, d]`, PAD rows zero) with mask `m` (`[n, T]`).
    fn trunk(&self, e: &Tensor, m: &Tensor, tape: &mut Option<&mut Tape>) -> Tensor {
        let x = self.apply(POS, e, tape);
        let qkv = self.apply(2, &x, tape);
        let o = causal_attention(&qkv, m, self.shape.heads);
        let x = self.apply(4, &x.g_add(&self.apply(3, &o, tape)), tape);
        let x = self.apply(5, &x, tape);
        let f = self.apply(6, &x, tape).gelu("none");
        self.apply(8, &x.g_add(&self.apply(7, &f, tape)), tape)
    }

    /// Hidden states `[n, T, d]` of input tokens `[n, T]` (no tape; gradients flow).
    pub fn encode(&self, inputs: &Tensor) -> Tensor {
        let m = inputs.ne(PAD).to_kind(Kind::Float);
        let (_, e) = self.emb.forward(inputs);
        self.trunk(&(e * m.unsqueeze(-1)), &m, &mut None)
    }

    /// Per-window losses `[n_rows]` of `batch`; with a tape, records every layer's `(a, z)`.
    fn window_losses(&self, b: &Batch, tape: &mut Option<&mut Tape>) -> Tensor {
        let t = self.shape.window;
        let k = b.negatives.size()[1];
        let ids = Tensor::cat(&[&b.inputs, &b.targets, &b.negatives], 1);
        let z = self.apply(EMB, &ids, tape);
        let m = b.inputs.ne(PAD).to_kind(Kind::Float);
        let e_in = z.narrow(1, 0, t) * m.unsqueeze(-1);
        let e_tgt = z.narrow(1, t, t);
        let e_neg = z.narrow(1, 2 * t, k);
        let h = self.trunk(&e_in, &m, tape);
        let count = m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
        let pos = ((&h * &e_tgt).sum_dim_intlist(-1, false, Kind::Float).neg().softplus() * &m)
            .sum_dim_intlist(1, false, Kind::Float)
            / &count;
        let hbar = (&h * m.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Float) / count.unsqueeze(-1);
        let neg = e_neg.bmm(&hbar.unsqueeze(-1)).squeeze_dim(-1).softplus().mean_dim(1, false, Kind::Float);
        pos + neg
    }

    /// Per-record losses `[n_rec]` (sum of each record's windows).
    pub fn record_losses(&self, b: &Batch) -> Tensor {
        self.window_losses(b, &mut None).view([-1, b.w]).sum_dim_intlist(1, false, Kind::Float)
    }

    /// Forward with a tape and backward from Σ ℓ_i to every layer output: per layer `(a, g)`
    /// regrouped per record (`[n_rec, w·…, ·]`; the position layer's g summed over windows).
    fn record_backprops(&self, b: &Batch) -> (Vec<(Tensor, Tensor)>, f64) {
        let mut tape: Tape = (0..N_LAYERS).map(|_| None).collect();
        let loss = self.window_losses(b, &mut Some(&mut tape)).sum(Kind::Float);
        let entries: Vec<(Tensor, Tensor)> =
            tape.into_iter().map(|e| e.expect("every layer applied")).collect();
        let zs: Vec<&Tensor> = entries.iter().map(|(_, z)| z).collect();
        let gs = Tensor::run_backward(&[&loss], &zs, false, false);
        let n = b.records();
        let out = entries
            .into_iter()
            .zip(gs)
            .enumerate()
            .map(|(k, ((a, _), g))| {
                let s = g.size();
                if k == POS {
                    return (a, g.view([n, b.w, s[1], s[2]]).sum_dim_intlist(1, false, Kind::Float));
                }
                let a = if a.dim() == 2 {
                    a.reshape([n, -1])
                } else {
                    a.reshape([n, -1, *a.size().last().unwrap()])
                };
                (a, g.reshape([n, -1, s[s.len() - 1]]))
            })
            .collect();
        (out, loss.double_value(&[]))
    }

    /// Materialised per-record gradients `[n_rec, *param]` for every parameter (the embedding's is
    /// `[n_rec, V+1, d]`: for tests on small catalogues only).
    pub fn record_grads(&self, b: &Batch) -> Vec<Tensor> {
        let (ag, _) = self.record_backprops(b);
        tch::no_grad(|| self.samplers().iter().zip(&ag).flat_map(|(s, (a, g))| s.grad_sample(a, g)).collect())
    }

    /// Per-record squared gradient norms `[n_rec]`: the embedding's by its ghost norm (pairs of
    /// equal ids), the others materialised (they are small).
    pub fn record_sq_norms(&self, b: &Batch) -> Tensor {
        let (ag, _) = self.record_backprops(b);
        tch::no_grad(|| {
            let mut sq = self.emb.ghost_sq_norm(&ag[EMB].0, &ag[EMB].1);
            for (s, (a, g)) in self.samplers().iter().zip(&ag).skip(1) {
                sq += sq_norms_of(&s.grad_sample(a, g));
            }
            sq
        })
    }

    /// Clip each record's whole gradient to norm ≤ `c` and sum: Σ_i min(1, C/‖∇ℓ_i‖) ∇ℓ_i per
    /// parameter, plus Σ ℓ_i and the unclipped norms `[n_rec]`.
    pub fn clipped_sum(&self, b: &Batch, c: f64) -> (Vec<Tensor>, f64, Tensor) {
        let (ag, loss) = self.record_backprops(b);
        tch::no_grad(|| {
            let samplers = self.samplers();
            let mut sq = self.emb.ghost_sq_norm(&ag[EMB].0, &ag[EMB].1);
            let mut kept = Vec::with_capacity(N_LAYERS);
            for (s, (a, g)) in samplers.iter().zip(&ag).skip(1) {
                let gs = s.grad_sample(a, g);
                sq += sq_norms_of(&gs);
                kept.push(gs);
            }
            let f = (sq.rsqrt() * c).clamp_max(1.0);
            let mut sums = self.emb.clipped_sum(&ag[EMB].0, &ag[EMB].1, &f);
            for gs in &kept {
                sums.extend(gs.iter().map(|g| weighted_sum(g, &f)));
            }
            (sums, loss, sq.sqrt())
        })
    }

    /// The one-record-at-a-time oracle: a full backward per record, stacked `[n_rec, *param]`.
    pub fn naive_record_grads(&self, b: &Batch) -> Vec<Tensor> {
        let params = self.parameters();
        let mut per: Vec<Vec<Tensor>> = params.iter().map(|_| Vec::new()).collect();
        for i in 0..b.records() {
            let loss = self.record_losses(&b.narrow(i, 1)).sum(Kind::Float);
            for (v, g) in per.iter_mut().zip(Tensor::run_backward(&[&loss], &params, false, false)) {
                v.push(g);
            }
        }
        per.into_iter().map(|v| Tensor::stack(&v, 0)).collect()
    }

    /// Σ ∇ℓ_i of the batch by ordinary autograd (the non-private gradient), and Σ ℓ_i.
    pub fn sum_grads(&self, b: &Batch) -> (Vec<Tensor>, f64) {
        let loss = self.record_losses(b).sum(Kind::Float);
        let gs = Tensor::run_backward(&[&loss], &self.parameters(), false, false);
        (gs, loss.double_value(&[]))
    }

    /// Scores `[n, n_items]` of every song after the last position of `inputs` (`[n, T]`, the last
    /// column a real song), under `no_grad`.
    pub fn scores(&self, inputs: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let h = self.encode(inputs);
            let last = h.select(1, self.shape.window - 1);
            last.mm(&self.item_table().transpose(0, 1))
        })
    }

    /// Negatives `[rows, n_easy + n_hard]` for the windows `inputs` (`[rows, T]`): per row,
    /// `n_candidates` uniform song tokens outside `exclude[row]`, the first `n_easy` of them plus
    /// the `n_hard` with the largest ⟨e, h̄⟩ under the current model (APC-RTA).
    pub fn negatives(&self, inputs: &Tensor, exclude: &[&[u32]], rng: &mut ChaCha20Rng) -> Tensor {
        let rows = exclude.len() as i64;
        let nc = self.shape.n_candidates;
        let mut cand = Vec::with_capacity((rows * nc) as usize);
        for ex in exclude {
            let set: std::collections::HashSet<u32> = ex.iter().copied().collect();
            let mut got = 0;
            let mut tries = 0;
            while got < nc {
                let s = rng.random_range(0..self.n_items as u32);
                tries += 1;
                if !set.contains(&s) || tries > 100 * nc {
                    cand.push(s as i64 + 1);
                    got += 1;
                }
            }
        }
        let cand = Tensor::from_slice(&cand).view([rows, nc]);
        let easy = cand.narrow(1, 0, self.shape.n_easy);
        if self.shape.n_hard == 0 {
            return easy;
        }
        tch::no_grad(|| {
            let h = self.encode(inputs);
            let m = inputs.ne(PAD).to_kind(Kind::Float);
            let hbar = (&h * m.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Float)
                / m.sum_dim_intlist(1, true, Kind::Float).clamp_min(1.0);
            let e = Tensor::embedding(&self.emb.weight, &cand, -1, false, false);
            let s = e.bmm(&hbar.unsqueeze(-1)).squeeze_dim(-1);
            let (_, idx) = s.topk(self.shape.n_hard, 1, true, true);
            Tensor::cat(&[easy, cand.gather(1, &idx, false)], 1)
        })
    }
}

fn leaf(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).reshape(shape).to_device(Device::Cpu).detach().set_requires_grad(true)
}

/// Causal multi-head attention of a fused projection `qkv` (`[n, T, 3d]`) with key mask `m`
/// (`[n, T]`): query t sees keys t' ≤ t that are not PAD (APC-RTA's mask `triu(ones) − eye`).
pub fn causal_attention(qkv: &Tensor, m: &Tensor, heads: i64) -> Tensor {
    let s = qkv.size();
    let (n, t, d) = (s[0], s[1], s[2] / 3);
    let dh = d / heads;
    let split = |k: i64| qkv.narrow(2, k * d, d).reshape([n, t, heads, dh]).transpose(1, 2);
    let (q, k, v) = (split(0), split(1), split(2));
    let causal = Tensor::ones([t, t], (Kind::Float, qkv.device())).triu(1) * MASKED;
    let bias = ((m - 1.0) * -MASKED).view([n, 1, 1, t]) + causal.view([1, 1, t, t]);
    let p = (q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt() + bias).softmax(-1, Kind::Float);
    p.matmul(&v).transpose(1, 2).reshape([n, t, d])
}

/// Left-pad `songs` (at most `t`) into a row of `t` tokens (song j ↦ j+1).
pub fn left_pad(songs: &[u32], t: usize) -> Vec<i64> {
    let mut row = vec![PAD; t];
    let off = t - songs.len().min(t);
    for (k, s) in songs.iter().rev().take(t).rev().enumerate() {
        row[off + k] = *s as i64 + 1;
    }
    row
}

/// One random training window of a playlist (APC-RTA `SequentialTrainDataset`): the whole
/// playlist if it has ≤ T+1 songs, else T+1 consecutive songs from a uniform start in
/// `[0, L − T − 1)` (numpy's exclusive bound: the last window is never drawn; at least start 0).
/// Returns (input row, target row), both left-padded to T.
pub fn window(playlist: &[u32], t: usize, rng: &mut ChaCha20Rng) -> (Vec<i64>, Vec<i64>) {
    let l = playlist.len();
    let w = if l <= t + 1 {
        playlist
    } else {
        let start = rng.random_range(0..(l - t - 1).max(1));
        &playlist[start..start + t + 1]
    };
    (left_pad(&w[..w.len() - 1], t), left_pad(&w[1..], t))
}

/// A batch of `w` random windows for each playlist in `records`, with negatives.
pub fn make_batch(model: &RecModel, records: &[&[u32]], w: usize, rng: &mut ChaCha20Rng) -> Batch {
    let t = model.shape.window as usize;
    let rows = records.len() * w;
    let (mut inp, mut tgt) = (Vec::with_capacity(rows * t), Vec::with_capacity(rows * t));
    let mut ex = Vec::with_capacity(rows);
    for p in records {
        for _ in 0..w {
            let (i, o) = window(p, t, rng);
            inp.extend(i);
            tgt.extend(o);
            ex.push(*p);
        }
    }
    let inputs = Tensor::from_slice(&inp).view([rows as i64, t as i64]);
    let targets = Tensor::from_slice(&tgt).view([rows as i64, t as i64]);
    let negatives = model.negatives(&inputs, &ex, rng);
    Batch { inputs, targets, negatives, w: w as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Stream};

    #[test]
    fn windows_are_right_aligned_and_shifted_by_one() {
        let mut r = stream(Some(1), Stream::Data);
        let (i, o) = window(&[5, 6, 7], 4, &mut r);
        assert_eq!(i, vec![0, 0, 6, 7]);
        assert_eq!(o, vec![0, 0, 7, 8]);
        let long: Vec<u32> = (0..30).collect();
        for _ in 0..50 {
            let (i, o) = window(&long, 4, &mut r);
            assert!(i.iter().all(|x| *x > 0));
            assert!(i[1..] == o[..3] && i[0] <= 25, "{i:?} {o:?}");
        }
    }

    #[test]
    fn causal_attention_ignores_the_future() {
        let qkv = crate::models::layer::test_randn(&[1, 5, 12], 3);
        let m = Tensor::ones([1, 5], (Kind::Float, Device::Cpu));
        let a = causal_attention(&qkv, &m, 2);
        let other = qkv.copy();
        other.narrow(1, 4, 1).copy_(&crate::models::layer::test_randn(&[1, 1, 12], 4));
        let b = causal_attention(&other, &m, 2);
        assert!(a.narrow(1, 0, 4).allclose(&b.narrow(1, 0, 4), 1e-6, 1e-6, false));
        assert!(!a.narrow(1, 4, 1).allclose(&b.narrow(1, 4, 1), 1e-6, 1e-6, false));
    }
}
