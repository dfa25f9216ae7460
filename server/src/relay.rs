//! The relay's side of the service (the relay itself is the `ferry-relay` crate): the
//! accounts tenants' mail servers authenticate with and the domains they send from, and
//! where the relay keeps what must outlive a restart: the queue and the MTA-STS policies.

pub mod accounts;
pub mod config;
pub mod connector;
pub mod dkim_keys;
pub mod domains;
pub mod gate;
pub mod headers;
pub mod policy_cache;
pub mod queue;
pub mod service;

/// Puts the queue's current numbers into `/metrics` (read from the database, so a scrape of any
/// instance sees the queue every relay instance shares).
///
/// # Errors
/// The database did not answer; the scrape then serves the other metrics.
pub async fn refresh_metrics(state: &crate::state::AppState) -> Result<(), crate::db::DbError> {
    let stats = state.db.relay_queue_stats().await?;
    let age = stats
        .oldest_received
        .map(|at| (time::OffsetDateTime::now_utc() - at).unsigned_abs())
        .unwrap_or_default();
    crate::telemetry::relay_queue(stats.queued, age, &stats.finished);
    Ok(())
}
