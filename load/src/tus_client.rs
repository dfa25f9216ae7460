//! A raw tus 1.0 client: `POST /files`, `PATCH`es of `--chunk` bytes, `HEAD` to resume,
//! `DELETE`, with the retries a real client would make and every request counted in
//! [`Stats`].
//!
//! It speaks the protocol by hand rather than through a tus library so that the load is
//! exactly what the options say (chunk sizes, where a body stalls or is cut, how a resume
//! starts), and so that the 409/423 answers a resume provokes can be told from real errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;

use crate::cli::{DownloadMode, Flavor, TusArgs};
use crate::data::{Rng, Source};
use crate::download::share;
use crate::patch_body::{Body, HashState, body_stream};
use crate::stats::Stats;

/// Everything the upload and download tasks share: one HTTP client (one connection pool, as
/// one real client process would have), the options, and the counters.
pub(crate) struct Shared {
    /// The run's options.
    pub(crate) args: TusArgs,
    client: Client,
    /// `BASE/files`, where uploads are created and relative URLs are resolved.
    pub(crate) files_url: Url,
    /// What every request adds to.
    pub(crate) stats: Stats,
}

impl Shared {
    /// Checks `--url` and builds the client. No proxy (the server is local or named on
    /// purpose), Nagle off (small requests such as HEAD would otherwise wait on ACKs), and
    /// idle connections kept 30 s so that chunks of one upload reuse theirs.
    pub(crate) fn new(args: TusArgs) -> anyhow::Result<Self> {
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
        Ok(Shared {
            args,
            client,
            files_url,
            stats: Stats::default(),
        })
    }

    /// A request with the per-request timeout and, for Ferry, the bearer token: every request
    /// of a run must carry both, so none is built any other way.
    pub(crate) fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, url)
            .timeout(self.args.request_timeout);
        match &self.args.bearer {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// A tus request: [`Shared::request`] with `Tus-Resumable`, which tus servers require.
    pub(crate) fn tus(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.request(method, url).header("Tus-Resumable", "1.0.0")
    }
}

/// A completed upload: what its download, its delete and the report need to know.
pub(crate) struct Done {
    /// Its position in the run, which is also its stream of the seed.
    pub(crate) index: usize,
    /// The upload's URL, for the tus DELETE.
    pub(crate) location: Url,
    /// Where its bytes are downloaded from (the share link for Ferry, the upload URL for tus).
    pub(crate) download_url: Option<Url>,
    /// BLAKE3 of the source, unless `--no-verify`.
    pub(crate) hash: Option<blake3::Hash>,
    /// From its `POST /files` to its last confirmed PATCH, for the per-upload percentiles.
    pub(crate) elapsed: Duration,
    /// When its last PATCH was confirmed (before the share): the upload phase ends at the
    /// latest of these.
    pub(crate) finished: Instant,
}

/// A short cause for a failed request: the innermost error's text, without URLs, so that the
/// same failure on a thousand uploads is counted under one key.
pub(crate) fn cause(error: &reqwest::Error) -> String {
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

/// A numeric header such as `Upload-Offset`; `None` when missing or malformed, which the caller
/// counts as an error of the server.
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

/// The server's offset of an upload, with up to `max_retries` retries: after a failed or cut
/// PATCH only the server knows what it kept, and the resume must start exactly there.
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

/// How many resumes in a row (409/423/broken pipe after a disconnect) an upload may need;
/// beyond it the server is taken to never accept the resume, and the upload is given up
/// instead of looping.
const RESUME_LIMIT: u32 = 100;

/// Wait before retry number `failures`: growing, so an overloaded server gets air, and capped at
/// 2 s, so a run does not stall for long.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(20)))
}

/// `POST /files`; returns the upload's absolute URL (servers may answer a relative one).
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
pub(crate) async fn upload(shared: Arc<Shared>, index: usize) -> anyhow::Result<Done> {
    let args = shared.args.clone();
    let started = Instant::now();
    let source = Source::new(args.seed, index as u64);
    let mut rng = Rng::new(args.seed, index as u64);
    let hash = (!args.no_verify).then(|| Arc::new(Mutex::new(HashState::new())));
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
                            .stats
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
        h.finalize()
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
            .stats
            .acked_bytes
            .fetch_add(new - *offset, Ordering::Relaxed);
    }
    *offset = new;
}

/// tus DELETE, counted but never fatal: the files are the run's own.
pub(crate) async fn delete(shared: &Shared, location: &Url) {
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
