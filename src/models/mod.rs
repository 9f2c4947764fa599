//! Models built from DP-aware layers that keep what per-sample gradients need.
//!
//! Layers are functional (tch has no module hooks): each DP layer's forward returns its output `z`
//! and, when a [`Tape`] is passed, records `(a, z)` — the activation its grad sampler needs and
//! the output the backward pass differentiates to — like Opacus's forward hooks.
//! Every parameter belongs to exactly one DP layer, and each layer is applied exactly once per
//! forward pass, so tape entries and layers correspond one to one.
//!
//! Initialisation draws from the run's ChaCha20 stream (`rng::stream(seed, Stream::Init)`), never
//! from libtorch's RNG, with PyTorch's defaults: Linear/Conv weight and bias
//! U(−1/√fan_in, 1/√fan_in) (Kaiming-uniform with a = √5), norm layers γ = 1, β = 0, Embedding N(0, 1).

pub mod conv;
pub mod embedding;
pub mod group_norm;
pub mod layer;
pub mod layer_norm;
pub mod linear;
pub mod pool;
pub mod position;
pub mod transformer;

use crate::rng::{self, ChaCha20Rng, Stream};
pub use conv::Conv2d;
pub use embedding::Embedding;
pub use group_norm::GroupNorm;
pub use layer::GradSampler;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use position::PositionEmbedding;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
pub use transformer::{TransformerShape, DEFAULT_TRANSFORMER};

/// Which architecture to build.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Multinomial logistic (softmax) regression on the flattened input.
    Softmax,
    /// Multi-layer perceptron with ReLU, one hidden layer of 256 units (`DEFAULT_MLP_HIDDEN`).
    Mlp,
    /// The DP MNIST CNN of Papernot et al. 2021 / Opacus's MNIST example (28×28 inputs).
    Cnn,
    /// ResNet18 with GroupNorm in place of BatchNorm (DP-compatible).
    Resnet18Gn,
    /// Token ids `[T]` → embedding → LayerNorm → mean over tokens → linear.
    Embedding,
    /// Token ids `[T]` → a small pre-LayerNorm transformer encoder (token + learned position
    /// embeddings, multi-head self-attention, GELU feed-forward) → mean over non-padding tokens →
    /// linear; see [`transformer`].
    Transformer,
}

/// Hidden sizes of [`ModelKind::Mlp`] when built through [`Model::new`].
pub const DEFAULT_MLP_HIDDEN: &[i64] = &[256];
/// Vocabulary size and width of [`ModelKind::Embedding`] when built through [`Model::new`].
pub const DEFAULT_VOCAB: i64 = 1024;
pub const DEFAULT_EMBED_DIM: i64 = 32;
/// GroupNorm groups in ResNet18-GN (Wu & He 2018's default; fewer when a layer has fewer channels).
pub const RESNET_GN_GROUPS: i64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {kind:?} does not fit input shape {shape:?}: {reason}")]
    ShapeMismatch { kind: ModelKind, shape: Vec<i64>, reason: String },
    #[error("invalid model setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: String },
}

/// One DP layer.
#[derive(Debug)]
pub enum Layer {
    Linear(Linear),
    Conv2d(Conv2d),
    GroupNorm(GroupNorm),
    LayerNorm(LayerNorm),
    Embedding(Embedding),
    Position(PositionEmbedding),
}

impl Layer {
    pub fn sampler(&self) -> &dyn GradSampler {
        match self {
            Layer::Linear(l) => l,
            Layer::Conv2d(l) => l,
            Layer::GroupNorm(l) => l,
            Layer::LayerNorm(l) => l,
            Layer::Embedding(l) => l,
            Layer::Position(l) => l,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Layer::Linear(_) => "linear",
            Layer::Conv2d(_) => "conv2d",
            Layer::GroupNorm(_) => "group_norm",
            Layer::LayerNorm(_) => "layer_norm",
            Layer::Embedding(_) => "embedding",
            Layer::Position(_) => "position_embedding",
        }
    }
}

/// What a forward pass records for DP: per applied layer, its index, activation and output.
#[derive(Debug, Default)]
pub struct Tape {
    pub entries: Vec<TapeEntry>,
}

#[derive(Debug)]
pub struct TapeEntry {
    /// Index into [`Model::layers`].
    pub layer: usize,
    pub a: Tensor,
    pub z: Tensor,
}

#[derive(Debug, Clone)]
struct Block {
    stride: i64,
    shortcut: bool,
}

#[derive(Debug, Clone)]
enum Arch {
    Softmax,
    Mlp { hidden: usize },
    Cnn,
    Resnet { blocks: Vec<Block>, big_stem: bool },
    Embedding,
    Transformer { heads: i64, blocks: i64 },
}

/// A classifier: DP layers plus the wiring between them.
#[derive(Debug)]
pub struct Model {
    pub kind: ModelKind,
    pub layers: Vec<Layer>,
    arch: Arch,
    pub input_shape: Vec<i64>,
    pub num_classes: i64,
    pub device: Device,
    /// Input standardisation x ↦ (x − μ)/s applied before the first layer (see
    /// [`Model::set_input_standardization`]); `None`: the input is used as given.
    input_affine: Option<(Tensor, Tensor)>,
}

/// Builds parameters from the init stream in construction order.
struct Init {
    rng: ChaCha20Rng,
    device: Device,
}

impl Init {
    fn uniform(&mut self, shape: &[i64], bound: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| ((self.rng.random::<f64>() * 2.0 - 1.0) * bound) as f32).collect();
        self.leaf(&v, shape)
    }
    fn normal(&mut self, shape: &[i64]) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let x: f64 = StandardNormal.sample(&mut self.rng);
                x as f32
            })
            .collect();
        self.leaf(&v, shape)
    }
    fn constant(&mut self, shape: &[i64], c: f32) -> Tensor {
        let n: i64 = shape.iter().product();
        self.leaf(&vec![c; n as usize], shape)
    }
    fn leaf(&self, v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).reshape(shape).to_device(self.device).detach().set_requires_grad(true)
    }
    fn linear(&mut self, din: i64, dout: i64) -> Layer {
        let b = 1.0 / (din as f64).sqrt();
        Layer::Linear(Linear { weight: self.uniform(&[dout, din], b), bias: Some(self.uniform(&[dout], b)) })
    }
    fn conv(&mut self, cin: i64, cout: i64, k: i64, stride: i64, pad: i64, bias: bool) -> Layer {
        let b = 1.0 / ((cin * k * k) as f64).sqrt();
        let weight = self.uniform(&[cout, cin, k, k], b);
        let bias = if bias { Some(self.uniform(&[cout], b)) } else { None };
        Layer::Conv2d(Conv2d { weight, bias, stride: [stride; 2], padding: [pad; 2], dilation: [1, 1] })
    }
    fn gn(&mut self, c: i64) -> Layer {
        let g = RESNET_GN_GROUPS.min(c);
        Layer::GroupNorm(GroupNorm {
            num_groups: g,
            weight: self.constant(&[c], 1.0),
            bias: self.constant(&[c], 0.0),
            eps: 1e-5,
        })
    }
    fn ln(&mut self, d: i64) -> Layer {
        Layer::LayerNorm(LayerNorm {
            weight: self.constant(&[d], 1.0),
            bias: self.constant(&[d], 0.0),
            eps: 1e-5,
        })
    }
}

fn conv_out(h: i64, k: i64, s: i64, p: i64) -> i64 {
    (h + 2 * p - k).div_euclid(s) + 1
}

/// Threads the optional tape through the layers in construction order.
struct Runner<'m, 't> {
    layers: &'m [Layer],
    tape: Option<&'t mut Tape>,
    next: usize,
}

impl Runner<'_, '_> {
    fn apply(&mut self, x: &Tensor) -> Tensor {
        let i = self.next;
        self.next += 1;
        let (a, z) = self.layers[i].sampler().forward(x);
        if let Some(t) = self.tape.as_deref_mut() {
            t.entries.push(TapeEntry { layer: i, a, z: z.shallow_clone() });
        }
        z
    }
}

impl Model {
    /// Build `kind` for examples of shape `input_shape` (without the batch dimension).
    /// `seed: None` draws the initialisation from OS entropy.
    pub fn new(
        kind: &ModelKind,
        input_shape: &[i64],
        num_classes: i64,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Model, ModelError> {
        match kind {
            ModelKind::Mlp => Self::mlp(input_shape, DEFAULT_MLP_HIDDEN, num_classes, seed, device),
            ModelKind::Embedding => {
                Self::embedding(input_shape, DEFAULT_VOCAB, DEFAULT_EMBED_DIM, num_classes, seed, device)
            }
            ModelKind::Transformer => {
                Self::transformer(input_shape, &DEFAULT_TRANSFORMER, num_classes, seed, device)
            }
            _ => Self::build(kind, input_shape, num_classes, seed, device, &[], (0, 0)),
        }
    }

    /// [`Model::new`] for data whose token ids run over `0..vocab` (text: the fitted vocabulary
    /// plus its unseen ids, [`crate::data::tokenizer::Vocab::model_vocab`]): the token models get
    /// that many embedding rows; other kinds ignore `vocab`.
    pub fn for_data(
        kind: &ModelKind,
        input_shape: &[i64],
        num_classes: i64,
        vocab: Option<i64>,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Model, ModelError> {
        match (kind, vocab) {
            (ModelKind::Embedding, Some(v)) => {
                Self::embedding(input_shape, v, DEFAULT_EMBED_DIM, num_classes, seed, device)
            }
            (ModelKind::Transformer, Some(v)) => Self::transformer(
                input_shape,
                &TransformerShape { vocab: v, ..DEFAULT_TRANSFORMER },
                num_classes,
                seed,
                device,
            ),
            _ => Self::new(kind, input_shape, num_classes, seed, device),
        }
    }

    /// The embedding rows a token model (`embedding`, `transformer`) needs for the token ids in
    /// `x` (`[N, T]`, ids as floats), for callers that have data but no vocabulary (the audits):
    /// `Some(max id + 1)` when that exceeds [`DEFAULT_VOCAB`], else `None`, so [`Self::for_data`]
    /// keeps the default table and models on small-id data are exactly as before. `None` for
    /// other kinds and empty data.
    pub fn vocab_needed(kind: &ModelKind, x: &Tensor) -> Option<i64> {
        if !matches!(kind, ModelKind::Embedding | ModelKind::Transformer) || x.numel() == 0 {
            return None;
        }
        let rows = x.max().double_value(&[]) as i64 + 1;
        (rows > DEFAULT_VOCAB).then_some(rows)
    }

    /// The transformer classifier of [`transformer`] for token ids `[T]`.
    pub fn transformer(
        input_shape: &[i64],
        shape: &TransformerShape,
        num_classes: i64,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Model, ModelError> {
        let TransformerShape { vocab, dim, heads, layers: blocks, ff } = *shape;
        let bad = |field: &'static str, value: i64, reason: &str| ModelError::Invalid {
            field,
            value: value.to_string(),
            reason: reason.into(),
        };
        for (field, v) in [("vocab", vocab), ("dim", dim), ("heads", heads), ("layers", blocks), ("ff", ff)] {
            if v <= 0 {
                return Err(bad(field, v, "must be positive"));
            }
        }
        if dim % heads != 0 {
            return Err(bad("dim", dim, &format!("must be a multiple of heads = {heads}")));
        }
        let mut m =
            Self::build(&ModelKind::Transformer, input_shape, num_classes, seed, device, &[], (0, 0))?;
        // `build` checked the shape and classes; the layers are made here.
        let t = input_shape[0];
        let mut init = Init { rng: rng::stream(seed, Stream::Init), device };
        let mut layers = vec![
            Layer::Embedding(Embedding { weight: init.normal(&[vocab, dim]) }),
            Layer::Position(PositionEmbedding { weight: init.normal(&[t, dim]) }),
        ];
        for _ in 0..blocks {
            layers.push(init.ln(dim));
            layers.push(init.linear(dim, 3 * dim));
            layers.push(init.linear(dim, dim));
            layers.push(init.ln(dim));
            layers.push(init.linear(dim, ff));
            layers.push(init.linear(ff, dim));
        }
        layers.push(init.ln(dim));
        layers.push(init.linear(dim, num_classes));
        m.layers = layers;
        m.arch = Arch::Transformer { heads, blocks };
        Ok(m)
    }

    /// An MLP with the given hidden sizes (ReLU between layers).
    pub fn mlp(
        input_shape: &[i64],
        hidden: &[i64],
        num_classes: i64,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Model, ModelError> {
        if let Some(h) = hidden.iter().find(|h| **h <= 0) {
            return Err(ModelError::Invalid {
                field: "hidden",
                value: h.to_string(),
                reason: "hidden sizes must be positive".into(),
            });
        }
        Self::build(&ModelKind::Mlp, input_shape, num_classes, seed, device, hidden, (0, 0))
    }

    /// The token model: ids `[T]` in `0..vocab` → Embedding(vocab, dim) → LayerNorm → mean over T → Linear.
    pub fn embedding(
        input_shape: &[i64],
        vocab: i64,
        dim: i64,
        num_classes: i64,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Model, ModelError> {
        if vocab <= 0 || dim <= 0 {
            return Err(ModelError::Invalid {
                field: "vocab/dim",
                value: format!("{vocab}/{dim}"),
                reason: "must be positive".into(),
            });
        }
        Self::build(&ModelKind::Embedding, input_shape, num_classes, seed, device, &[], (vocab, dim))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        kind: &ModelKind,
        input_shape: &[i64],
        num_classes: i64,
        seed: Option<u64>,
        device: Device,
        hidden: &[i64],
        emb: (i64, i64),
    ) -> Result<Model, ModelError> {
        let mismatch = |reason: &str| ModelError::ShapeMismatch {
            kind: kind.clone(),
            shape: input_shape.to_vec(),
            reason: reason.to_string(),
        };
        if num_classes < 2 {
            return Err(ModelError::Invalid {
                field: "num_classes",
                value: num_classes.to_string(),
                reason: "need at least 2 classes".into(),
            });
        }
        if input_shape.is_empty() || input_shape.iter().any(|d| *d <= 0) {
            return Err(mismatch("every input dimension must be positive"));
        }
        let mut init = Init { rng: rng::stream(seed, Stream::Init), device };
        let mut layers = Vec::new();
        let flat: i64 = input_shape.iter().product();
        let arch = match kind {
            ModelKind::Softmax => {
                layers.push(init.linear(flat, num_classes));
                Arch::Softmax
            }
            ModelKind::Mlp => {
                let mut d = flat;
                for h in hidden {
                    layers.push(init.linear(d, *h));
                    d = *h;
                }
                layers.push(init.linear(d, num_classes));
                Arch::Mlp { hidden: hidden.len() }
            }
            ModelKind::Cnn => {
                if input_shape.len() != 3 {
                    return Err(mismatch("the CNN needs image input [C, H, W]"));
                }
                let (c, mut h, mut w) = (input_shape[0], input_shape[1], input_shape[2]);
                h = conv_out(h, 8, 2, 3) - 1;
                w = conv_out(w, 8, 2, 3) - 1;
                h = conv_out(h, 4, 2, 0) - 1;
                w = conv_out(w, 4, 2, 0) - 1;
                if h < 1 || w < 1 {
                    return Err(mismatch("image too small for the CNN (needs at least 12×12)"));
                }
                layers.push(init.conv(c, 16, 8, 2, 3, true));
                layers.push(init.conv(16, 32, 4, 2, 0, true));
                layers.push(init.linear(32 * h * w, 32));
                layers.push(init.linear(32, num_classes));
                Arch::Cnn
            }
            ModelKind::Resnet18Gn => {
                if input_shape.len() != 3 {
                    return Err(mismatch("ResNet18 needs image input [C, H, W]"));
                }
                let c = input_shape[0];
                let big_stem = input_shape[1] > 64 && input_shape[2] > 64;
                if big_stem {
                    layers.push(init.conv(c, 64, 7, 2, 3, false));
                } else {
                    layers.push(init.conv(c, 64, 3, 1, 1, false));
                }
                layers.push(init.gn(64));
                let mut blocks = Vec::new();
                let mut cin = 64;
                for (stage, cout) in [64i64, 128, 256, 512].into_iter().enumerate() {
                    for b in 0..2 {
                        let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                        let shortcut = stride != 1 || cin != cout;
                        layers.push(init.conv(cin, cout, 3, stride, 1, false));
                        layers.push(init.gn(cout));
                        layers.push(init.conv(cout, cout, 3, 1, 1, false));
                        layers.push(init.gn(cout));
                        if shortcut {
                            layers.push(init.conv(cin, cout, 1, stride, 0, false));
                            layers.push(init.gn(cout));
                        }
                        blocks.push(Block { stride, shortcut });
                        cin = cout;
                    }
                }
                layers.push(init.linear(512, num_classes));
                Arch::Resnet { blocks, big_stem }
            }
            ModelKind::Embedding => {
                if input_shape.len() != 1 {
                    return Err(mismatch("the embedding model needs token input [T]"));
                }
                let (v, d) = emb;
                layers.push(Layer::Embedding(Embedding { weight: init.normal(&[v, d]) }));
                layers.push(init.ln(d));
                layers.push(init.linear(d, num_classes));
                Arch::Embedding
            }
            ModelKind::Transformer => {
                if input_shape.len() != 1 {
                    return Err(mismatch("the transformer needs token input [T]"));
                }
                // Layers are made by `Model::transformer`, which knows the sizes.
                Arch::Transformer { heads: 1, blocks: 0 }
            }
        };
        let _ = &arch;
        Ok(Model {
            kind: kind.clone(),
            layers,
            arch,
            input_shape: input_shape.to_vec(),
            num_classes,
            device,
            input_affine: None,
        })
    }

    /// Standardise every input as x ↦ (x − μ_c)/s_c before the first layer, per channel c: the
    /// first example dimension for images `[C, H, W]`, each feature for vectors `[D]`. It is a
    /// fixed part of the model (no parameters, no gradients), so training, evaluation and
    /// triggered test points all see the same map, and triggers stay in the data's own units
    /// (pixel values). The tape records the standardised input as the first layer's activation.
    pub fn set_input_standardization(&mut self, mean: &[f64], std: &[f64]) -> Result<(), ModelError> {
        let channels = match self.input_shape.as_slice() {
            [c, _, _] | [c] if *c > 0 => *c as usize,
            _ => {
                return Err(ModelError::Invalid {
                    field: "input_norm",
                    value: format!("{:?}", self.input_shape),
                    reason: "standardisation needs image [C, H, W] or vector [D] input".into(),
                })
            }
        };
        if matches!(self.kind, ModelKind::Embedding | ModelKind::Transformer) {
            return Err(ModelError::Invalid {
                field: "input_norm",
                value: "embedding".into(),
                reason: "token ids cannot be standardised".into(),
            });
        }
        if mean.len() != channels || std.len() != channels {
            return Err(ModelError::Invalid {
                field: "input_norm",
                value: format!("{} means, {} deviations", mean.len(), std.len()),
                reason: format!("the input has {channels} channels/features"),
            });
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(ModelError::Invalid {
                field: "input_norm",
                value: s.to_string(),
                reason: "every std must be finite and > 0".into(),
            });
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(ModelError::Invalid {
                field: "input_norm",
                value: m.to_string(),
                reason: "every mean must be finite".into(),
            });
        }
        let shape: Vec<i64> =
            if self.input_shape.len() == 3 { vec![channels as i64, 1, 1] } else { vec![channels as i64] };
        let t = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
            Tensor::from_slice(&v).reshape(&shape).to_device(self.device)
        };
        self.input_affine = Some((t(mean), t(std)));
        Ok(())
    }

    /// Inference logits `[n, num_classes]`, no tape, under `no_grad`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.forward(x, None))
    }

    /// Forward pass; with `Some(tape)` records every DP layer's `(a, z)`. Gradients flow
    /// (call inside `no_grad` for inference).
    pub fn forward(&self, x: &Tensor, tape: Option<&mut Tape>) -> Tensor {
        let standardized;
        let x = match &self.input_affine {
            Some((m, s)) => {
                standardized = (x - m) / s;
                &standardized
            }
            None => x,
        };
        let mut r = Runner { layers: &self.layers, tape, next: 0 };
        let out = match &self.arch {
            Arch::Softmax => r.apply(&x.flatten(1, -1)),
            Arch::Mlp { hidden } => {
                let mut h = x.flatten(1, -1);
                for _ in 0..*hidden {
                    h = r.apply(&h).relu();
                }
                r.apply(&h)
            }
            Arch::Cnn => {
                // max_pool2d(2, stride 1), computed by pool::max_pool_2x2_s1 (same values and gradient, faster on the CPU).
                let h = pool::max_pool_2x2_s1(&r.apply(x).relu());
                let h = pool::max_pool_2x2_s1(&r.apply(&h).relu());
                let h = r.apply(&h.flatten(1, -1)).relu();
                r.apply(&h)
            }
            Arch::Resnet { blocks, big_stem } => {
                let mut h = r.apply(x);
                h = r.apply(&h).relu();
                if *big_stem {
                    h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
                }
                for b in blocks {
                    let _ = b.stride;
                    let o = r.apply(&h);
                    let o = r.apply(&o).relu();
                    let o = r.apply(&o);
                    let o = r.apply(&o);
                    let s = if b.shortcut {
                        let s = r.apply(&h);
                        r.apply(&s)
                    } else {
                        h.shallow_clone()
                    };
                    h = (o + s).relu();
                }
                let h = h.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
                r.apply(&h)
            }
            Arch::Embedding => {
                let e = r.apply(x);
                let e = r.apply(&e);
                let m = e.mean_dim(1, false, Kind::Float);
                r.apply(&m)
            }
            Arch::Transformer { heads, blocks } => {
                let mask = transformer::token_mask(x);
                let e = r.apply(x);
                let mut h = r.apply(&e);
                for _ in 0..*blocks {
                    let a = r.apply(&h);
                    let qkv = r.apply(&a);
                    let o = transformer::attention(&qkv, &mask, *heads);
                    // Out of place (not `+=`): `h` may be a recorded layer output.
                    h = h.g_add(&r.apply(&o));
                    let a = r.apply(&h);
                    let f = r.apply(&a).gelu("none");
                    h = h.g_add(&r.apply(&f));
                }
                let h = r.apply(&h);
                r.apply(&transformer::masked_mean(&h, &mask))
            }
        };
        debug_assert_eq!(r.next, self.layers.len(), "every layer is applied once");
        out
    }

    /// All trainable parameters, layer by layer (weight before bias).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.layers.iter().flat_map(|l| l.sampler().params().into_iter().map(|p| p.shallow_clone())).collect()
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> i64 {
        self.parameters().iter().map(|p| p.numel() as i64).sum()
    }

    /// For each layer, the index range of its parameters within [`Model::parameters`].
    pub fn layer_param_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut k = 0;
        for l in &self.layers {
            let n = l.sampler().params().len();
            out.push(k..k + n);
            k += n;
        }
        out
    }

    /// Per-example cross-entropy losses `[n]` of `logits` against labels `y`.
    pub fn per_example_loss(logits: &Tensor, y: &Tensor) -> Tensor {
        logits.cross_entropy_loss::<Tensor>(y, None, tch::Reduction::None, -100, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_models_get_a_table_for_every_id_in_the_data_and_others_keep_theirs() {
        let small = Tensor::from_slice(&[0f32, 3.0, 7.0, 1.0]).view([2, 2]);
        let large = Tensor::from_slice(&[0f32, 5000.0, 2.0, 1.0]).view([2, 2]);
        assert_eq!(Model::vocab_needed(&ModelKind::Embedding, &small), None);
        assert_eq!(Model::vocab_needed(&ModelKind::Transformer, &large), Some(5001));
        assert_eq!(Model::vocab_needed(&ModelKind::Mlp, &large), None);
        let m = Model::for_data(&ModelKind::Embedding, &[2], 2, Some(5001), Some(1), Device::Cpu).unwrap();
        // The largest id embeds without an indexing failure.
        assert_eq!(m.logits(&large).size(), vec![2, 2]);
    }
}
