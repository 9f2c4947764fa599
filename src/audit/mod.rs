//! Empirical privacy audit (ε lower bounds from canaries) and membership inference.
