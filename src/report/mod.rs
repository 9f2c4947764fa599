//! Reports: markdown summaries and plots (PNG, SVG) from results CSVs.
