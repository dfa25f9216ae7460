//! Benchmarks and load generators for Ferry, run by hand (see `load/README.md`).
//!
//! The library is empty; the tools are the binaries under `src/bin/` and the scripts beside
//! this crate.
