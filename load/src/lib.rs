//! Benchmarks and load generators for Ferry, run by hand (see `load/README.md`).
//!
//! The tools are the binaries under `src/bin/` and the scripts beside this crate. This library
//! holds the parts the load generator (`src/bin/loadgen.rs`) shares and tests on their own:
//! the deterministic data source, size and duration parsing, percentiles, and `/proc` samples.

pub mod data;
pub mod procfs;
pub mod units;
