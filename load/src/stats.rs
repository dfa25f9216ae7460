//! What a `loadgen tus` run counts, shared by every upload and download task.
//!
//! The tasks only add to these; the report reads them once at the end. Latencies are kept
//! whole (not bucketed) because a run holds at most a few thousand requests and the report
//! wants exact nearest-rank percentiles.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What happened to the requests of one kind. The four outcomes are kept apart because only
/// unexpected errors make a run fail; the others are the load we asked for.
#[derive(Default)]
pub(crate) struct KindStats {
    /// Latencies of the requests that got their expected answer.
    pub(crate) latencies: Vec<Duration>,
    /// Requests that got their expected answer.
    pub(crate) ok: u64,
    /// Unexpected answers and failures, by cause.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Answers that are the protocol's normal reply to a resume after a disconnect we caused
    /// (409 offset moved on, 423 still held), by status; the client retries them.
    pub(crate) retried: BTreeMap<String, u64>,
    /// Requests we aborted on purpose.
    pub(crate) injected: u64,
}

/// Request statistics and progress counters of a whole run. One value behind the tasks'
/// shared state, so the progress line and the report read the same numbers.
#[derive(Default)]
pub(crate) struct Stats {
    /// By request kind (`create`, `patch`, `head`, `share`, …); sorted, so the report lists
    /// kinds in a stable order.
    kinds: Mutex<BTreeMap<&'static str, KindStats>>,
    /// Why uploads or downloads were given up, in the order it happened.
    failures: Mutex<Vec<String>>,
    /// PATCH body bytes handed to the HTTP client, re-sent bytes included: what disconnects
    /// cost on the wire.
    pub(crate) wire_bytes: AtomicU64,
    /// Upload bytes the server confirmed (Upload-Offset advances), for the progress line.
    pub(crate) acked_bytes: AtomicU64,
    /// Download body bytes received, for the download MB/s.
    pub(crate) downloaded_bytes: AtomicU64,
    /// Uploads finished, for the progress line.
    pub(crate) uploads_done: AtomicUsize,
    /// Uploads given up, for the progress line.
    pub(crate) uploads_failed: AtomicUsize,
    /// Downloads finished and verified, for the progress line.
    pub(crate) downloads_done: AtomicUsize,
    /// Stalls injected into PATCH bodies, to show the run did what it was asked.
    pub(crate) pauses: AtomicU64,
    /// Disconnects injected into PATCH bodies, likewise.
    pub(crate) disconnects: AtomicU64,
}

impl Stats {
    /// The per-kind figures, locked: the report reads them all at once, consistent with each
    /// other. A panicked task cannot poison them for the report.
    pub(crate) fn kinds(&self) -> MutexGuard<'_, BTreeMap<&'static str, KindStats>> {
        self.kinds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an expected answer; only these contribute latencies, so errors (often instant or
    /// timed out) do not skew the percentiles.
    pub(crate) fn ok(&self, kind: &'static str, latency: Duration) {
        let mut kinds = self.kinds();
        let k = kinds.entry(kind).or_default();
        k.ok += 1;
        k.latencies.push(latency);
    }

    /// Counts an unexpected answer or failure; any of these makes the run exit 1.
    pub(crate) fn error(&self, kind: &'static str, cause: impl Into<String>) {
        *self
            .kinds()
            .entry(kind)
            .or_default()
            .errors
            .entry(cause.into())
            .or_default() += 1;
    }

    /// Counts a normal answer to a resume after an injected disconnect: the protocol working,
    /// not an error.
    pub(crate) fn retried(&self, kind: &'static str, cause: impl Into<String>) {
        *self
            .kinds()
            .entry(kind)
            .or_default()
            .retried
            .entry(cause.into())
            .or_default() += 1;
    }

    /// Counts a request we cut on purpose, so `count` still adds up.
    pub(crate) fn injected(&self, kind: &'static str) {
        self.kinds().entry(kind).or_default().injected += 1;
    }

    /// Records why an upload or download was given up, for the report.
    pub(crate) fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.push(what);
    }

    /// The first `n` failures: enough to see the cause without a thousand-line report when
    /// everything fails the same way.
    pub(crate) fn first_failures(&self, n: usize) -> Vec<String> {
        self.failures
            .lock()
            .map(|f| f.iter().take(n).cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    }

    /// Unexpected errors over all kinds: the run succeeds only when this is zero.
    pub(crate) fn total_errors(&self) -> u64 {
        self.kinds()
            .values()
            .map(|k| k.errors.values().sum::<u64>())
            .sum()
    }
}
