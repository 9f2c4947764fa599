//! The bounds module's error type: every variant names the parameter (or flag) at fault.

use thiserror::Error;

/// Errors from the bound functions. Parameter names are the public field names, which the CLI
/// maps one-to-one onto its flags (`delta_gap` ↔ `--delta-gap`).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BoundError {
    /// A numeric parameter is NaN, infinite or outside its range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range, in words.
        expected: &'static str,
    },
    /// Two slices that must be the same length are not.
    #[error("length mismatch: {a_name} has {a} entries but {b_name} has {b}")]
    LengthMismatch {
        /// First slice's name.
        a_name: &'static str,
        /// Its length.
        a: usize,
        /// Second slice's name.
        b_name: &'static str,
        /// Its length.
        b: usize,
    },
    /// A slice that must be non-empty is empty.
    #[error("{name} is empty")]
    Empty {
        /// The slice's name.
        name: &'static str,
    },
    /// The learning rate is too large for the contraction argument of the DP-SGD bound.
    #[error(
        "lr = {lr} is too large for the contraction argument: need lr <= 2/(smoothness + 2*lambda) = {max}"
    )]
    StepTooLarge {
        /// The learning rate given.
        lr: f64,
        /// The largest learning rate the argument allows.
        max: f64,
    },
    /// The requested combination is outside what the derivation covers (e.g. the clipped
    /// minimiser as a guarantee for softmax with K ≥ 3 classes).
    #[error("not covered by the derivation: {0}")]
    NotCovered(String),
}

/// Result alias for the bounds module.
pub type Result<T> = std::result::Result<T, BoundError>;

/// `value` must be finite and in `[lo, hi]` (closed) — returns it, else an error naming `name`.
pub(crate) fn check_closed(
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<f64> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(BoundError::InvalidParameter { name, value, expected })
    }
}

/// `value` must be finite and in `(lo, hi]`.
pub(crate) fn check_open_closed(
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<f64> {
    if value.is_finite() && value > lo && value <= hi {
        Ok(value)
    } else {
        Err(BoundError::InvalidParameter { name, value, expected })
    }
}

/// `value` must be finite and `> 0`.
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(BoundError::InvalidParameter { name, value, expected: "a finite number > 0" })
    }
}

/// `value` must be finite and `>= 0`.
pub(crate) fn check_nonneg(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(BoundError::InvalidParameter { name, value, expected: "a finite number >= 0" })
    }
}
