//! Operational metrics, served as Prometheus text at `GET /metrics`.
//!
//! One process-wide recorder (the `metrics` facade's global), installed on first use. Labels
//! never carry tenant names, file names, ids or tokens: only fixed words (a result, an error
//! kind), so a scrape says how the service runs and nothing about who uses it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::StoreError;

const UPLOADS_IN_FLIGHT: &str = "ferry_uploads_in_flight";
const UPLOAD_BYTES_RECEIVED: &str = "ferry_upload_bytes_received_total";
const UPLOAD_BYTES_COMMITTED: &str = "ferry_upload_bytes_committed_total";
const UPLOAD_COMMIT_SECONDS: &str = "ferry_upload_commit_seconds";
const DOWNLOADS: &str = "ferry_downloads_total";
const DOWNLOAD_BYTES_SERVED: &str = "ferry_download_bytes_served_total";
const TOKEN_GUARD_REFUSALS: &str = "ferry_token_guard_refusals_total";
const EXPIRY_PASSES: &str = "ferry_expiry_passes_total";
const EXPIRY_SHARES_EXPIRED: &str = "ferry_expiry_shares_expired_total";
const EXPIRY_KEYS_SHREDDED: &str = "ferry_expiry_keys_shredded_total";
const EXPIRY_OBJECTS_DELETED: &str = "ferry_expiry_objects_deleted_total";
const STORE_ERRORS: &str = "ferry_store_errors_total";
const RELAY_QUEUED: &str = "ferry_relay_queued_recipients";
const RELAY_OLDEST: &str = "ferry_relay_queue_oldest_seconds";
const RELAY_FINISHED: &str = "ferry_relay_recipients_finished";

/// Commit latency buckets, seconds: a local fsync is milliseconds, an S3 part seconds.
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process); `None` if another recorder was installed first,
/// in which case `/metrics` says so instead of serving numbers it does not have.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(UPLOAD_COMMIT_SECONDS.to_owned()),
                    COMMIT_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder now, so metrics recorded before the first scrape are kept.
pub fn install() {
    if handle().is_none() {
        tracing::warn!("another metrics recorder is installed; /metrics stays empty");
    }
}

/// The relay queue's state as read from the database at scrape time (shared by every relay
/// instance): recipients waiting, the age of the oldest, and finished recipients per outcome
/// and delivery method.
pub fn relay_queue(queued: u64, oldest_age: Duration, finished: &[(String, String, u64)]) {
    gauge!(RELAY_QUEUED).set(queued as f64);
    gauge!(RELAY_OLDEST).set(oldest_age.as_secs_f64());
    for (status, method, count) in finished {
        // Fixed words only: statuses and methods come from the queue's CHECK and the relay.
        let status = match status.as_str() {
            "delivered" => "delivered",
            "bounced" => "bounced",
            "expired" => "expired",
            _ => continue,
        };
        let method = match method.as_str() {
            "mta-sts" => "mta-sts",
            "webpki" => "webpki",
            _ => "none",
        };
        gauge!(RELAY_FINISHED, "outcome" => status, "method" => method).set(*count as f64);
    }
}

/// The current metrics in the Prometheus text format; `None` without a recorder.
pub fn render() -> Option<String> {
    let handle = handle()?;
    handle.run_upkeep();
    Some(handle.render())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(UPLOADS_IN_FLIGHT, "PATCH bodies being written now");
    describe_gauge!(
        RELAY_QUEUED,
        "Relay recipients waiting for delivery (every instance)"
    );
    describe_gauge!(
        RELAY_OLDEST,
        Unit::Seconds,
        "Age of the oldest message with a recipient waiting"
    );
    describe_gauge!(
        RELAY_FINISHED,
        "Relay recipients finished, by outcome and delivery method"
    );
    describe_counter!(
        UPLOAD_BYTES_RECEIVED,
        Unit::Bytes,
        "Upload body bytes received"
    );
    describe_counter!(
        UPLOAD_BYTES_COMMITTED,
        Unit::Bytes,
        "Upload bytes made durable (store synced, offset committed)"
    );
    describe_histogram!(
        UPLOAD_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one commit: store sync, then the database update"
    );
    describe_counter!(
        DOWNLOADS,
        "Download responses that began sending file bytes"
    );
    describe_counter!(
        DOWNLOAD_BYTES_SERVED,
        Unit::Bytes,
        "File bytes sent to recipients"
    );
    describe_counter!(
        TOKEN_GUARD_REFUSALS,
        "Recipient requests refused (429) for too many failed link lookups"
    );
    describe_counter!(EXPIRY_PASSES, "Expiry passes, by result (ok, failed)");
    describe_counter!(EXPIRY_SHARES_EXPIRED, "Shares the expiry job ended");
    describe_counter!(
        EXPIRY_KEYS_SHREDDED,
        "File and upload keys the expiry job shredded"
    );
    describe_counter!(EXPIRY_OBJECTS_DELETED, "Objects the expiry job deleted");
    describe_counter!(STORE_ERRORS, "Object store failures, by kind");
}

/// Counts one PATCH body in flight for as long as it lives.
pub struct UploadInFlight(());

impl UploadInFlight {
    /// A body starts being written.
    pub fn start() -> UploadInFlight {
        gauge!(UPLOADS_IN_FLIGHT).increment(1.0);
        UploadInFlight(())
    }
}

impl Drop for UploadInFlight {
    fn drop(&mut self) {
        gauge!(UPLOADS_IN_FLIGHT).decrement(1.0);
    }
}

/// The counter of body bytes read from clients. A writer takes it once and adds each frame
/// to it (an atomic add), rather than looking the metric up per frame on the hot path.
pub fn upload_bytes_received() -> metrics::Counter {
    counter!(UPLOAD_BYTES_RECEIVED)
}

/// A commit that made `bytes` more durable and took `took`.
pub fn upload_committed(bytes: u64, took: Duration) {
    counter!(UPLOAD_BYTES_COMMITTED).increment(bytes);
    histogram!(UPLOAD_COMMIT_SECONDS).record(took.as_secs_f64());
}

/// A download response began sending bytes.
pub fn download_started() {
    counter!(DOWNLOADS).increment(1);
}

/// File bytes a download response sent.
pub fn download_bytes_served(bytes: u64) {
    counter!(DOWNLOAD_BYTES_SERVED).increment(bytes);
}

/// A recipient request refused by the token guard.
pub fn token_guard_refused() {
    counter!(TOKEN_GUARD_REFUSALS).increment(1);
}

/// An expiry pass that ran to the end: shares it ended, keys it shredded, objects it deleted.
pub fn expiry_pass_done(shares: usize, keys: usize, objects: usize) {
    counter!(EXPIRY_PASSES, "result" => "ok").increment(1);
    counter!(EXPIRY_SHARES_EXPIRED).increment(shares as u64);
    counter!(EXPIRY_KEYS_SHREDDED).increment(keys as u64);
    counter!(EXPIRY_OBJECTS_DELETED).increment(objects as u64);
}

/// An expiry pass that stopped on an error (the next one resumes).
pub fn expiry_pass_failed() {
    counter!(EXPIRY_PASSES, "result" => "failed").increment(1);
}

/// An object store failure, counted by its kind.
pub fn store_error(error: &StoreError) {
    counter!(STORE_ERRORS, "kind" => error.kind()).increment(1);
}
