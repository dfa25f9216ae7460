//! Background jobs. Each runs as a pass over rows it claims first (see [`crate::db::expiry`]),
//! so any number of instances may run the same schedule: a row is worked on by one pass only.

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::state::AppState;

pub mod expiry;

/// When the expiry pass runs: at second 0 of every minute.
pub const EXPIRY_SCHEDULE: &str = "0 * * * * *";

/// Starts the scheduled jobs of a serving instance; they run until the scheduler is dropped
/// or shut down.
pub async fn start(state: AppState) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async(EXPIRY_SCHEDULE, move |_, _| {
            let state = state.clone();
            Box::pin(async move {
                match expiry::ExpiryPass::default().run(&state).await {
                    Ok(report)
                        if report.objects_deleted.is_empty() && report.skipped.is_empty() => {}
                    Ok(report) => tracing::info!(
                        expired = report.uploads_expired.len(),
                        destroyed = report.objects_deleted.len(),
                        skipped = report.skipped.len(),
                        "expiry pass"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "expiry pass stopped; the next one resumes")
                    }
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
