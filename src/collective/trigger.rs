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
            Trigger::Token { .. } => "token",
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
            Trigger::Token { .. } => kind == Kind::Int64,
            _ => is_float_kind(kind),
        };
        if ok {
            Ok(())
        } else {
            Err(CollectiveError::WrongDtype {
                trigger: self.to_string(),
                expected: if matches!(self, Trigger::Token { .. }) {
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
        }
        Ok(out)
    }

    /// Per-example distances between x and g(x), as `(L∞, L2)` f64 tensors `[N]`. For tokens both
    /// are the number of changed positions (0 or 1): token ids have no metric.
    pub(crate) fn displacement(&self, x: &Tensor) -> Result<(Tensor, Tensor), CollectiveError> {
        let gx = self.apply(x)?;
        let n = x.size()[0];
        if let Trigger::Token { .. } = self {
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
        Trigger::Patch { .. } | Trigger::Token { .. } => {
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
                let kv = KvList::parse(&rest, &ctx, &["position", "token"])?;
                Trigger::Token {
                    position: parse_i64("position", kv.required("position")?)?,
                    token: parse_i64("token", kv.required("token")?)?,
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
    fn string_round_trip_and_errors() {
        for s in [
            "patch:size=3:pos=br:value=1",
            "patch:size=2:row=3:col=-4:value=0.5",
            "grid:spacing=4:amplitude=-0.125",
            "offset:feature=7:shift_std=2.5",
            "token:position=0:token=42",
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
