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

use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_load::data::{Rng, Source};
use ferry_load::procfs::ProcSample;
use ferry_load::units::{mb_per_s, ms, parse_duration, parse_size, percentile};
use futures_util::{Stream, StreamExt};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use tokio::time::Instant;

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

/// Which kind of tus server is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flavor {
    /// Ferry: bearer auth; a download goes through `POST /api/v1/shares` and `<url>/f/<id>`.
    Ferry,
    /// @tus/server: no auth; a download is a GET on the upload URL.
    Tus,
}

/// When completed files are downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DownloadMode {
    /// Not at all.
    None,
    /// After every upload has finished, N at a time (separate upload and download figures).
    After,
    /// Each right after its own upload (mixed traffic; the upload phase then includes them).
    Inline,
}

#[derive(Args, Clone)]
struct TusArgs {
    /// Base URL of the server; uploads are created at BASE/files.
    #[arg(long)]
    url: String,
    /// What kind of server BASE is.
    #[arg(long, value_enum, default_value = "ferry")]
    server: Flavor,
    /// Bearer token (Ferry's tenant API key); also read from FERRY_LOAD_BEARER.
    #[arg(long, env = "FERRY_LOAD_BEARER", hide_env_values = true)]
    bearer: Option<String>,
    /// Number of concurrent uploads (one file each).
    #[arg(short = 'n', long, default_value_t = 4)]
    uploads: usize,
    /// Size of each file (e.g. 256MiB, 8MiB, 1GB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Bytes per PATCH request (the last one of a file may be shorter).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    chunk: u64,
    /// Pace each upload's body to this many bytes per second (default: as fast as possible).
    #[arg(long, value_parser = parse_size)]
    rate: Option<u64>,
    /// Probability that a PATCH body stalls once, at a random point.
    #[arg(long, default_value_t = 0.0)]
    pause_prob: f64,
    /// How long a stall lasts: uniform in MIN-MAX (e.g. 500ms-2s).
    #[arg(long, default_value = "500ms-2s", value_parser = parse_pause)]
    pause: PauseRange,
    /// Probability that a PATCH body is aborted at a random point (then HEAD + resume).
    #[arg(long, default_value_t = 0.0)]
    disconnect_prob: f64,
    /// When to download the completed files (and verify their BLAKE3).
    #[arg(long, value_enum, default_value = "after")]
    download: DownloadMode,
    /// Do not hash the source or the downloads (downloads are then only counted).
    #[arg(long)]
    no_verify: bool,
    /// Delete each upload (tus DELETE) once it is no longer needed.
    #[arg(long)]
    delete: bool,
    /// Seed of the data and of the random choices; upload i sends stream i of the seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sample this process's VmRSS/VmHWM/CPU from /proc (the server under test).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Size of each piece a body is streamed in (smaller when paced: a quarter second).
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    piece: u64,
    /// Give up a single request after this long.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Give up an upload after this many failed attempts in a row (injected disconnects and
    /// the 409/423 answers that follow them do not count).
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
    /// Give up a share (Ferry) after this many failed attempts.
    #[arg(long, default_value_t = 50)]
    share_retries: u32,
    /// Print progress to stderr this often (0 = never).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    progress: Duration,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args, Clone)]
struct S3Args {
    /// S3 endpoint URL (path-style addressing); default: AWS's endpoint for the region.
    #[arg(long)]
    endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(long, env = "AWS_REGION", default_value = "eu-central-1")]
    region: String,
    /// Bucket to write into (credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
    /// AWS default chain).
    #[arg(long)]
    bucket: String,
    /// Size of the object.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Multipart part size (parts are sent one after the other, like a plain client).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    part_size: u64,
    /// Seed of the data: the object holds stream 0, the bytes `loadgen tus` sends as upload 0.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only upload (no GET).
    #[arg(long)]
    no_download: bool,
    /// Keep the object (default: delete it at the end).
    #[arg(long)]
    keep: bool,
    /// Let the SDK add its default checksums (CRC32 trailers). Default: only where S3
    /// requires them, as Ferry's S3 store does.
    #[arg(long)]
    sdk_checksums: bool,
    /// Sample this process's VmRSS/VmHWM/CPU from /proc (the S3 server, if local).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// A stall length range, `MIN-MAX`.
#[derive(Clone, Copy, Debug)]
struct PauseRange {
    min: Duration,
    max: Duration,
}

fn parse_pause(text: &str) -> anyhow::Result<PauseRange> {
    let (min, max) = ferry_load::units::parse_duration_range(text)?;
    Ok(PauseRange { min, max })
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
        Command::Tus(args) => runtime.block_on(run_tus(args)),
        Command::S3(args) => runtime.block_on(run_s3(args)),
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

// ------------------------------------------------------------------------------------------
// Statistics

/// What happened to the requests of one kind.
#[derive(Default)]
struct KindStats {
    /// Latencies of the requests that got their expected answer.
    latencies: Vec<Duration>,
    /// Requests that got their expected answer.
    ok: u64,
    /// Unexpected answers and failures, by cause.
    errors: BTreeMap<String, u64>,
    /// Answers that are the protocol's normal reply to a resume after a disconnect we caused
    /// (409 offset moved on, 423 still held), by status; the client retries them.
    retried: BTreeMap<String, u64>,
    /// Requests we aborted on purpose.
    injected: u64,
}

/// Request statistics of a whole run, by kind (`create`, `patch`, `head`, `share`, …).
#[derive(Default)]
struct Stats {
    kinds: Mutex<BTreeMap<&'static str, KindStats>>,
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn kinds(&self) -> MutexGuard<'_, BTreeMap<&'static str, KindStats>> {
        self.kinds.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn ok(&self, kind: &'static str, latency: Duration) {
        let mut kinds = self.kinds();
        let k = kinds.entry(kind).or_default();
        k.ok += 1;
        k.latencies.push(latency);
    }
    fn error(&self, kind: &'static str, cause: impl Into<String>) {
        *self
            .kinds()
            .entry(kind)
            .or_default()
            .errors
            .entry(cause.into())
            .or_default() += 1;
    }
    fn retried(&self, kind: &'static str, cause: impl Into<String>) {
        *self
            .kinds()
            .entry(kind)
            .or_default()
            .retried
            .entry(cause.into())
            .or_default() += 1;
    }
    fn injected(&self, kind: &'static str) {
        self.kinds().entry(kind).or_default().injected += 1;
    }
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.push(what);
    }
    fn total_errors(&self) -> u64 {
        self.kinds()
            .values()
            .map(|k| k.errors.values().sum::<u64>())
            .sum()
    }
}

/// A short cause for a failed request: the innermost error's text, without URLs.
fn cause(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() {
        "body"
    } else if error.is_request() {
        "request"
    } else {
        "transport"
    };
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    format!("{kind}: {source}")
}

/// Samples the server's RSS every 100 ms, keeping the maximum per phase.
struct Sampler {
    pid: String,
    phase: AtomicUsize,
    max_rss_kib: [AtomicU64; 2],
}

impl Sampler {
    fn spawn(pid: u32) -> (Arc<Sampler>, tokio::task::JoinHandle<()>) {
        let sampler = Arc::new(Sampler {
            pid: pid.to_string(),
            phase: AtomicUsize::new(0),
            max_rss_kib: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let s = sampler.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                match ProcSample::read(&s.pid) {
                    Ok(sample) => {
                        let phase = s.phase.load(Ordering::Relaxed).min(1);
                        s.max_rss_kib[phase].fetch_max(sample.rss_kib, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
        });
        (sampler, task)
    }
    /// Reads a sample now, and counts it for the current phase (a phase shorter than the
    /// sampling interval still gets one sample).
    fn read(&self) -> Option<ProcSample> {
        let sample = ProcSample::read(&self.pid).ok()?;
        let phase = self.phase.load(Ordering::Relaxed).min(1);
        self.max_rss_kib[phase].fetch_max(sample.rss_kib, Ordering::Relaxed);
        Some(sample)
    }
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

// ------------------------------------------------------------------------------------------
// tus

/// Everything the upload and download tasks share.
struct Shared {
    args: TusArgs,
    client: Client,
    files_url: Url,
    stats: Stats,
    /// PATCH body bytes handed to the HTTP client, re-sent bytes included.
    wire_bytes: AtomicU64,
    /// Upload bytes the server confirmed (Upload-Offset advances).
    acked_bytes: AtomicU64,
    downloaded_bytes: AtomicU64,
    uploads_done: AtomicUsize,
    uploads_failed: AtomicUsize,
    downloads_done: AtomicUsize,
    pauses: AtomicU64,
    disconnects: AtomicU64,
}

impl Shared {
    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, url)
            .timeout(self.args.request_timeout);
        match &self.args.bearer {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }
    fn tus(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.request(method, url).header("Tus-Resumable", "1.0.0")
    }
}

/// A completed upload.
struct Done {
    index: usize,
    location: Url,
    /// Where its bytes are downloaded from (the share link for Ferry, the upload URL for tus).
    download_url: Option<Url>,
    /// BLAKE3 of the source, unless `--no-verify`.
    hash: Option<blake3::Hash>,
    elapsed: Duration,
    /// When its last PATCH was confirmed (before the share).
    finished: Instant,
}

/// The running BLAKE3 of what an upload has generated, in order: bytes re-sent after a
/// resume are not hashed twice.
struct HashState {
    hasher: blake3::Hasher,
    upto: u64,
}

/// Plan of one PATCH body.
struct Body {
    shared: Arc<Shared>,
    source: Source,
    pos: u64,
    end: u64,
    piece: u64,
    rate: Option<f64>,
    /// When byte `paced_from` was due; later bytes are due at `rate`.
    due_base: Instant,
    paced_from: u64,
    pause: Option<(u64, Duration)>,
    abort_at: Option<u64>,
    aborted: Arc<AtomicBool>,
    hash: Option<Arc<Mutex<HashState>>>,
    done: bool,
}

fn body_stream(body: Body) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::unfold(body, |mut b| async move {
        if b.done || b.pos >= b.end {
            return None;
        }
        if b.abort_at.is_some_and(|at| b.pos >= at) {
            b.done = true;
            b.aborted.store(true, Ordering::SeqCst);
            b.shared.disconnects.fetch_add(1, Ordering::Relaxed);
            return Some((Err(io::Error::other("injected disconnect")), b));
        }
        if let Some((at, stall)) = b.pause
            && b.pos >= at
        {
            b.pause = None;
            b.shared.pauses.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(stall).await;
            b.due_base += stall;
        }
        let mut n = b.piece.min(b.end - b.pos);
        for stop in [b.abort_at, b.pause.map(|(at, _)| at)]
            .into_iter()
            .flatten()
        {
            if stop > b.pos {
                n = n.min(stop - b.pos);
            }
        }
        if let Some(rate) = b.rate {
            let due = b.due_base + Duration::from_secs_f64((b.pos - b.paced_from) as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let mut buf = vec![0u8; n as usize];
        b.source.fill(b.pos, &mut buf);
        if let Some(hash) = &b.hash {
            let mut h = hash.lock().unwrap_or_else(|e| e.into_inner());
            let end = b.pos + n;
            if h.upto >= b.pos && h.upto < end {
                let from = (h.upto - b.pos) as usize;
                h.hasher.update(&buf[from..]);
                h.upto = end;
            }
        }
        b.pos += n;
        b.shared.wire_bytes.fetch_add(n, Ordering::Relaxed);
        Some((Ok(Bytes::from(buf)), b))
    })
}

fn header_u64(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The server's offset of an upload, with up to `max_retries` retries.
async fn head(shared: &Shared, location: &Url) -> anyhow::Result<u64> {
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let result = shared
            .tus(reqwest::Method::HEAD, location.clone())
            .send()
            .await;
        let problem = match result {
            Ok(response) if response.status() == StatusCode::OK => {
                match header_u64(&response, "upload-offset") {
                    Some(offset) => {
                        shared.stats.ok("head", started.elapsed());
                        return Ok(offset);
                    }
                    None => "200 without Upload-Offset".to_string(),
                }
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) => cause(&e),
        };
        shared.stats.error("head", problem.clone());
        failures += 1;
        if failures > shared.args.max_retries {
            bail!("HEAD {location}: {problem}");
        }
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// How many resumes in a row (409/423/broken pipe after a disconnect) an upload may need.
const RESUME_LIMIT: u32 = 100;

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(20)))
}

/// `POST /files`; returns the upload's absolute URL.
async fn create(shared: &Shared, index: usize) -> anyhow::Result<Url> {
    let args = &shared.args;
    let name = format!("loadgen-{}-{index}.bin", args.seed);
    let metadata = format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    );
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let result = shared
            .tus(reqwest::Method::POST, shared.files_url.clone())
            .header("Upload-Length", args.size)
            .header("Upload-Metadata", &metadata)
            .send()
            .await;
        let problem = match result {
            Ok(response) if response.status() == StatusCode::CREATED => {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match location.map(|l| shared.files_url.join(&l)) {
                    Some(Ok(url)) => {
                        shared.stats.ok("create", started.elapsed());
                        return Ok(url);
                    }
                    _ => "201 without a usable Location".to_string(),
                }
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) => cause(&e),
        };
        shared.stats.error("create", problem.clone());
        failures += 1;
        if failures > args.max_retries {
            bail!("POST /files: {problem}");
        }
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// One whole upload: create, PATCH chunk after chunk (pausing, disconnecting and resuming as
/// told), then for Ferry a share when downloads are wanted.
async fn upload(shared: Arc<Shared>, index: usize) -> anyhow::Result<Done> {
    let args = shared.args.clone();
    let started = Instant::now();
    let source = Source::new(args.seed, index as u64);
    let mut rng = Rng::new(args.seed, index as u64);
    let hash = (!args.no_verify).then(|| {
        Arc::new(Mutex::new(HashState {
            hasher: blake3::Hasher::new(),
            upto: 0,
        }))
    });
    let rate = args.rate.map(|r| r as f64);
    let piece = match args.rate {
        Some(r) => args.piece.min((r / 4).max(4096)),
        None => args.piece,
    }
    .max(1);
    let chunk = args.chunk.max(1);

    let location = create(&shared, index).await?;
    let mut offset = 0u64;
    let mut failures = 0u32;
    // Set by an injected disconnect, cleared by the next 204: until then 409 and 423 are the
    // protocol's normal answers to a resume, not errors.
    let mut resuming = false;
    // Resume attempts since the last 204 (a server that never accepts one is a failure).
    let mut resumes = 0u32;
    while offset < args.size {
        let end = (offset + chunk).min(args.size);
        let len = end - offset;
        let pause = rng.chance(args.pause_prob).then(|| {
            (
                offset + rng.below(len),
                rng.between(args.pause.min, args.pause.max),
            )
        });
        let abort_at = rng
            .chance(args.disconnect_prob)
            .then(|| offset + rng.below(len));
        let aborted = Arc::new(AtomicBool::new(false));
        let body = Body {
            shared: shared.clone(),
            source,
            pos: offset,
            end,
            piece,
            rate,
            // Each PATCH paces from its own start: a resume does not burst to catch up.
            due_base: Instant::now(),
            paced_from: offset,
            pause,
            abort_at,
            aborted: aborted.clone(),
            hash: hash.clone(),
            done: false,
        };
        let request_start = Instant::now();
        let result = shared
            .tus(reqwest::Method::PATCH, location.clone())
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", len)
            .body(reqwest::Body::wrap_stream(body_stream(body)))
            .send()
            .await;
        let latency = request_start.elapsed();
        if aborted.load(Ordering::SeqCst) {
            shared.stats.injected("patch");
            resuming = true;
            let new = head(&shared, &location).await?;
            note_progress(&shared, &mut offset, new);
            continue;
        }
        if resuming {
            resumes += 1;
            if resumes > RESUME_LIMIT {
                bail!("PATCH {location} at {offset}: no progress after {RESUME_LIMIT} resumes");
            }
        }
        let problem = match result {
            Ok(response) if response.status() == StatusCode::NO_CONTENT => {
                match header_u64(&response, "upload-offset") {
                    Some(new) if new == end => {
                        shared.stats.ok("patch", latency);
                        shared
                            .acked_bytes
                            .fetch_add(new.saturating_sub(offset), Ordering::Relaxed);
                        offset = new;
                        failures = 0;
                        resuming = false;
                        resumes = 0;
                        continue;
                    }
                    Some(new) => format!("204 with Upload-Offset {new}, expected {end}"),
                    None => "204 without Upload-Offset".to_string(),
                }
            }
            Ok(response)
                if resuming
                    && matches!(response.status(), StatusCode::CONFLICT | StatusCode::LOCKED) =>
            {
                shared
                    .stats
                    .retried("patch", format!("HTTP {}", response.status().as_u16()));
                tokio::time::sleep(Duration::from_millis(50)).await;
                let new = head(&shared, &location).await?;
                note_progress(&shared, &mut offset, new);
                continue;
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) if resuming => {
                // A resume right after a disconnect we caused: the server may answer 409 and
                // close before the body is sent, which the client sees as a broken pipe.
                shared
                    .stats
                    .retried("patch", format!("after disconnect: {}", cause(&e)));
                tokio::time::sleep(Duration::from_millis(50)).await;
                let new = head(&shared, &location).await?;
                note_progress(&shared, &mut offset, new);
                continue;
            }
            Err(e) => cause(&e),
        };
        shared.stats.error("patch", problem.clone());
        failures += 1;
        if failures > args.max_retries {
            bail!("PATCH {location} at {offset}: {problem}");
        }
        tokio::time::sleep(backoff(failures)).await;
        let new = head(&shared, &location).await?;
        note_progress(&shared, &mut offset, new);
    }

    let hash = hash.map(|h| {
        let h = h.lock().unwrap_or_else(|e| e.into_inner());
        h.hasher.finalize()
    });
    let finished = Instant::now();
    let elapsed = finished - started;
    let download_url = match (args.server, args.download) {
        (_, DownloadMode::None) => None,
        (Flavor::Tus, _) => Some(location.clone()),
        (Flavor::Ferry, _) => Some(share(&shared, &location, hash.as_ref(), &mut rng).await?),
    };
    Ok(Done {
        index,
        location,
        download_url,
        hash,
        elapsed,
        finished,
    })
}

/// A HEAD after a failed PATCH found the server at `new`: count what it kept.
fn note_progress(shared: &Shared, offset: &mut u64, new: u64) {
    if new > *offset {
        shared
            .acked_bytes
            .fetch_add(new - *offset, Ordering::Relaxed);
    }
    *offset = new;
}

/// Ferry: share the file; returns `<url>/f/<id>` and checks the share's BLAKE3.
async fn share(
    shared: &Shared,
    location: &Url,
    hash: Option<&blake3::Hash>,
    rng: &mut Rng,
) -> anyhow::Result<Url> {
    let id = location
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .with_context(|| format!("no file id at the end of {location}"))?
        .to_owned();
    let url = shared
        .files_url
        .join("/api/v1/shares")
        .context("share URL")?;
    let body = json!({ "files": [id], "recipients": ["load@example.org"] }).to_string();
    let mut failures = 0;
    // Retried like a client would: 503 ("retry later") and transport failures, counted as
    // errors each time, up to --share-retries times, with jitter so that uploads finishing
    // together do not retry together.
    let (started, text) = loop {
        let started = Instant::now();
        let problem = match shared
            .request(reqwest::Method::POST, url.clone())
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::CREATED || r.status() == StatusCode::OK => {
                break (started, r.text().await.unwrap_or_default());
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                shared
                    .stats
                    .error("share", format!("HTTP {}", status.as_u16()));
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    bail!("POST /api/v1/shares: HTTP {status}: {text}");
                }
                format!("HTTP {status}: {text}")
            }
            Err(e) => {
                shared.stats.error("share", cause(&e));
                format!("{e}")
            }
        };
        failures += 1;
        if failures > shared.args.share_retries {
            bail!("POST /api/v1/shares: {problem}");
        }
        tokio::time::sleep(backoff(failures) + rng.between(Duration::ZERO, backoff(failures)))
            .await;
    };
    let answer: Value = serde_json::from_str(&text).context("share answer is not JSON")?;
    let page = answer["url"]
        .as_str()
        .with_context(|| format!("share answer without url: {text}"))?;
    if let (Some(want), Some(got)) = (hash, answer["files"][0]["blake3"].as_str())
        && want.to_hex().as_str() != got
    {
        shared
            .stats
            .error("share", "BLAKE3 differs from the source");
        bail!("share of {id}: server BLAKE3 {got}, source {want}");
    }
    shared.stats.ok("share", started.elapsed());
    let page = Url::parse(page)
        .or_else(|_| shared.files_url.join(page))
        .context("share url")?;
    Ok(page.join(&format!("{}/f/{id}", page.path().trim_end_matches('/')))?)
}

/// Downloads one file whole, hashing as it streams.
async fn download(shared: &Shared, done: &Done) -> anyhow::Result<()> {
    let Some(url) = done.download_url.clone() else {
        return Ok(());
    };
    let started = Instant::now();
    let response = match shared
        .request(reqwest::Method::GET, url.clone())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            shared.stats.error("download", cause(&e));
            bail!("GET {url}: {e}");
        }
    };
    if response.status() != StatusCode::OK {
        shared
            .stats
            .error("download", format!("HTTP {}", response.status().as_u16()));
        bail!("GET {url}: HTTP {}", response.status());
    }
    let mut hasher = (!shared.args.no_verify).then(blake3::Hasher::new);
    let mut len = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                shared.stats.error("download", cause(&e));
                bail!("GET {url} after {len} bytes: {e}");
            }
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        len += chunk.len() as u64;
        shared
            .downloaded_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    if len != shared.args.size {
        shared.stats.error("download", "wrong length");
        bail!("GET {url}: {len} bytes, expected {}", shared.args.size);
    }
    if let (Some(h), Some(want)) = (hasher, done.hash)
        && h.finalize() != want
    {
        shared
            .stats
            .error("download", "BLAKE3 differs from the source");
        bail!("GET {url}: BLAKE3 differs from the source");
    }
    shared.stats.ok("download", started.elapsed());
    shared.downloads_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn delete(shared: &Shared, location: &Url) {
    let started = Instant::now();
    match shared
        .tus(reqwest::Method::DELETE, location.clone())
        .send()
        .await
    {
        Ok(r) if r.status() == StatusCode::NO_CONTENT || r.status() == StatusCode::OK => {
            shared.stats.ok("delete", started.elapsed());
        }
        Ok(r) => shared
            .stats
            .error("delete", format!("HTTP {}", r.status().as_u16())),
        Err(e) => shared.stats.error("delete", cause(&e)),
    }
}

fn progress_task(shared: Arc<Shared>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval_at(start + every, every);
        let mut last = 0u64;
        loop {
            tick.tick().await;
            let acked = shared.acked_bytes.load(Ordering::Relaxed);
            eprintln!(
                "loadgen: {:>5.0}s uploads done {} failed {} of {}; confirmed {:.0} MB ({:.0} MB/s \
                 now); downloads done {} ({:.0} MB); pauses {} disconnects {}",
                start.elapsed().as_secs_f64(),
                shared.uploads_done.load(Ordering::Relaxed),
                shared.uploads_failed.load(Ordering::Relaxed),
                shared.args.uploads,
                acked as f64 / 1e6,
                (acked - last) as f64 / 1e6 / every.as_secs_f64(),
                shared.downloads_done.load(Ordering::Relaxed),
                shared.downloaded_bytes.load(Ordering::Relaxed) as f64 / 1e6,
                shared.pauses.load(Ordering::Relaxed),
                shared.disconnects.load(Ordering::Relaxed),
            );
            last = acked;
        }
    }))
}

async fn run_tus(args: TusArgs) -> anyhow::Result<bool> {
    ensure!(args.uploads > 0, "--uploads must be at least 1");
    ensure!(args.size > 0, "--size must be at least 1 byte");
    ensure!(
        (0.0..=1.0).contains(&args.pause_prob) && (0.0..=1.0).contains(&args.disconnect_prob),
        "probabilities must be within 0..=1"
    );
    if args.server == Flavor::Ferry && args.bearer.is_none() {
        bail!("--server ferry needs --bearer (or FERRY_LOAD_BEARER)");
    }
    let mut base = args.url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    let files_url = Url::parse(&base)
        .with_context(|| format!("bad --url {}", args.url))?
        .join("files")?;
    let client = Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?;
    let shared = Arc::new(Shared {
        args: args.clone(),
        client,
        files_url,
        stats: Stats::default(),
        wire_bytes: AtomicU64::new(0),
        acked_bytes: AtomicU64::new(0),
        downloaded_bytes: AtomicU64::new(0),
        uploads_done: AtomicUsize::new(0),
        uploads_failed: AtomicUsize::new(0),
        downloads_done: AtomicUsize::new(0),
        pauses: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
    });
    let sampler = args.server_pid.map(Sampler::spawn);
    let server_at = |s: &Option<(Arc<Sampler>, _)>| s.as_ref().and_then(|(s, _)| s.read());
    let server_start = server_at(&sampler);
    let progress = progress_task(shared.clone(), args.progress);

    // Phase 1: uploads (with inline downloads if asked).
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.uploads);
    for index in 0..args.uploads {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let result = upload(shared.clone(), index).await;
            match &result {
                Ok(done) => {
                    shared.uploads_done.fetch_add(1, Ordering::Relaxed);
                    if shared.args.download == DownloadMode::Inline {
                        if let Err(e) = download(&shared, done).await {
                            shared.stats.fail(format!("download {index}: {e:#}"));
                        }
                        if shared.args.delete {
                            delete(&shared, &done.location).await;
                        }
                    }
                }
                Err(e) => {
                    shared.uploads_failed.fetch_add(1, Ordering::Relaxed);
                    shared.stats.fail(format!("upload {index}: {e:#}"));
                }
            }
            result.ok()
        }));
    }
    let mut done = Vec::with_capacity(args.uploads);
    for task in tasks {
        if let Some(d) = task.await.map_err(|e| anyhow!("upload task: {e}"))? {
            done.push(d);
        }
    }
    // Until the last upload's last byte was confirmed: shares (and inline downloads) that
    // follow it are not upload time.
    let upload_wall = match args.download {
        DownloadMode::Inline => started.elapsed(),
        _ => done
            .iter()
            .map(|d| d.finished - started)
            .max()
            .unwrap_or_else(|| started.elapsed()),
    };
    let server_mid = server_at(&sampler);
    if let Some((s, _)) = &sampler {
        s.phase.store(1, Ordering::Relaxed);
    }

    // Phase 2: downloads, all at once (N concurrent), then deletes.
    let mut download_wall = Duration::ZERO;
    let done = Arc::new(done);
    if args.download == DownloadMode::After && !done.is_empty() {
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(done.len());
        for i in 0..done.len() {
            let shared = shared.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let d = &done[i];
                if let Err(e) = download(&shared, d).await {
                    shared.stats.fail(format!("download {}: {e:#}", d.index));
                }
            }));
        }
        for task in tasks {
            task.await.map_err(|e| anyhow!("download task: {e}"))?;
        }
        download_wall = started.elapsed();
    }
    let server_end = server_at(&sampler);
    if args.delete && args.download != DownloadMode::Inline {
        let mut tasks = Vec::with_capacity(done.len());
        for i in 0..done.len() {
            let shared = shared.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                delete(&shared, &done[i].location).await;
            }));
        }
        for task in tasks {
            task.await.map_err(|e| anyhow!("delete task: {e}"))?;
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let server_rss = sampler.as_ref().map(|(s, task)| {
        task.abort();
        let cpu = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
            (Some(a), Some(b)) => json!(round3(b.cpu_seconds - a.cpu_seconds)),
            _ => Value::Null,
        };
        json!({
            "pid": args.server_pid,
            "max_rss_upload_mib": mib(s.max_rss_kib[0].load(Ordering::Relaxed)),
            "max_rss_download_mib": mib(s.max_rss_kib[1].load(Ordering::Relaxed)),
            "hwm_mib": server_end.map(|e| mib(e.hwm_kib)),
            "end_rss_mib": server_end.map(|e| mib(e.rss_kib)),
            "cpu_upload_s": cpu(server_start, server_mid),
            "cpu_download_s": cpu(server_mid, server_end),
        })
    });

    let report = tus_report(&shared, &done, upload_wall, download_wall, server_rss);
    print_tus_report(&report);
    println!("{report}");
    let ok = report["upload"]["failed"] == json!(0)
        && report["errors"] == json!(0)
        && report["download"]["failed"] == json!(0);
    Ok(ok)
}

fn kind_report(k: &KindStats) -> Value {
    let mut sorted = k.latencies.clone();
    sorted.sort_unstable();
    let p = |q: f64| percentile(&sorted, q).map(ms);
    json!({
        "count": k.ok + k.errors.values().sum::<u64>() + k.retried.values().sum::<u64>() + k.injected,
        "ok": k.ok,
        "p50_ms": p(50.0),
        "p99_ms": p(99.0),
        "max_ms": p(100.0),
        "errors": k.errors,
        "retried": k.retried,
        "injected": k.injected,
    })
}

fn tus_report(
    shared: &Shared,
    done: &[Done],
    upload_wall: Duration,
    download_wall: Duration,
    server: Option<Value>,
) -> Value {
    let args = &shared.args;
    let kinds = shared.stats.kinds();
    let requests: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|(name, k)| ((*name).to_owned(), kind_report(k)))
        .collect();
    let download_stats = kinds.get("download");
    let downloads_ok = download_stats.map_or(0, |k| k.ok);
    let downloads_failed = download_stats.map_or(0, |k| k.errors.values().sum::<u64>());
    drop(kinds);
    let mut times: Vec<Duration> = done.iter().map(|d| d.elapsed).collect();
    times.sort_unstable();
    let secs = |q: f64| percentile(&times, q).map(|d| round3(d.as_secs_f64()));
    let uploaded = done.len() as u64 * args.size;
    let downloaded = shared.downloaded_bytes.load(Ordering::Relaxed);
    let client = ProcSample::read("self").ok();
    let failures = shared
        .stats
        .failures
        .lock()
        .map(|f| f.iter().take(10).cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    json!({
        "label": args.label,
        "server": format!("{:?}", args.server).to_lowercase(),
        "url": args.url,
        "uploads": args.uploads,
        "size": args.size,
        "chunk": args.chunk,
        "rate": args.rate,
        "pause_prob": args.pause_prob,
        "pause_ms": [ms(args.pause.min), ms(args.pause.max)],
        "disconnect_prob": args.disconnect_prob,
        "download_mode": format!("{:?}", args.download).to_lowercase(),
        "verify": !args.no_verify,
        "seed": args.seed,
        "upload": {
            "ok": done.len(),
            "failed": args.uploads - done.len(),
            "bytes": uploaded,
            "wire_bytes": shared.wire_bytes.load(Ordering::Relaxed),
            "wall_s": round3(upload_wall.as_secs_f64()),
            "mb_s": round3(mb_per_s(uploaded, upload_wall)),
            "time_p50_s": secs(50.0),
            "time_p99_s": secs(99.0),
            "time_max_s": secs(100.0),
        },
        "download": {
            "ok": downloads_ok,
            "failed": downloads_failed,
            "verified": !args.no_verify && args.download != DownloadMode::None,
            "bytes": downloaded,
            "wall_s": round3(download_wall.as_secs_f64()),
            "mb_s": if args.download == DownloadMode::After {
                json!(round3(mb_per_s(downloaded, download_wall)))
            } else {
                Value::Null
            },
        },
        "requests": requests,
        "injected": {
            "pauses": shared.pauses.load(Ordering::Relaxed),
            "disconnects": shared.disconnects.load(Ordering::Relaxed),
        },
        "errors": shared.stats.total_errors(),
        "failures": failures,
        "server_proc": server,
        "client_proc": client.map(|c| json!({
            "cpu_s": round3(c.cpu_seconds),
            "hwm_mib": mib(c.hwm_kib),
        })),
    })
}

fn print_tus_report(r: &Value) {
    let u = &r["upload"];
    let d = &r["download"];
    eprintln!(
        "\n{} uploads × {} B to {} ({}), chunk {} B, rate {}, pause p={} disconnect p={}",
        r["uploads"],
        r["size"],
        r["url"].as_str().unwrap_or_default(),
        r["server"].as_str().unwrap_or_default(),
        r["chunk"],
        r["rate"],
        r["pause_prob"],
        r["disconnect_prob"],
    );
    eprintln!(
        "upload:   {} ok, {} failed; {} MB in {} s = {} MB/s (wire {} MB); per upload p50 {} s, p99 {} s",
        u["ok"],
        u["failed"],
        u["bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        u["wall_s"],
        u["mb_s"],
        u["wire_bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        u["time_p50_s"],
        u["time_p99_s"],
    );
    eprintln!(
        "download: {} ok, {} failed (verified: {}); {} MB in {} s = {} MB/s",
        d["ok"],
        d["failed"],
        d["verified"],
        d["bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        d["wall_s"],
        d["mb_s"],
    );
    eprintln!(
        "injected: {} pauses, {} disconnects; errors: {}",
        r["injected"]["pauses"], r["injected"]["disconnects"], r["errors"]
    );
    eprintln!(
        "{:<9} {:>7} {:>7} {:>10} {:>10} {:>10}  errors / retried",
        "request", "count", "ok", "p50 ms", "p99 ms", "max ms"
    );
    if let Some(requests) = r["requests"].as_object() {
        for (kind, k) in requests {
            eprintln!(
                "{:<9} {:>7} {:>7} {:>10} {:>10} {:>10}  {} / {}",
                kind,
                k["count"].to_string(),
                k["ok"].to_string(),
                k["p50_ms"].to_string(),
                k["p99_ms"].to_string(),
                k["max_ms"].to_string(),
                k["errors"],
                k["retried"]
            );
        }
    }
    if let Some(s) = r["server_proc"].as_object() {
        eprintln!(
            "server pid {}: RSS max {} MiB during uploads, {} MiB during downloads; VmHWM {} MiB, \
             end {} MiB; CPU {} s uploads, {} s downloads",
            s["pid"],
            s["max_rss_upload_mib"],
            s["max_rss_download_mib"],
            s["hwm_mib"],
            s["end_rss_mib"],
            s["cpu_upload_s"],
            s["cpu_download_s"]
        );
    }
    if let Some(failures) = r["failures"].as_array() {
        for f in failures {
            eprintln!("failure: {}", f.as_str().unwrap_or_default());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Raw S3

async fn s3_client(args: &S3Args) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(args.region.clone()));
    if let Some(endpoint) = &args.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let sdk = loader.load().await;
    let mut config =
        aws_sdk_s3::config::Builder::from(&sdk).force_path_style(args.endpoint.is_some());
    if !args.sdk_checksums {
        config = config
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

async fn run_s3(args: S3Args) -> anyhow::Result<bool> {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

    ensure!(args.size > 0, "--size must be at least 1 byte");
    ensure!(args.part_size >= 1, "--part-size must be at least 1 byte");
    let s3 = s3_client(&args).await;
    let source = Source::new(args.seed, 0);
    let key = format!(
        "loadgen/{}-{}",
        args.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let sampler = args.server_pid.map(Sampler::spawn);
    let server_at = |s: &Option<(Arc<Sampler>, _)>| s.as_ref().and_then(|(s, _)| s.read());
    let server_start = server_at(&sampler);
    let mut part_latencies = Vec::new();

    // Upload: the clock runs only while requests are in flight; generating and hashing the
    // parts is left out, so the baseline is S3's speed, not this client's.
    let mut hasher = blake3::Hasher::new();
    let wall = Instant::now();
    let mut timed = Duration::ZERO;
    let t = Instant::now();
    let created = s3
        .create_multipart_upload()
        .bucket(&args.bucket)
        .key(&key)
        .send()
        .await
        .with_context(|| format!("CreateMultipartUpload {}/{key}", args.bucket))?;
    timed += t.elapsed();
    let upload_id = created
        .upload_id()
        .context("CreateMultipartUpload without an upload id")?
        .to_owned();
    let mut parts = Vec::new();
    let mut offset = 0u64;
    let mut number = 1;
    while offset < args.size {
        let n = args.part_size.min(args.size - offset);
        let mut buf = vec![0u8; n as usize];
        source.fill(offset, &mut buf);
        hasher.update(&buf);
        let t = Instant::now();
        let part = s3
            .upload_part()
            .bucket(&args.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .part_number(number)
            .content_length(n as i64)
            .body(ByteStream::from(Bytes::from(buf)))
            .send()
            .await
            .with_context(|| format!("UploadPart {number}"))?;
        let took = t.elapsed();
        timed += took;
        part_latencies.push(took);
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
        offset += n;
        number += 1;
    }
    let t = Instant::now();
    s3.complete_multipart_upload()
        .bucket(&args.bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .context("CompleteMultipartUpload")?;
    timed += t.elapsed();
    let upload_wall = wall.elapsed();
    let want = hasher.finalize();
    let server_mid = server_at(&sampler);

    // Download: one GetObject, streamed and hashed (the hashing is inside the clock, as it is
    // for `loadgen tus`).
    let mut download = Value::Null;
    let mut verified = true;
    if !args.no_download {
        let t = Instant::now();
        let object = s3
            .get_object()
            .bucket(&args.bucket)
            .key(&key)
            .send()
            .await
            .context("GetObject")?;
        let mut body = object.body;
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("GetObject body")?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        let took = t.elapsed();
        verified = len == args.size && hasher.finalize() == want;
        download = json!({
            "bytes": len,
            "s": round3(took.as_secs_f64()),
            "mb_s": round3(mb_per_s(len, took)),
            "verified": verified,
        });
    }
    let server_end = server_at(&sampler);
    if !args.keep {
        s3.delete_object()
            .bucket(&args.bucket)
            .key(&key)
            .send()
            .await
            .context("DeleteObject")?;
    }
    part_latencies.sort_unstable();
    let server = sampler.as_ref().map(|(s, task)| {
        task.abort();
        json!({
            "pid": args.server_pid,
            "max_rss_upload_mib": mib(s.max_rss_kib[0].load(Ordering::Relaxed)),
            "hwm_mib": server_end.map(|e| mib(e.hwm_kib)),
            "cpu_upload_s": match (server_start, server_mid) {
                (Some(a), Some(b)) => json!(round3(b.cpu_seconds - a.cpu_seconds)),
                _ => Value::Null,
            },
        })
    });
    let report = json!({
        "label": args.label,
        "mode": "s3",
        "endpoint": args.endpoint,
        "bucket": args.bucket,
        "size": args.size,
        "part_size": args.part_size,
        "parts": part_latencies.len(),
        "seed": args.seed,
        "sdk_checksums": args.sdk_checksums,
        "upload": {
            "s": round3(timed.as_secs_f64()),
            "mb_s": round3(mb_per_s(args.size, timed)),
            "wall_s": round3(upload_wall.as_secs_f64()),
            "wall_mb_s": round3(mb_per_s(args.size, upload_wall)),
            "part_p50_ms": percentile(&part_latencies, 50.0).map(ms),
            "part_max_ms": percentile(&part_latencies, 100.0).map(ms),
        },
        "download": download,
        "blake3": want.to_hex().as_str(),
        "server_proc": server,
    });
    eprintln!(
        "s3 {} B to {}/{} in {} parts of {} B: upload {} MB/s (requests only; {} MB/s with \
         generation), download {} MB/s, verified {}",
        args.size,
        args.endpoint.as_deref().unwrap_or("aws"),
        args.bucket,
        report["parts"],
        args.part_size,
        report["upload"]["mb_s"],
        report["upload"]["wall_mb_s"],
        report["download"]["mb_s"],
        verified
    );
    println!("{report}");
    Ok(verified)
}
