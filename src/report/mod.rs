//! Reports from results CSVs: a markdown summary (`summary.md`), plots (PNG + SVG) and, for
//! sweeps with DP arms, the calibrated prediction of DP success (`prediction.{csv,md}`, [`prediction`]).
//!
//! Inputs are merged first (deduplicated by `config_hash`, conflicts are errors; see
//! [`crate::sweep::merge`]). See [`analysis`] for how seeds are aggregated and how the critical
//! mass is computed, [`plot`] for what each plot shows.

pub mod analysis;
pub mod critical;
pub mod plot;
pub mod prediction;
pub mod stats;
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
    #[error(transparent)]
    Stats(#[from] analysis::ConfigStatsError),
    #[error("writing {path}: {message}")]
    Csv { path: PathBuf, message: String },
}

/// A prediction of the expected success for a row (e.g. `report::prediction`'s deep-model
/// prediction); drawn on the sandwich plots when given.
pub type Prediction<'a> = &'a dyn Fn(&crate::sweep::store::ResultRow) -> Option<f64>;

/// What a report wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub summary: PathBuf,
    /// PNG paths (each has an SVG twin).
    pub plots: Vec<PathBuf>,
    pub rows: usize,
    /// `config_stats.csv` (one line per configuration).
    pub config_stats: PathBuf,
    /// Verdict counts over configurations (what summary.md's count lines say).
    pub counts: analysis::StatsCounts,
}

/// Reads `inputs`, merges them and writes `summary.md` and the plots into `out`.
pub fn build_report(
    inputs: &[PathBuf],
    out: &Path,
    target_success: f64,
    with_plots: bool,
) -> Result<ReportFiles, ReportError> {
    build_report_with(inputs, out, target_success, with_plots, None)
}

/// [`build_report`] with an optional prediction hook for the sandwich plots.
pub fn build_report_with(
    inputs: &[PathBuf],
    out: &Path,
    target_success: f64,
    with_plots: bool,
    prediction: Option<Prediction<'_>>,
) -> Result<ReportFiles, ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    if !(target_success > 0.0 && target_success <= 1.0) {
        return Err(ReportError::TargetSuccess(target_success));
    }
    let rows = merge_files(inputs)?;
    let panels = analysis::panels(&rows);
    let stats = analysis::config_stats(&rows)?;
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io { path: out.to_path_buf(), source })?;
    // The sandwich plots draw the calibrated deep-model prediction unless the caller gives another.
    let own_prediction = prediction::predictor(&rows);
    let prediction: Option<Prediction<'_>> = Some(prediction.unwrap_or(&own_prediction));
    let mut plots: Vec<(analysis::PanelKey, Vec<(String, String)>)> = Vec::new();
    if with_plots {
        for p in &panels {
            let mut files = plot::write_panel(out, p, target_success).map_err(ReportError::Plot)?;
            files.extend(
                plot::write_sandwiches(out, p, &rows, &stats, prediction).map_err(ReportError::Plot)?,
            );
            plots.push((p.key.clone(), files));
        }
    }
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let md = summary::markdown(&names, &rows, &panels, &stats, target_success, &|p| {
        plots.iter().find(|(k, _)| *k == p.key).map(|(_, f)| f.clone()).unwrap_or_default()
    });
    // Calibrated deep-model prediction of DP success (prediction.csv / prediction.md).
    prediction::write(out, &rows)?;
    let summary = out.join("summary.md");
    std::fs::write(&summary, md).map_err(|source| ReportError::Io { path: summary.clone(), source })?;
    // A steerability audit's rows (its steer.json beside an input): the critical mass per arm.
    if let Some(st) = critical::settings_beside(inputs) {
        critical::write(out, &rows, &st.targets, st.threshold, with_plots)?;
    }
    let config_stats = out.join("config_stats.csv");
    let bytes = summary::config_stats_csv(&stats)
        .map_err(|e| ReportError::Csv { path: config_stats.clone(), message: e.to_string() })?;
    std::fs::write(&config_stats, bytes)
        .map_err(|source| ReportError::Io { path: config_stats.clone(), source })?;
    Ok(ReportFiles {
        config_stats,
        counts: analysis::count_verdicts(&stats),
        summary,
        plots: plots.iter().flat_map(|(_, f)| f.iter().map(|(_, n)| out.join(n))).collect(),
        rows: rows.len(),
    })
}
