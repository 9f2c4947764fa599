//! One file per subcommand: its clap arguments and the glue to the library (anyhow at this edge).
pub mod account;
pub mod audit;
pub mod bound;
pub mod data;
pub mod recsys;
pub mod report;
pub mod steer;
pub mod sweep;
pub mod train;
