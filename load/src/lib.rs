//! Benchmarks and load generators for Ferry, run by hand (see `load/README.md`).
//!
//! The tools are the binaries under `src/bin/` and the scripts beside this crate. The binaries
//! only parse arguments; the work is here, split by what it is about, so each part can be read
//! (and tested) on its own:
//!
//! - [`cli`]: the options of `loadgen tus` and `loadgen s3`;
//! - [`tus_run`]: `loadgen tus`, its phases, on top of a raw tus client (`tus_client`), the
//!   PATCH bodies it streams (`patch_body`), the downloads (`download`), the counters
//!   (`stats`), the server sampler (`sampler`) and the report (`tus_report`);
//! - [`s3_baseline`]: `loadgen s3`, the raw S3 baseline;
//! - [`data`], [`units`], [`procfs`]: the deterministic data source, size/duration parsing,
//!   percentiles and rounding, `/proc` readings (also used by `range_latency`);
//! - [`relay_bench`]: `smtp_load`, the SMTP relay benchmark's submitter, sink MX and tables;
//! - [`primitives`]: `primitives`, what an upload's real work costs on this host, one core.

pub mod cli;
pub mod data;
mod download;
mod patch_body;
pub mod primitives;
pub mod procfs;
pub mod relay_bench;
pub mod s3_baseline;
mod sampler;
mod stats;
mod tus_client;
mod tus_report;
pub mod tus_run;
pub mod units;
