//! Waiting for something that happens in the background (a commit, a cleanup, a process
//! exiting) without sleeping a fixed time: poll a check until it passes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long to wait between two checks.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Runs `check` until it returns `Ok`, every 20 ms for at most `within`, and returns its value.
/// If it never passes, the error is its last failure (which should say what it saw), with how
/// long it was tried. Blocks the thread: for async tests, see [`eventually_async`].
///
/// ```
/// # use std::time::Duration;
/// # fn main() -> anyhow::Result<()> {
/// let mut polls = 0;
/// let seen = ferry_testkit::eventually(Duration::from_secs(5), || {
///     polls += 1;
///     anyhow::ensure!(polls >= 3, "polled {polls} times");
///     Ok(polls)
/// })?;
/// assert_eq!(seen, 3);
/// # Ok(())
/// # }
/// ```
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {within:?}")));
            }
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
    }
}

/// [`eventually`] for async tests: awaits `check` until it returns `Ok`, every 20 ms (on the
/// runtime's clock) for at most `within` (wall-clock time), and returns its value; else its
/// last failure, with how long it was tried.
pub async fn eventually_async<T>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("still failing after {within:?}"));
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}
