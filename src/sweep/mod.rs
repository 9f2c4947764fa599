//! Sweeps: grid spec (TOML), parallel runner, resumable crash-safe results store, shards.
