//! Sweeps: a grid spec in TOML, a parallel resumable runner ([`run`]) and a crash-safe results
//! CSV ([`store`]), with shards for job arrays, Slurm submission ([`slurm`]) and a merge of shard
//! files ([`merge`]).
//!
//! The spec, room by room: [`spec`] the schema (axes, `[train]`, defaults), [`validate`] reading a
//! file into it (errors with key and line), [`privacy`] the privacy-arm grammar, [`hash`] a cell's
//! canonical JSON and `config_hash`, [`plan`] the grid as index arithmetic (cells by index, shards
//! without listing the grid). The results: [`row`] the row schema and its versions, [`store`] the
//! crash-safe appending file, [`finished`] which cells are done.
//!
//! The runner is generic over the function that runs one [`spec::Cell`]; the real one lives in
//! [`cell::run_cell`], and tests use the deterministic fake in [`fake`].

pub mod cell;
pub mod convex;
pub mod fake;
pub mod finished;
pub mod hardt;
pub mod hash;
pub mod merge;
pub mod plan;
pub mod privacy;
pub mod row;
pub mod run;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod validate;

pub use run::{parse_shard, run_sweep, RunOptions, SweepSummary};
pub use spec::{Cell, CollectiveCell, Grid, Privacy, SweepSpec, TrainSection};
pub use store::{ResultRow, ResultStore, SCHEMA_VERSION};

use std::path::PathBuf;

/// Everything that can go wrong in a sweep; each variant names the file, key or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TOML syntax or type error; `message` is toml's, with line, column and key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value that parses but is not allowed (empty axis, α out of range, ...).
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, line: usize, message: String },
    /// A results file that cannot be read as this schema.
    #[error("{path}: {message}")]
    Store { path: PathBuf, message: String },
    /// Two result files disagree on the same cell.
    #[error("conflicting rows for config_hash {hash}: {first} vs {second}: {what}")]
    Conflict { hash: String, first: String, second: String, what: String },
    #[error("--shard {value}: {message}")]
    Shard { value: String, message: String },
    #[error("{0}")]
    Other(String),
}
