//! The collective module's error type. Every variant names the value (and, where there is one,
//! the spec key or collective index) at fault, so a CLI user can fix the input without reading code.

use thiserror::Error;

/// Errors from parsing specs, validating them against data, planting collectives and measuring
/// success.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CollectiveError {
    // ---- spec syntax -------------------------------------------------------------------------
    /// A spec string or sub-spec could not be parsed.
    #[error("collective spec: bad value for `{key}`: `{value}` ({reason})")]
    BadValue { key: String, value: String, reason: String },
    /// A key that the grammar does not know.
    #[error("collective spec: unknown key `{key}` in `{context}` (expected one of: {expected})")]
    UnknownKey { key: String, context: String, expected: String },
    /// A required key is absent.
    #[error("collective spec: missing required key `{key}` in `{context}`")]
    MissingKey { key: String, context: String },
    /// A key given twice.
    #[error("collective spec: key `{key}` given more than once in `{context}`")]
    DuplicateKey { key: String, context: String },

    // ---- parameter ranges --------------------------------------------------------------------
    /// α must lie in the open interval (0, 1).
    #[error("collective {index}: alpha = {alpha} is not in (0, 1)")]
    AlphaOutOfRange { index: usize, alpha: f64 },
    /// The collectives together must be less than the whole training set.
    #[error("collectives: the sum of alpha = {sum} is not < 1 (alphas: {alphas:?})")]
    AlphaSumTooLarge { sum: f64, alphas: Vec<f64> },
    /// ⌊αN⌋ = 0: the collective would be empty.
    #[error("collective {index}: alpha = {alpha} of N = {n} training records gives floor(alpha*N) = 0 members; raise alpha")]
    NoMembers { index: usize, alpha: f64, n: i64 },
    /// The target label is not a class of the data set.
    #[error("collective {index}: target = {target} is not a class label (labels are 0..{num_classes})")]
    TargetOutOfRange { index: usize, target: i64, num_classes: i64 },
    /// Coordination-noise fraction ν must lie in [0, 1].
    #[error("collective noise: fraction nu = {nu} is not in [0, 1]")]
    NoiseOutOfRange { nu: f64 },
    /// Jitter magnitude out of range for the trigger it perturbs.
    #[error(
        "collective noise: jitter magnitude = {magnitude} is invalid for a {trigger} trigger ({reason})"
    )]
    BadJitter { magnitude: f64, trigger: String, reason: String },
    /// Not enough eligible training records to draw the members from.
    #[error("collective {index}: needs {needed} members drawn from {members_from} records (target {target}) but only {available} are eligible and not already in an earlier collective")]
    NotEnoughEligible { index: usize, needed: u64, available: u64, members_from: String, target: i64 },

    // ---- trigger vs data ---------------------------------------------------------------------
    /// A trigger parameter is out of its own range (independently of data).
    #[error("trigger {trigger}: {field} = {value} is invalid ({reason})")]
    BadTriggerParam { trigger: String, field: String, value: String, reason: String },
    /// The trigger does not fit the examples' shape (patch outside the image, feature index out
    /// of range, token position past the sequence end, wrong rank).
    #[error("trigger {trigger} does not fit examples of shape {shape:?}: {reason}")]
    TriggerDoesNotFit { trigger: String, shape: Vec<i64>, reason: String },
    /// A token trigger's id is a word of the clean vocabulary (or outside the model's table).
    #[error("collective {index}: trigger token id {token} cannot be planted: {reason}; use an unseen id in {unseen_lo}..{unseen_hi}")]
    TokenInVocabulary { index: usize, token: i64, reason: String, unseen_lo: i64, unseen_hi: i64 },
    /// The tensor's dtype is wrong for the trigger (tokens need i64 ids, the others floats).
    #[error("trigger {trigger} needs {expected} features, got {got}")]
    WrongDtype { trigger: String, expected: String, got: String },

    // ---- data / metrics ----------------------------------------------------------------------
    /// The data set itself is unusable (fewer than two classes, labels out of range, empty).
    #[error("data set: {0}")]
    BadData(String),
    /// No test point has a true label other than the target, so success is undefined.
    #[error("collective with target {target}: the test set has no point whose true label differs from the target ({n} points in total)")]
    NoNonTargetTestPoints { target: i64, n: i64 },
    /// The prediction function returned something of the wrong shape.
    #[error("predict returned {got} labels for {expected} inputs")]
    BadPredictions { expected: i64, got: String },
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(String),
}

impl From<tch::TchError> for CollectiveError {
    fn from(e: tch::TchError) -> Self {
        CollectiveError::Torch(e.to_string())
    }
}
