//! Models built from DP-aware layers that keep what per-sample gradients need.
