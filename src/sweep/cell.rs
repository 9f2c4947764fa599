//! Running one sweep cell: train with the cell's settings, measure, account, bound → one row.
//!
//! PLACEHOLDER (owned by the lead after merge): the real body wires data → collective → models +
//! dpsgd → accountant → bounds. Until then every cell fails with "not wired yet", which the sweep
//! records as a failed row (retried on the next run).

use super::spec::Cell;
use super::store::ResultRow;

/// Runs one cell and returns its results row (start from [`ResultRow::from_cell`]).
pub fn run_cell(_cell: &Cell) -> Result<ResultRow, String> {
    Err("not wired yet: crowdout::sweep::cell::run_cell is a placeholder".to_string())
}
