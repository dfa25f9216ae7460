//! The body of one PATCH: streamed from the deterministic source piece by piece, paced,
//! stalled or cut where the run's random choices say.
//!
//! Bodies are generated as they are sent, never held whole, so 500 concurrent uploads cost
//! the generator a few pieces each; the source's BLAKE3 is computed on the way, each byte
//! once even when a resume sends it again.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Instant;

use crate::data::Source;
use crate::tus_client::Shared;

/// The running BLAKE3 of what an upload has generated, in order: bytes re-sent after a
/// resume are not hashed twice, so the source's hash costs one pass however often it is cut.
pub(crate) struct HashState {
    hasher: blake3::Hasher,
    /// Bytes hashed so far: the next byte to hash is at this offset.
    upto: u64,
}

impl HashState {
    /// Nothing hashed yet.
    pub(crate) fn new() -> Self {
        HashState {
            hasher: blake3::Hasher::new(),
            upto: 0,
        }
    }

    /// The BLAKE3 of the bytes hashed so far (all of them, once the upload is complete).
    pub(crate) fn finalize(&self) -> blake3::Hash {
        self.hasher.finalize()
    }
}

/// Plan of one PATCH body, decided before it is sent so that a run with the same seed stalls
/// and cuts at the same places.
pub(crate) struct Body {
    /// Where the counters are.
    pub(crate) shared: Arc<Shared>,
    /// The upload's bytes.
    pub(crate) source: Source,
    /// Next offset to send.
    pub(crate) pos: u64,
    /// End of this PATCH (exclusive).
    pub(crate) end: u64,
    /// Largest piece handed to the HTTP client at once.
    pub(crate) piece: u64,
    /// Pace in bytes per second, if any.
    pub(crate) rate: Option<f64>,
    /// When byte `paced_from` was due; later bytes are due at `rate`.
    pub(crate) due_base: Instant,
    /// The offset pacing counts from.
    pub(crate) paced_from: u64,
    /// Where to stall, and for how long.
    pub(crate) pause: Option<(u64, Duration)>,
    /// Where to cut the body.
    pub(crate) abort_at: Option<u64>,
    /// Set when the body was cut, so the caller counts the failed request as injected.
    pub(crate) aborted: Arc<AtomicBool>,
    /// The upload's running hash, unless `--no-verify`.
    pub(crate) hash: Option<Arc<Mutex<HashState>>>,
    /// Set after the cut: the stream ends.
    pub(crate) done: bool,
}

/// The body as a stream for `reqwest::Body::wrap_stream`: an `Err` item is how a cut reaches
/// the connection (reqwest then drops it mid-body, as a lost client would).
pub(crate) fn body_stream(
    body: Body,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::unfold(body, |mut b| async move {
        if b.done || b.pos >= b.end {
            return None;
        }
        if b.abort_at.is_some_and(|at| b.pos >= at) {
            b.done = true;
            b.aborted.store(true, Ordering::SeqCst);
            b.shared.stats.disconnects.fetch_add(1, Ordering::Relaxed);
            return Some((Err(io::Error::other("injected disconnect")), b));
        }
        if let Some((at, stall)) = b.pause
            && b.pos >= at
        {
            b.pause = None;
            b.shared.stats.pauses.fetch_add(1, Ordering::Relaxed);
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
        b.shared.stats.wire_bytes.fetch_add(n, Ordering::Relaxed);
        Some((Ok(Bytes::from(buf)), b))
    })
}
