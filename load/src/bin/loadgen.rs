//! `loadgen`: a load generator for tus 1.0 servers, and a raw S3 baseline.
//!
//! `loadgen tus --url BASE …` runs N concurrent uploads against Ferry (`--server ferry`,
//! `Authorization: Bearer`, downloads through a share) or @tus/server (`--server tus`, no
//! auth, downloads with a GET on the upload URL), speaking raw tus 1.0: `POST /files` with
//! `Upload-Length` and `Upload-Metadata`, `PATCH` bodies of `--chunk` bytes, `HEAD` to resume.
//! Bodies are streamed from a deterministic, seekable source (never a whole file in memory),
//! optionally paced to `--rate` bytes/s per upload, stalled at random (`--pause-prob`) and cut
//! at random (`--disconnect-prob`: the body is aborted mid-PATCH, then the upload resumes with
//! HEAD + PATCH from the server's offset). Each completed file can be downloaded again and its
//! BLAKE3 compared with the source's. It reports per request kind the count, errors and
//! p50/p99 latency, aggregate upload and download MB/s (10^6 B), and the server's RSS and CPU
//! (`--server-pid`). Human-readable report on stderr, one JSON line on stdout.
//!
//! `loadgen s3 --bucket B …` uploads the same bytes (stream 0 of `--seed`, the bytes of
//! upload 0 of `loadgen tus` with the same seed) straight to S3 with a sequential multipart
//! upload (`--part-size`, default 64 MiB), downloads them with one GetObject, verifies the
//! BLAKE3 and reports both MB/s: the baseline Ferry's S3 store is compared with.
//!
//! Exit status: 0 when every upload (and download) succeeded with no unexpected error, 1
//! otherwise (the report is printed either way), 2 for bad arguments.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_load::cli::{S3Args, TusArgs};
use ferry_load::{s3_baseline, tus_run};

/// Command line.
#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for tus 1.0 servers, and a raw S3 baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Concurrent tus uploads (and downloads) against Ferry or @tus/server.
    Tus(TusArgs),
    /// The same bytes straight to S3: sequential multipart PUT, then one GET.
    S3(S3Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Tus(args) => runtime.block_on(tus_run::run(args)),
        Command::S3(args) => runtime.block_on(s3_baseline::run(args)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
