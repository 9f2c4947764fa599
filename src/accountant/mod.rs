//! Privacy accounting for DP-SGD (Poisson-subsampled Gaussian): RDP, PLD, σ calibration,
//! group privacy, Gaussian DP. Pure Rust, no torch dependency.
