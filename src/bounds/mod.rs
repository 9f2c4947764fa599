//! Bounds on the success of collective action: Hardt et al. 2023, the DP-SGD bound, several
//! collectives, coordination noise, the group-privacy ceiling. Pure Rust, no torch dependency.
//! Derivations: `docs/bounds.md`.
