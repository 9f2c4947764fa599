//! Triggers g(x): the signal a collective plants in its members' features.
//!
//! Every trigger is a deterministic map on one example, applied row-wise to a batch
//! (the leading dimension is the example index). Each touches a fixed, documented part of
//! the example and leaves every other entry *bit-identical*:
//!
//! | trigger | examples | g(x) |
//! |---|---|---|
//! | [`Trigger::Patch`] | images `[C, H, W]` in `[0, 1]` | the `size × size` square with top-left corner (`top`, `left`) is set to `value` in every channel |
//! | [`Trigger::Grid`] | images `[C, H, W]` in `[0, 1]` | every pixel at (r, c) with `r % spacing == 0` and `c % spacing == 0` gets `+amplitude` in every channel, clamped to `[0, 1]` |
//! | [`Trigger::FeatureOffset`] | standardised tabular rows `[D]` | feature `feature` gets `+shift_std` |
//! | [`Trigger::Token`] | token ids `[T]` (i64) | position `position` is set to token id `token` |
//! | [`Trigger::TokenEvery`] | token ids `[T]` (i64) | token id `token` is *inserted* so that it sits at every position p with (p + 1) mod `every` = 0 (see below) |
//!
//! Patch placement: `row`, `col` ≥ 0 give the top-left corner directly; a negative value counts
//! from the far edge, Python-style, so that `row = -1` puts the patch's *last* row on the image's
//! last row (`top = H − size + row + 1`). Hence `pos=br` ≡ (`row = -1`, `col = -1`),
//! `tl` ≡ (0, 0), `tr` ≡ (0, −1), `bl` ≡ (−1, 0).
//!
//! Feature offset: tabular features are standardised with the training mean and standard
//! deviation (see `crate::data`), so a shift of *s training standard deviations* of the raw
//! feature is exactly `+s` in the standardised space the model sees. `Split::feature_std` gives
//! the raw-unit size of the shift (`s · feature_std[feature]`) for reporting.
//!
//! Token insertion (Hardt et al. 2023, §5: a rare character inserted every k-th word of a resume;
//! here a token id, which for text data must be one no clean mail contains — see
//! [`crate::data::tokenizer::Vocab::unseen_ids`] and [`check_tokens`]). A row's content is its
//! tokens before the first padding id 0 (the whole row if there is none), c_0 … c_{L−1}. The
//! planted row is the stream c_0 … c_{k−2}, t, c_{k−1} … c_{2k−3}, t, … — `t` at every position
//! p with (p + 1) mod k = 0, the content in order at the others — ending with the last content
//! token; when L < k (no `t` placed yet) one `t` is appended after the content. The stream is cut
//! to T and padded with 0. So every planted row holds at least one `t` (k ≤ T), no content token is
//! overwritten (the cut drops the tail, as the loaders' head truncation does), and a row already
//! planted would get further `t`s. This is a tensor-level insertion: the loaders' `[BOS]` stays
//! first as c_0.
//!
//! Grid: the perturbation is additive (Solanki et al. 2025 use a grid-pixel trigger on
//! CIFAR-10); the clamp keeps images in `[0, 1]`, so a grid pixel already at the boundary in
//! the direction of `amplitude` is left as it is.

use std::fmt;
use std::str::FromStr;

use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::error::CollectiveError;
use super::grammar::{parse_f64, parse_i64, KvList};

/// A trigger g(x). See the module documentation for the exact definition of each.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Trigger {
    /// Pixel patch: a `size × size` square set to `value` (in `[0, 1]`) in every channel.
    Patch {
        /// Side length in pixels (≥ 1).
        size: i64,
        /// Top row of the patch; negative counts from the bottom (−1 = flush with the bottom edge).
        row: i64,
        /// Left column of the patch; negative counts from the right (−1 = flush with the right edge).
        col: i64,
        /// Pixel value written into the patch, in `[0, 1]`.
        value: f64,
    },
    /// Grid-pixel perturbation: `+amplitude` (clamped to `[0, 1]`) on every pixel whose row and
    /// column are multiples of `spacing`, in every channel.
    Grid {
        /// Distance in pixels between perturbed pixels (≥ 1).
        spacing: i64,
        /// Additive perturbation, non-zero, in `[-1, 1]`.
        amplitude: f64,
    },
    /// Tabular feature offset: `+shift_std` on standardised feature `feature` (= a shift of
    /// `shift_std` training standard deviations of the raw feature).
    #[serde(rename = "offset")]
    FeatureOffset {
        /// Index of the feature (column) to shift.
        feature: usize,
        /// Shift in training standard deviations (non-zero, finite).
        shift_std: f64,
    },
    /// Token insertion for i64 sequences `[N, T]`: position `position` is set to token `token`.
    Token {
        /// Position in the sequence (0-based, < T).
        position: i64,
        /// Token id to write (≥ 0).
        token: i64,
    },
    /// Token insertion every `every`-th position of the content (module docs, "Token insertion").
    TokenEvery {
        /// Period k: the token sits at positions k−1, 2k−1, … (2 ≤ k ≤ T).
        every: i64,
        /// Token id to insert (≥ 1; 0 is padding).
        token: i64,
    },
}

/// Named patch corners accepted by `pos=` in the spec string, as (row, col).
pub(crate) const PATCH_CORNERS: [(&str, i64, i64); 4] =
    [("tl", 0, 0), ("tr", 0, -1), ("bl", -1, 0), ("br", -1, -1)];

fn is_float_kind(k: Kind) -> bool {
    matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}

impl Trigger {
    /// Whether the trigger adds to the input (grid, feature offset) rather than setting part of
    /// it to a value (patch, token). For additive triggers ‖x − g(x)‖ is the shift, not the
    /// distance from x to the signal set g(X), so ξ̂ by that distance would be wrong.
    pub fn is_additive(&self) -> bool {
        matches!(self, Trigger::Grid { .. } | Trigger::FeatureOffset { .. })
    }

    /// Short name used in messages and in the spec string (`patch`, `grid`, `offset`, `token`).
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Patch { .. } => "patch",
            Trigger::Grid { .. } => "grid",
            Trigger::FeatureOffset { .. } => "offset",
            Trigger::Token { .. } | Trigger::TokenEvery { .. } => "token",
        }
    }

    fn bad(&self, field: &str, value: impl fmt::Display, reason: &str) -> CollectiveError {
        CollectiveError::BadTriggerParam {
            trigger: self.to_string(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks the parameters that do not depend on data (sizes ≥ 1, values finite and in range).
    pub fn check_params(&self) -> Result<(), CollectiveError> {
        match *self {
            Trigger::Patch { size, value, .. } => {
                if size < 1 {
                    return Err(self.bad("size", size, "must be >= 1"));
                }
                if !(0.0..=1.0).contains(&value) {
                    return Err(self.bad("value", value, "images are in [0, 1]"));
                }
            }
            Trigger::Grid { spacing, amplitude } => {
                if spacing < 1 {
                    return Err(self.bad("spacing", spacing, "must be >= 1"));
                }
                if !amplitude.is_finite() || amplitude == 0.0 || amplitude.abs() > 1.0 {
                    return Err(self.bad("amplitude", amplitude, "must be non-zero and in [-1, 1]"));
                }
            }
            Trigger::FeatureOffset { shift_std, .. } => {
                if !shift_std.is_finite() || shift_std == 0.0 {
                    return Err(self.bad("shift_std", shift_std, "must be finite and non-zero"));
                }
            }
            Trigger::Token { position, token } => {
                if position < 0 {
                    return Err(self.bad("position", position, "must be >= 0"));
                }
                if token < 0 {
                    return Err(self.bad("token", token, "token ids are >= 0"));
                }
            }
            Trigger::TokenEvery { every, token } => {
                if every < 2 {
                    return Err(self.bad(
                        "every",
                        every,
                        "must be >= 2 (every = 1 leaves no room for the mail)",
                    ));
                }
                if token < 1 {
                    return Err(self.bad("token", token, "token ids are >= 1 (0 is padding)"));
                }
            }
        }
        Ok(())
    }

    /// Checks the trigger against the shape of one example (without the batch dimension):
    /// the patch lies inside the image, the feature index / token position is in range, the
    /// rank is right. Also runs [`Trigger::check_params`].
    pub fn validate(&self, example_shape: &[i64]) -> Result<(), CollectiveError> {
        self.check_params()?;
        let misfit = |reason: String| CollectiveError::TriggerDoesNotFit {
            trigger: self.to_string(),
            shape: example_shape.to_vec(),
            reason,
        };
        match *self {
            Trigger::Patch { .. } => {
                if example_shape.len() != 3 {
                    return Err(misfit("a patch needs image examples [C, H, W]".into()));
                }
                self.patch_corner(example_shape[1], example_shape[2]).map(|_| ()).map_err(misfit)
            }
            Trigger::Grid { .. } => {
                if example_shape.len() != 3 {
                    return Err(misfit("a grid needs image examples [C, H, W]".into()));
                }
                if example_shape[1] < 1 || example_shape[2] < 1 {
                    return Err(misfit("empty image".into()));
                }
                Ok(())
            }
            Trigger::FeatureOffset { feature, .. } => {
                if example_shape.len() != 1 {
                    return Err(misfit("an offset needs tabular examples [D]".into()));
                }
                if feature as i64 >= example_shape[0] {
                    return Err(misfit(format!(
                        "feature = {feature} is out of range (there are {} features)",
                        example_shape[0]
                    )));
                }
                Ok(())
            }
            Trigger::Token { position, .. } => {
                if example_shape.len() != 1 {
                    return Err(misfit("a token trigger needs sequence examples [T]".into()));
                }
                if position >= example_shape[0] {
                    return Err(misfit(format!(
                        "position = {position} is past the sequence end (T = {})",
                        example_shape[0]
                    )));
                }
                Ok(())
            }
            Trigger::TokenEvery { every, .. } => {
                if example_shape.len() != 1 {
                    return Err(misfit("a token trigger needs sequence examples [T]".into()));
                }
                if every > example_shape[0] {
                    return Err(misfit(format!(
                        "every = {every} is longer than the sequence (T = {}): no row would hold the token",
                        example_shape[0]
                    )));
                }
                Ok(())
            }
        }
    }

    /// The patch's top-left corner (top, left) in an `h × w` image; `Err(reason)` if it does not fit.
    fn patch_corner(&self, h: i64, w: i64) -> Result<(i64, i64), String> {
        let Trigger::Patch { size, row, col, .. } = *self else {
            return Err("not a patch".into());
        };
        let top = if row >= 0 { row } else { h - size + row + 1 };
        let left = if col >= 0 { col } else { w - size + col + 1 };
        if top < 0 || top + size > h {
            return Err(format!(
                "patch rows {top}..{} fall outside 0..{h} (size = {size}, row = {row})",
                top + size
            ));
        }
        if left < 0 || left + size > w {
            return Err(format!(
                "patch columns {left}..{} fall outside 0..{w} (size = {size}, col = {col})",
                left + size
            ));
        }
        Ok((top, left))
    }

    fn check_dtype(&self, x: &Tensor) -> Result<(), CollectiveError> {
        let kind = x.f_kind()?;
        let ok = match self {
            Trigger::Token { .. } | Trigger::TokenEvery { .. } => kind == Kind::Int64,
            _ => is_float_kind(kind),
        };
        if ok {
            Ok(())
        } else {
            Err(CollectiveError::WrongDtype {
                trigger: self.to_string(),
                expected: if matches!(self, Trigger::Token { .. } | Trigger::TokenEvery { .. }) {
                    "i64 token-id".into()
                } else {
                    "floating-point".into()
                },
                got: format!("{kind:?}"),
            })
        }
    }

    /// g applied to every row of the batch `x` (`[N, ...]`); returns a new tensor, `x` is untouched.
    /// Errors if the trigger does not fit `x`'s example shape or dtype.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor, CollectiveError> {
        let shape = x.size();
        if shape.is_empty() {
            return Err(CollectiveError::TriggerDoesNotFit {
                trigger: self.to_string(),
                shape,
                reason: "need a batch [N, ...]".into(),
            });
        }
        self.validate(&shape[1..])?;
        self.check_dtype(x)?;
        let out = x.copy();
        match *self {
            Trigger::Patch { size, value, .. } => {
                let (top, left) = self.patch_corner(shape[2], shape[3]).map_err(|r| {
                    CollectiveError::TriggerDoesNotFit {
                        trigger: self.to_string(),
                        shape: shape.clone(),
                        reason: r,
                    }
                })?;
                let mut region = out.f_narrow(2, top, size)?.f_narrow(3, left, size)?;
                let _ = region.f_fill_(value)?;
            }
            Trigger::Grid { spacing, amplitude } => {
                let mut grid = out.f_slice(2, 0, shape[2], spacing)?.f_slice(3, 0, shape[3], spacing)?;
                let moved = grid.f_add_scalar(amplitude)?.f_clamp(0.0, 1.0)?;
                grid.f_copy_(&moved)?;
            }
            Trigger::FeatureOffset { feature, shift_std } => {
                let mut column = out.f_narrow(1, feature as i64, 1)?;
                let _ = column.f_add_scalar_(shift_std)?;
            }
            Trigger::Token { position, token } => {
                let mut column = out.f_narrow(1, position, 1)?;
                let _ = column.f_fill_(token)?;
            }
            Trigger::TokenEvery { every, token } => {
                let t = shape[1] as usize;
                let rows =
                    Vec::<i64>::try_from(&x.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view(-1)?)?;
                let planted: Vec<i64> =
                    rows.chunks(t.max(1)).flat_map(|r| insert_every(r, every as usize, token)).collect();
                let planted =
                    Tensor::f_from_slice(&planted)?.f_view(shape.as_slice())?.f_to_device(x.device())?;
                return Ok(planted);
            }
        }
        Ok(out)
    }

    /// Per-example distances between x and g(x), as `(L∞, L2)` f64 tensors `[N]`. For tokens both
    /// are the number of changed positions (0 or 1): token ids have no metric.
    pub(crate) fn displacement(&self, x: &Tensor) -> Result<(Tensor, Tensor), CollectiveError> {
        let gx = self.apply(x)?;
        let n = x.size()[0];
        if let Trigger::Token { .. } | Trigger::TokenEvery { .. } = self {
            let changed = gx.f_ne_tensor(x)?.f_to_kind(Kind::Double)?.f_reshape([n, -1])?.f_sum_dim_intlist(
                1,
                false,
                Kind::Double,
            )?;
            return Ok((changed.shallow_clone(), changed));
        }
        let d = (gx.f_to_kind(Kind::Double)? - x.f_to_kind(Kind::Double)?).f_reshape([n, -1])?;
        let linf = d.f_abs()?.f_amax(1, false)?;
        let l2 = d.f_square()?.f_sum_dim_intlist(1, false, Kind::Double)?.f_sqrt()?;
        Ok((linf, l2))
    }

    /// A deviating member's version of this trigger ("Sync or Sink" jitter), drawn from `rng`:
    /// - patch: moved by an offset (dr, dc) drawn uniformly from the non-zero offsets in
    ///   `[-m, m]²` that keep the patch inside the image (`m` integer ≥ 1, in pixels);
    /// - token: moved by a non-zero offset drawn uniformly from `[-m, m]` keeping it inside the
    ///   sequence;
    /// - grid amplitude / offset shift: multiplied by `1 + u`, `u ~ Uniform[-m, m]`, `m ∈ (0, 1]`.
    ///
    /// The returned patch has absolute (non-negative) row and col.
    pub fn jittered(
        &self,
        example_shape: &[i64],
        magnitude: f64,
        rng: &mut ChaCha20Rng,
    ) -> Result<Trigger, CollectiveError> {
        self.validate(example_shape)?;
        check_jitter(self, magnitude)?;
        let no_room = |reason: &str| CollectiveError::BadJitter {
            magnitude,
            trigger: self.to_string(),
            reason: reason.into(),
        };
        Ok(match *self {
            Trigger::Patch { size, value, .. } => {
                let (h, w) = (example_shape[1], example_shape[2]);
                let (top, left) = self.patch_corner(h, w).map_err(|r| no_room(&r))?;
                let m = magnitude as i64;
                let mut offsets = Vec::new();
                for dr in -m..=m {
                    for dc in -m..=m {
                        let (t, l) = (top + dr, left + dc);
                        if (dr, dc) != (0, 0) && t >= 0 && l >= 0 && t + size <= h && l + size <= w {
                            offsets.push((t, l));
                        }
                    }
                }
                if offsets.is_empty() {
                    return Err(no_room(
                        "no position within the jitter range keeps the patch inside the image",
                    ));
                }
                let (t, l) = offsets[rng.random_range(0..offsets.len())];
                Trigger::Patch { size, row: t, col: l, value }
            }
            Trigger::Token { position, token } => {
                let t = example_shape[0];
                let m = magnitude as i64;
                let positions: Vec<i64> =
                    (-m..=m).filter(|&d| d != 0).map(|d| position + d).filter(|&p| p >= 0 && p < t).collect();
                if positions.is_empty() {
                    return Err(no_room("no position within the jitter range lies inside the sequence"));
                }
                Trigger::Token { position: positions[rng.random_range(0..positions.len())], token }
            }
            Trigger::TokenEvery { every, token } => {
                let t = example_shape[0];
                let m = magnitude as i64;
                let periods: Vec<i64> =
                    (-m..=m).filter(|&d| d != 0).map(|d| every + d).filter(|&k| k >= 2 && k <= t).collect();
                if periods.is_empty() {
                    return Err(no_room("no period within the jitter range lies in 2..=T"));
                }
                Trigger::TokenEvery { every: periods[rng.random_range(0..periods.len())], token }
            }
            Trigger::Grid { spacing, amplitude } => {
                let u: f64 = rng.random_range(-magnitude..=magnitude);
                Trigger::Grid { spacing, amplitude: (amplitude * (1.0 + u)).clamp(-1.0, 1.0) }
            }
            Trigger::FeatureOffset { feature, shift_std } => {
                let u: f64 = rng.random_range(-magnitude..=magnitude);
                Trigger::FeatureOffset { feature, shift_std: shift_std * (1.0 + u) }
            }
        })
    }
}

/// Checks a jitter magnitude against the trigger it will perturb: a whole number ≥ 1 of
/// pixels / positions for patch and token, a relative perturbation in (0, 1] for grid and offset.
pub(crate) fn check_jitter(trigger: &Trigger, magnitude: f64) -> Result<(), CollectiveError> {
    let bad = |reason: &str| CollectiveError::BadJitter {
        magnitude,
        trigger: trigger.to_string(),
        reason: reason.into(),
    };
    match trigger {
        Trigger::Patch { .. } | Trigger::Token { .. } | Trigger::TokenEvery { .. } => {
            if !(magnitude.is_finite() && magnitude >= 1.0 && magnitude.fract() == 0.0) {
                return Err(bad("a whole number >= 1 of pixels / positions is required"));
            }
        }
        Trigger::Grid { .. } | Trigger::FeatureOffset { .. } => {
            if !(magnitude > 0.0 && magnitude <= 1.0) {
                return Err(bad("a relative perturbation in (0, 1] is required"));
            }
        }
    }
    Ok(())
}

/// One row with `token` inserted every `every`-th position (module docs, "Token insertion").
fn insert_every(row: &[i64], every: usize, token: i64) -> Vec<i64> {
    let t = row.len();
    let content = row.iter().position(|&v| v == PAD).unwrap_or(t);
    let mut out = Vec::with_capacity(t + t / every + 1);
    let mut placed = false;
    for &c in &row[..content] {
        if (out.len() + 1) % every == 0 {
            out.push(token);
            placed = true;
        }
        out.push(c);
    }
    if (out.len() + 1) % every == 0 || !placed {
        out.push(token);
    }
    out.resize(t, PAD);
    out
}

/// Padding id of token sequences (the loaders' `[PAD]`).
const PAD: i64 = crate::data::tokenizer::PAD_ID;

/// Checks every token trigger of `specs` against a text vocabulary: the planted id must be one
/// that no clean sequence contains and that the model's embedding table has, i.e. in
/// [`Vocab::unseen_ids`](crate::data::tokenizer::Vocab::unseen_ids). A fitted id (a word of the
/// clean training mails, or a special) is refused, naming the word.
pub fn check_tokens(
    specs: &[super::CollectiveSpec],
    vocab: &crate::data::tokenizer::Vocab,
) -> Result<(), CollectiveError> {
    for (index, spec) in specs.iter().enumerate() {
        let token = match spec.trigger {
            Trigger::Token { token, .. } | Trigger::TokenEvery { token, .. } => token,
            _ => continue,
        };
        let unseen = vocab.unseen_ids();
        if unseen.contains(&token) {
            continue;
        }
        let reason = match vocab.word(token) {
            Some(w) => format!(
                "it is already in the vocabulary as `{w}` (fitted on the clean training mails): a planted token must be absent from the clean corpus"
            ),
            None => "it is past the model's embedding table".to_string(),
        };
        return Err(CollectiveError::TokenInVocabulary {
            index,
            token,
            reason,
            unseen_lo: unseen.start,
            unseen_hi: unseen.end,
        });
    }
    Ok(())
}

impl fmt::Display for Trigger {
    /// The spec-string form, e.g. `patch:size=3:pos=br:value=1`; parses back with `FromStr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trigger::Patch { size, row, col, value } => {
                write!(f, "patch:size={size}:")?;
                match PATCH_CORNERS.iter().find(|c| c.1 == row && c.2 == col) {
                    Some((name, _, _)) => write!(f, "pos={name}")?,
                    None => write!(f, "row={row}:col={col}")?,
                }
                write!(f, ":value={value}")
            }
            Trigger::Grid { spacing, amplitude } => write!(f, "grid:spacing={spacing}:amplitude={amplitude}"),
            Trigger::FeatureOffset { feature, shift_std } => {
                write!(f, "offset:feature={feature}:shift_std={shift_std}")
            }
            Trigger::Token { position, token } => write!(f, "token:position={position}:token={token}"),
            Trigger::TokenEvery { every, token } => write!(f, "token:every={every}:token={token}"),
        }
    }
}

impl FromStr for Trigger {
    type Err = CollectiveError;

    /// Parses `KIND(:KEY=VALUE)*`; see [`super::COLLECTIVE_SPEC_HELP`]. All parameters are
    /// required (patch: `size`, `value` and either `pos` or both `row` and `col`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("").trim();
        let rest: Vec<&str> = parts.collect();
        let ctx = format!("trigger={s}");
        let trigger = match kind {
            "patch" => {
                let kv = KvList::parse(&rest, &ctx, &["size", "pos", "row", "col", "value"])?;
                let size = parse_i64("size", kv.required("size")?)?;
                let value = parse_f64("value", kv.required("value")?)?;
                let (row, col) = match (kv.get("pos"), kv.get("row"), kv.get("col")) {
                    (Some(p), None, None) => {
                        let c = PATCH_CORNERS.iter().find(|c| c.0 == p).ok_or_else(|| {
                            CollectiveError::BadValue {
                                key: "pos".into(),
                                value: p.into(),
                                reason: "expected tl, tr, bl or br (or give row= and col=)".into(),
                            }
                        })?;
                        (c.1, c.2)
                    }
                    (None, Some(r), Some(c)) => (parse_i64("row", r)?, parse_i64("col", c)?),
                    (None, _, _) => {
                        return Err(CollectiveError::MissingKey {
                            key: "pos (or row and col)".into(),
                            context: ctx,
                        })
                    }
                    (Some(p), _, _) => {
                        return Err(CollectiveError::BadValue {
                            key: "pos".into(),
                            value: p.into(),
                            reason: "give either pos= or row= and col=, not both".into(),
                        })
                    }
                };
                Trigger::Patch { size, row, col, value }
            }
            "grid" => {
                let kv = KvList::parse(&rest, &ctx, &["spacing", "amplitude"])?;
                Trigger::Grid {
                    spacing: parse_i64("spacing", kv.required("spacing")?)?,
                    amplitude: parse_f64("amplitude", kv.required("amplitude")?)?,
                }
            }
            "offset" => {
                let kv = KvList::parse(&rest, &ctx, &["feature", "shift_std"])?;
                let f = kv.required("feature")?;
                let feature = f.parse::<usize>().map_err(|e| CollectiveError::BadValue {
                    key: "feature".into(),
                    value: f.into(),
                    reason: e.to_string(),
                })?;
                Trigger::FeatureOffset {
                    feature,
                    shift_std: parse_f64("shift_std", kv.required("shift_std")?)?,
                }
            }
            "token" => {
                let kv = KvList::parse(&rest, &ctx, &["position", "every", "token"])?;
                let token = parse_i64("token", kv.required("token")?)?;
                match (kv.get("position"), kv.get("every")) {
                    (Some(p), None) => Trigger::Token { position: parse_i64("position", p)?, token },
                    (None, Some(k)) => Trigger::TokenEvery { every: parse_i64("every", k)?, token },
                    (None, None) => {
                        return Err(CollectiveError::MissingKey {
                            key: "position (or every)".into(),
                            context: ctx,
                        })
                    }
                    (Some(p), Some(_)) => return Err(CollectiveError::BadValue {
                        key: "position".into(),
                        value: p.into(),
                        reason:
                            "give either position= (set one position) or every= (insert every k-th), not both"
                                .into(),
                    }),
                }
            }
            other => {
                return Err(CollectiveError::BadValue {
                    key: "trigger".into(),
                    value: other.into(),
                    reason: "expected patch, grid, offset or token".into(),
                })
            }
        };
        trigger.check_params()?;
        Ok(trigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Deterministic images `[n, c, h, w]` with values in (0, 1) that are never 0 or 1.
    fn images(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        let v: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 37 + 11) % 97) as f32 / 100.0 + 0.01).collect();
        Tensor::from_slice(&v).reshape([n, c, h, w])
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        Vec::<f32>::try_from(&t.reshape([-1])).unwrap().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn patch_sets_exactly_its_square_and_nothing_else() {
        let (n, c, h, w) = (3, 2, 6, 5);
        let x = images(n, c, h, w);
        for (pos, top, left) in [("br", 4, 3), ("tl", 0, 0), ("tr", 0, 3), ("bl", 4, 0)] {
            let t: Trigger = format!("patch:size=2:pos={pos}:value=1").parse().unwrap();
            let gx = t.apply(&x).unwrap();
            let (a, b) = (bits(&x), bits(&gx));
            for i in 0..(n * c * h * w) as usize {
                let (r, col) = ((i as i64 / w) % h, i as i64 % w);
                let inside = r >= top && r < top + 2 && col >= left && col < left + 2;
                if inside {
                    assert_eq!(f32::from_bits(b[i]), 1.0, "{pos}: pixel {i} inside the patch");
                } else {
                    assert_eq!(a[i], b[i], "{pos}: pixel {i} outside the patch changed");
                }
            }
        }
        // Explicit row/col, negative counting from the edge.
        let t = Trigger::Patch { size: 1, row: -2, col: 1, value: 0.0 };
        let gx = t.apply(&x).unwrap();
        assert_eq!(gx.double_value(&[0, 1, 4, 1]), 0.0);
        assert_eq!(bits(&x).len(), bits(&gx).len());
    }

    #[test]
    fn patch_outside_the_image_is_an_error() {
        let x = images(1, 1, 6, 6);
        for t in [
            Trigger::Patch { size: 7, row: 0, col: 0, value: 1.0 },
            Trigger::Patch { size: 2, row: 5, col: 0, value: 1.0 },
            Trigger::Patch { size: 2, row: 0, col: -6, value: 1.0 },
        ] {
            assert!(matches!(t.apply(&x), Err(CollectiveError::TriggerDoesNotFit { .. })), "{t}");
        }
        let bad_value = Trigger::Patch { size: 2, row: 0, col: 0, value: 1.5 };
        assert!(
            matches!(bad_value.validate(&[1, 6, 6]), Err(CollectiveError::BadTriggerParam { ref field, .. }) if field == "value")
        );
        // Tabular data is not an image.
        assert!(Trigger::Patch { size: 1, row: 0, col: 0, value: 1.0 }.validate(&[10]).is_err());
    }

    #[test]
    fn grid_perturbs_only_grid_pixels_with_clamp() {
        let (n, c, h, w) = (2, 3, 7, 8);
        let x = images(n, c, h, w);
        let t = Trigger::Grid { spacing: 3, amplitude: 0.5 };
        let gx = t.apply(&x).unwrap();
        let xa = Vec::<f32>::try_from(&x.reshape([-1])).unwrap();
        let ga = Vec::<f32>::try_from(&gx.reshape([-1])).unwrap();
        let mut on_grid = 0;
        for i in 0..xa.len() {
            let (r, col) = ((i as i64 / w) % h, i as i64 % w);
            if r % 3 == 0 && col % 3 == 0 {
                on_grid += 1;
                let expected = (xa[i] + 0.5f32).clamp(0.0, 1.0);
                assert_eq!(ga[i], expected, "grid pixel {i}");
            } else {
                assert_eq!(xa[i].to_bits(), ga[i].to_bits(), "off-grid pixel {i}");
            }
        }
        // rows {0,3,6} × cols {0,3,6} × channels × images
        assert_eq!(on_grid, 3 * 3 * c * n);
    }

    #[test]
    fn offset_shifts_one_feature_by_s() {
        let v: Vec<f32> = (0..20).map(|i| i as f32 * 0.25 - 2.0).collect();
        let x = Tensor::from_slice(&v).reshape([5, 4]);
        let t = Trigger::FeatureOffset { feature: 2, shift_std: 1.5 };
        let gx = Vec::<f32>::try_from(&t.apply(&x).unwrap().reshape([-1])).unwrap();
        for i in 0..20 {
            if i % 4 == 2 {
                assert_eq!(gx[i], v[i] + 1.5f32);
            } else {
                assert_eq!(gx[i].to_bits(), v[i].to_bits());
            }
        }
        let out = Trigger::FeatureOffset { feature: 4, shift_std: 1.0 }.apply(&x);
        assert!(
            matches!(out, Err(CollectiveError::TriggerDoesNotFit { ref reason, .. }) if reason.contains("feature = 4"))
        );
    }

    #[test]
    fn token_sets_one_position() {
        let v: Vec<i64> = (0..15).collect();
        let x = Tensor::from_slice(&v).reshape([3, 5]);
        let t = Trigger::Token { position: 1, token: 99 };
        let gx = Vec::<i64>::try_from(&t.apply(&x).unwrap().reshape([-1])).unwrap();
        for i in 0..15 {
            assert_eq!(gx[i], if i % 5 == 1 { 99 } else { v[i] });
        }
        assert!(Trigger::Token { position: 5, token: 1 }.apply(&x).is_err());
        let xf = x.to_kind(Kind::Float);
        assert!(matches!(t.apply(&xf), Err(CollectiveError::WrongDtype { .. })));
        assert!(matches!(
            Trigger::FeatureOffset { feature: 0, shift_std: 1.0 }.apply(&x),
            Err(CollectiveError::WrongDtype { .. })
        ));
    }

    #[test]
    fn token_every_inserts_without_overwriting_and_keeps_at_least_one() {
        // Rows of T = 8: content of 6 (then padding), a full row of 8, a row of 1 ([BOS] only).
        let x = Tensor::from_slice(&[
            2i64, 10, 11, 12, 13, 14, 0, 0, //
            2, 20, 21, 22, 23, 24, 25, 26, //
            2, 0, 0, 0, 0, 0, 0, 0,
        ])
        .reshape([3, 8]);
        let t = Trigger::TokenEvery { every: 3, token: 99 };
        let gx = Vec::<i64>::try_from(&t.apply(&x).unwrap().reshape([-1])).unwrap();
        // 99 at positions 2, 5 (and 8, 11, … past T); the content in order at the others.
        assert_eq!(&gx[..8], &[2, 10, 99, 11, 12, 99, 13, 14]);
        // Cut to T: the tail (24, 25, 26) is dropped, nothing overwritten.
        assert_eq!(&gx[8..16], &[2, 20, 99, 21, 22, 99, 23, 24]);
        // Shorter than k: one token appended after the content.
        assert_eq!(&gx[16..], &[2, 99, 0, 0, 0, 0, 0, 0]);
        // A content that ends right before a token position gets it (the stream continues).
        let y = Tensor::from_slice(&[2i64, 10, 0, 0]).reshape([1, 4]);
        let gy = Vec::<i64>::try_from(&t.apply(&y).unwrap().reshape([-1])).unwrap();
        assert_eq!(gy, [2, 10, 99, 0]);
        // Errors: k < 2, k > T, token 0 (padding), float ids.
        assert!(matches!(
            Trigger::TokenEvery { every: 1, token: 5 }.apply(&x),
            Err(CollectiveError::BadTriggerParam { ref field, .. }) if field == "every"
        ));
        assert!(matches!(
            Trigger::TokenEvery { every: 9, token: 5 }.apply(&x),
            Err(CollectiveError::TriggerDoesNotFit { ref reason, .. }) if reason.contains("every = 9")
        ));
        assert!(Trigger::TokenEvery { every: 3, token: 0 }.check_params().is_err());
        assert!(matches!(t.apply(&x.to_kind(Kind::Float)), Err(CollectiveError::WrongDtype { .. })));
        // Displacement counts the changed positions (insertion shifts the content after it).
        let (linf, _) = t.displacement(&x).unwrap();
        assert_eq!(Vec::<f64>::try_from(&linf).unwrap(), [6.0, 6.0, 1.0]);
        // Jitter changes the period within ±m, keeping 2 ≤ k ≤ T.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..50 {
            let Trigger::TokenEvery { every, token } = t.jittered(&[8], 2.0, &mut rng).unwrap() else {
                panic!()
            };
            assert!(every != 3 && (2..=5).contains(&every) && token == 99, "{every}");
        }
    }

    #[test]
    fn token_triggers_must_use_unseen_ids_of_the_vocabulary() {
        use crate::collective::CollectiveSpec;
        let vocab = crate::data::tokenizer::Vocab::fit(["free cash free cash now now"], 100, 8).unwrap();
        let unseen = vocab.unseen_ids();
        let spec = |t: &str| -> CollectiveSpec { format!("alpha=0.1,target=1,trigger={t}").parse().unwrap() };
        let ok =
            [spec(&format!("token:every=4:token={}", unseen.start)), spec("patch:size=1:pos=br:value=1")];
        assert!(check_tokens(&ok, &vocab).is_ok());
        let free = vocab.id("free").unwrap();
        let e = check_tokens(&[ok[0].clone(), spec(&format!("token:position=1:token={free}"))], &vocab)
            .unwrap_err();
        assert!(matches!(e, CollectiveError::TokenInVocabulary { index: 1, token, .. } if token == free));
        let msg = e.to_string();
        assert!(
            msg.contains("`free`") && msg.contains(&format!("{}..{}", unseen.start, unseen.end)),
            "{msg}"
        );
        // Specials are in the vocabulary too; ids past the table are refused.
        assert!(check_tokens(&[spec("token:every=2:token=2")], &vocab)
            .unwrap_err()
            .to_string()
            .contains("[BOS]"));
        let past = spec(&format!("token:every=2:token={}", unseen.end));
        assert!(check_tokens(&[past], &vocab)
            .unwrap_err()
            .to_string()
            .contains("past the model's embedding table"));
    }

    #[test]
    fn string_round_trip_and_errors() {
        for s in [
            "patch:size=3:pos=br:value=1",
            "patch:size=2:row=3:col=-4:value=0.5",
            "grid:spacing=4:amplitude=-0.125",
            "offset:feature=7:shift_std=2.5",
            "token:position=0:token=42",
            "token:every=20:token=7",
        ] {
            let t: Trigger = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(t.to_string().parse::<Trigger>().unwrap(), t);
        }
        let e = "patch:size=3:pos=middle:value=1".parse::<Trigger>().unwrap_err();
        assert!(
            matches!(e, CollectiveError::BadValue { ref key, ref value, .. } if key == "pos" && value == "middle")
        );
        let e = "patch:size=3:pos=br".parse::<Trigger>().unwrap_err();
        assert!(matches!(e, CollectiveError::MissingKey { ref key, .. } if key == "value"));
        let e = "grid:spacing=4:amplitude=0.1:colour=red".parse::<Trigger>().unwrap_err();
        assert!(matches!(e, CollectiveError::UnknownKey { ref key, .. } if key == "colour"));
        let e = "grid:spacing=x:amplitude=0.1".parse::<Trigger>().unwrap_err();
        assert!(matches!(e, CollectiveError::BadValue { ref key, .. } if key == "spacing"));
        let e = "token:position=1:every=3:token=4".parse::<Trigger>().unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = "token:token=4".parse::<Trigger>().unwrap_err();
        assert!(matches!(e, CollectiveError::MissingKey { ref key, .. } if key.contains("every")));
        let e = "blur:radius=1".parse::<Trigger>().unwrap_err();
        assert!(e.to_string().contains("blur"));
    }

    #[test]
    fn jitter_moves_patch_within_range_and_inside() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let t = Trigger::Patch { size: 2, row: -1, col: -1, value: 1.0 };
        let shape = [1, 8, 8];
        for _ in 0..200 {
            let Trigger::Patch { row, col, size, value } = t.jittered(&shape, 2.0, &mut rng).unwrap() else {
                panic!()
            };
            assert_eq!((size, value), (2, 1.0));
            assert!((row, col) != (6, 6), "jitter must move the patch");
            assert!((4..=6).contains(&row) && (4..=6).contains(&col), "({row},{col}) outside jitter range");
        }
        // A patch filling the image cannot move.
        let full = Trigger::Patch { size: 8, row: 0, col: 0, value: 1.0 };
        assert!(matches!(full.jittered(&shape, 1.0, &mut rng), Err(CollectiveError::BadJitter { .. })));
        // Relative jitter of an offset stays within (1 ± m)·shift.
        let o = Trigger::FeatureOffset { feature: 0, shift_std: 2.0 };
        for _ in 0..100 {
            let Trigger::FeatureOffset { shift_std, .. } = o.jittered(&[3], 0.5, &mut rng).unwrap() else {
                panic!()
            };
            assert!((1.0..=3.0).contains(&shift_std));
        }
        assert!(matches!(t.jittered(&shape, 1.5, &mut rng), Err(CollectiveError::BadJitter { .. })));
    }

    #[test]
    fn serde_form_is_tagged_and_strict() {
        let t = Trigger::Patch { size: 3, row: -1, col: -1, value: 1.0 };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"kind":"patch","size":3,"row":-1,"col":-1,"value":1.0}"#);
        assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);
        let o: Trigger = serde_json::from_str(r#"{"kind":"offset","feature":1,"shift_std":2.0}"#).unwrap();
        assert_eq!(o, Trigger::FeatureOffset { feature: 1, shift_std: 2.0 });
        assert!(serde_json::from_str::<Trigger>(r#"{"kind":"grid","spacing":2,"amplitude":0.1,"extra":1}"#)
            .is_err());
    }
}
