//! DP-SGD: per-sample gradients, clipping (flat, per-layer, ghost), Poisson sampling, secure noise,
//! private optimizer steps.
