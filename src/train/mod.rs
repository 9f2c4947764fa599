//! Training runs: config, loop (non-private and DP-SGD), evaluation and the JSON run record.
pub mod fit;
pub mod run;
