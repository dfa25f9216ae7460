//! The options of `loadgen tus` and `loadgen s3`.
//!
//! They live in the library, not in the binary, because the runs read them directly: an option
//! added here reaches the run and its report without a second struct to keep in step. The doc
//! comments on the fields are clap's `--help` text, so they say what a flag does for the person
//! typing it.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::units::{parse_duration, parse_duration_range, parse_size};

/// Which kind of tus server is driven: they differ in auth and in how a finished file is
/// fetched back, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Flavor {
    /// Ferry: bearer auth; a download goes through `POST /api/v1/shares` and `<url>/f/<id>`.
    Ferry,
    /// @tus/server: no auth; a download is a GET on the upload URL.
    Tus,
}

/// When completed files are downloaded: apart, the upload and download figures stay separate;
/// inline, the server sees the mixed traffic of real use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DownloadMode {
    /// Not at all.
    None,
    /// After every upload has finished, N at a time (separate upload and download figures).
    After,
    /// Each right after its own upload (mixed traffic; the upload phase then includes them).
    Inline,
}

/// `loadgen tus`: the whole description of a run. Most of it is copied into the JSON line, so a
/// figure in a table can always be traced back to the options that produced it.
#[derive(Args, Clone)]
pub struct TusArgs {
    /// Base URL of the server; uploads are created at BASE/files.
    #[arg(long)]
    pub url: String,
    /// What kind of server BASE is.
    #[arg(long, value_enum, default_value = "ferry")]
    pub server: Flavor,
    /// Bearer token (Ferry's tenant API key); also read from FERRY_LOAD_BEARER.
    #[arg(long, env = "FERRY_LOAD_BEARER", hide_env_values = true)]
    pub bearer: Option<String>,
    /// Number of concurrent uploads (one file each).
    #[arg(short = 'n', long, default_value_t = 4)]
    pub uploads: usize,
    /// Size of each file (e.g. 256MiB, 8MiB, 1GB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub size: u64,
    /// Bytes per PATCH request (the last one of a file may be shorter).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub chunk: u64,
    /// Pace each upload's body to this many bytes per second (default: as fast as possible).
    #[arg(long, value_parser = parse_size)]
    pub rate: Option<u64>,
    /// Probability that a PATCH body stalls once, at a random point.
    #[arg(long, default_value_t = 0.0)]
    pub pause_prob: f64,
    /// How long a stall lasts: uniform in MIN-MAX (e.g. 500ms-2s).
    #[arg(long, default_value = "500ms-2s", value_parser = parse_pause)]
    pub pause: PauseRange,
    /// Probability that a PATCH body is aborted at a random point (then HEAD + resume).
    #[arg(long, default_value_t = 0.0)]
    pub disconnect_prob: f64,
    /// When to download the completed files (and verify their BLAKE3).
    #[arg(long, value_enum, default_value = "after")]
    pub download: DownloadMode,
    /// Do not hash the source or the downloads (downloads are then only counted).
    #[arg(long)]
    pub no_verify: bool,
    /// Delete each upload (tus DELETE) once it is no longer needed.
    #[arg(long)]
    pub delete: bool,
    /// Seed of the data and of the random choices; upload i sends stream i of the seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sample this process's VmRSS/VmHWM/CPU from /proc (the server under test).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Size of each piece a body is streamed in (smaller when paced: a quarter second).
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    pub piece: u64,
    /// Give up a single request after this long.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Give up an upload after this many failed attempts in a row (injected disconnects and
    /// the 409/423 answers that follow them do not count).
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// Give up a share (Ferry) after this many failed attempts.
    #[arg(long, default_value_t = 50)]
    pub share_retries: u32,
    /// Print progress to stderr this often (0 = never).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub progress: Duration,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `loadgen s3`: the knobs of the raw baseline, kept to the ones that change what S3 is asked
/// to do, so its figure stays comparable with Ferry's S3 store.
#[derive(Args, Clone)]
pub struct S3Args {
    /// S3 endpoint URL (path-style addressing); default: AWS's endpoint for the region.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(long, env = "AWS_REGION", default_value = "eu-central-1")]
    pub region: String,
    /// Bucket to write into (credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
    /// AWS default chain).
    #[arg(long)]
    pub bucket: String,
    /// Size of the object.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub size: u64,
    /// Multipart part size (parts are sent one after the other, like a plain client).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Seed of the data: the object holds stream 0, the bytes `loadgen tus` sends as upload 0.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only upload (no GET).
    #[arg(long)]
    pub no_download: bool,
    /// Keep the object (default: delete it at the end).
    #[arg(long)]
    pub keep: bool,
    /// Let the SDK add its default checksums (CRC32 trailers). Default: only where S3
    /// requires them, as Ferry's S3 store does.
    #[arg(long)]
    pub sdk_checksums: bool,
    /// Sample this process's VmRSS/VmHWM/CPU from /proc (the S3 server, if local).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// A stall length range, `MIN-MAX`: stalls of random length, so concurrent uploads do not
/// resume in lockstep.
#[derive(Clone, Copy, Debug)]
pub struct PauseRange {
    /// The shortest stall.
    pub min: Duration,
    /// The longest stall.
    pub max: Duration,
}

/// clap's parser for `--pause`.
fn parse_pause(text: &str) -> anyhow::Result<PauseRange> {
    let (min, max) = parse_duration_range(text)?;
    Ok(PauseRange { min, max })
}
