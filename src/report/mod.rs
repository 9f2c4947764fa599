//! Reports from results CSVs: a markdown summary (`summary.md`), plots (PNG + SVG) and, for
//! sweeps with DP arms, the calibrated prediction of DP success (`prediction.{csv,md}`, [`prediction`]).
//!
//! Inputs are merged first (deduplicated by `config_hash`, conflicts are errors; see
//! [`crate::sweep::merge`]). See [`analysis`] for how seeds are aggregated and how the critical
//! mass is computed, [`plot`] for what each plot shows.

pub mod analysis;
pub mod plot;
pub mod prediction;
pub mod summary;

use std::path::{Path, PathBuf};

use crate::sweep::merge::merge_files;
use crate::sweep::SweepError;

/// Default target success S* for the critical mass.
pub const DEFAULT_TARGET_SUCCESS: f64 = 0.9;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plot {0}")]
    Plot(String),
    #[error("--target-success {0}: must be in (0, 1]")]
    TargetSuccess(f64),
    #[error("no results files given")]
    NoInputs,
}

/// What a report wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub summary: PathBuf,
    /// PNG paths (each has an SVG twin).
    pub plots: Vec<PathBuf>,
    pub rows: usize,
}

/// Reads `inputs`, merges them and writes `summary.md` and the plots into `out`.
pub fn build_report(
    inputs: &[PathBuf],
    out: &Path,
    target_success: f64,
    with_plots: bool,
) -> Result<ReportFiles, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    if !(target_success > 0.0 && target_success <= 1.0) {
        return Err(ReportError::TargetSuccess(target_success));
    }
    let rows = merge_files(inputs)?;
    let panels = analysis::panels(&rows);
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut plots: Vec<(analysis::PanelKey, Vec<(String, String)>)> = Vec::new();
    if with_plots {
        for p in &panels {
            let files = plot::write_panel(out, p, target_success).map_err(ReportError::Plot)?;
            plots.push((p.key.clone(), files));
        }
    }
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let md = summary::markdown(&names, &rows, &panels, target_success, &|p| {
        plots
            .iter()
            .find(|(k, _)| *k == p.key)
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    });
    // Calibrated deep-model prediction of DP success (prediction.csv / prediction.md).
    prediction::write(out, &rows)?;
    let summary = out.join("summary.md");
    std::fs::write(&summary, md).map_err(|source| ReportError::Io {
        path: summary.clone(),
        source,
    })?;
    Ok(ReportFiles {
        summary,
        plots: plots
            .iter()
            .flat_map(|(_, f)| f.iter().map(|(_, n)| out.join(n)))
            .collect(),
        rows: rows.len(),
    })
}
