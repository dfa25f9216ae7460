//! Raw tus PATCHes that stream a range of a source file from a thread of their own, so a test
//! can act (kill a server, stop the store) at a chosen point of the body: when a given number
//! of bytes has been handed to the HTTP client, or while the body is paused there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferry_testkit::eventually;

use crate::api::{Api, TUS_VERSION};

/// How long a paused body waits to be released before it goes on by itself (never hang).
const PAUSE_LIMIT: Duration = Duration::from_secs(300);

/// What a PATCH came back with (a transport failure is an `Err` of [`StreamingPatch::join`]).
#[derive(Debug, Clone)]
pub struct PatchOutcome {
    /// HTTP status.
    pub status: u16,
    /// `Upload-Offset` of the response, if any.
    pub offset: Option<u64>,
    /// The response body (JSON error bodies say why).
    pub body: String,
}

/// The body of a PATCH: a range of the file, counting what has been handed over and
/// optionally pausing at one count until released.
struct BodyReader {
    file: File,
    left: u64,
    sent: Arc<AtomicU64>,
    pause_at: Option<u64>,
    paused: Sender<()>,
    resume: Receiver<()>,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let sent = self.sent.load(Ordering::SeqCst);
        if self.pause_at == Some(sent) {
            self.pause_at = None;
            let _ = self.paused.send(());
            let _ = self.resume.recv_timeout(PAUSE_LIMIT);
        }
        let mut want = (buf.len() as u64).min(self.left);
        if let Some(p) = self.pause_at {
            want = want.min(p - sent);
        }
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want as usize])?;
        self.left -= n as u64;
        self.sent.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// A PATCH running on its own thread.
pub struct StreamingPatch {
    what: String,
    start: u64,
    len: u64,
    sent: Arc<AtomicU64>,
    paused: Receiver<()>,
    resume: Sender<()>,
    handle: thread::JoinHandle<Result<PatchOutcome>>,
}

/// Start `PATCH upload_url` with `Upload-Offset: start` and the `len` bytes of `source` from
/// `start`, streamed with a `Content-Length`. With `pause_at = Some(n)` the body stops once
/// `n` bytes (relative to `start`) have been handed over, until [`StreamingPatch::release`].
pub fn start_patch(
    api: &Api,
    upload_url: &str,
    source: &Path,
    start: u64,
    len: u64,
    pause_at: Option<u64>,
) -> Result<StreamingPatch> {
    if let Some(p) = pause_at {
        ensure!(
            p > 0 && p < len,
            "pause point {p} is not inside the body ({len} B)"
        );
    }
    let mut file =
        File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    file.seek(SeekFrom::Start(start))?;
    let sent = Arc::new(AtomicU64::new(0));
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let reader = BodyReader {
        file,
        left: len,
        sent: Arc::clone(&sent),
        pause_at,
        paused: paused_tx,
        resume: resume_rx,
    };
    let request = api
        .http()
        .patch(upload_url)
        .header("Authorization", api.bearer())
        .header("Tus-Resumable", TUS_VERSION)
        .header("Upload-Offset", start.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(reqwest::blocking::Body::sized(reader, len));
    let what = format!("PATCH {upload_url} (Upload-Offset: {start}, Content-Length: {len})");
    let context = what.clone();
    let handle = thread::spawn(move || -> Result<PatchOutcome> {
        let resp = request.send().with_context(|| context.clone())?;
        let status = resp.status().as_u16();
        let offset = resp
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp.text().unwrap_or_default();
        Ok(PatchOutcome {
            status,
            offset,
            body,
        })
    });
    Ok(StreamingPatch {
        what,
        start,
        len,
        sent,
        paused: paused_rx,
        resume: resume_tx,
        handle,
    })
}

impl StreamingPatch {
    /// Bytes of the body handed to the HTTP client so far: an upper bound of what the server
    /// received.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// The `Upload-Offset` the PATCH started from.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The body's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the request has ended (answered or failed).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Wait until at least `n` bytes of the body have been handed over; calls `tick` while
    /// waiting (to poll the server, say). Fails if the request ends first or on timeout.
    pub fn wait_sent(
        &self,
        n: u64,
        timeout: Duration,
        mut tick: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.sent() < n {
            ensure!(
                !self.is_finished(),
                "{}: the request ended after {} bytes, before {n}",
                self.what,
                self.sent()
            );
            ensure!(
                Instant::now() < deadline,
                "{}: only {} of {n} bytes sent within {timeout:?}",
                self.what,
                self.sent()
            );
            tick()?;
            thread::sleep(Duration::from_micros(500));
        }
        Ok(())
    }

    /// Wait until the body has paused at its pause point.
    pub fn wait_paused(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.paused.try_recv().is_ok() {
                return Ok(());
            }
            ensure!(
                !self.is_finished(),
                "{}: the request ended after {} bytes, before its pause point",
                self.what,
                self.sent()
            );
            ensure!(
                Instant::now() < deadline,
                "{}: the pause point was not reached within {timeout:?} ({} bytes sent)",
                self.what,
                self.sent()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Let a paused body go on.
    pub fn release(&self) {
        let _ = self.resume.send(());
    }

    /// Release the body if paused and wait for the answer; `Err` if the request failed at the
    /// transport (connection refused or reset, body cut).
    pub fn join(self) -> Result<PatchOutcome> {
        self.release();
        self.handle
            .join()
            .map_err(|_| anyhow!("{}: the PATCH thread panicked", self.what))?
    }

    /// Like [`StreamingPatch::join`], but gives up after `timeout`.
    pub fn join_within(self, timeout: Duration) -> Result<PatchOutcome> {
        self.release();
        let deadline = Instant::now() + timeout;
        while !self.is_finished() {
            if Instant::now() > deadline {
                bail!(
                    "{}: no answer within {timeout:?} ({} bytes sent)",
                    self.what,
                    self.sent()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.join()
    }
}

/// Polls HEAD until the upload shows `offset` (what a paused PATCH should leave committed) or
/// `within` has passed; returns the offset HEAD shows then, for the caller to check.
pub fn wait_for_offset(
    api: &Api,
    upload_url: &str,
    size: u64,
    offset: u64,
    within: Duration,
) -> Result<u64> {
    let reached = eventually(within, || {
        let seen = api.tus_offset(upload_url, size)?;
        ensure!(
            seen == offset,
            "HEAD {upload_url} shows {seen}, not {offset}"
        );
        Ok(seen)
    });
    match reached {
        Ok(seen) => Ok(seen),
        Err(_) => api.tus_offset(upload_url, size),
    }
}

/// PATCH `len` bytes of `source` from `start` and expect 204 with `Upload-Offset: start + len`.
/// While the server answers 423 (another request, perhaps on a killed instance, still holds
/// the upload), it retries, as tus clients do, for up to `locked_for`; returns how many 423s
/// it got.
pub fn patch_expect_204(
    api: &Api,
    upload_url: &str,
    source: &Path,
    start: u64,
    len: u64,
    locked_for: Duration,
) -> Result<u32> {
    let deadline = Instant::now() + locked_for;
    let mut locked = 0;
    loop {
        let outcome = start_patch(api, upload_url, source, start, len, None)?.join()?;
        if outcome.status == 423 && Instant::now() < deadline {
            locked += 1;
            thread::sleep(Duration::from_millis(500));
            continue;
        }
        ensure!(
            outcome.status == 204 && outcome.offset == Some(start + len),
            "PATCH {upload_url} (Upload-Offset: {start}, {len} bytes) answered {} with \
             Upload-Offset {:?} (expected 204 with {}) after {locked} × 423: {}",
            outcome.status,
            outcome.offset,
            start + len,
            outcome.body
        );
        return Ok(locked);
    }
}
