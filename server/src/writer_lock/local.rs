//! One writer per upload, with takeover: within this process, and across instances on
//! PostgreSQL.
//!
//! A client that lost its connection reconnects while the server may still be reading the
//! dead one. The newcomer therefore asks the current holder to stop; the holder stops at its
//! next batch boundary, commits what it has and releases. If it does not let go within
//! [`TAKEOVER_WAIT`], the newcomer gets 423. The database's optimistic offset check stays the
//! final guard, so even a missed lock can never commit two writers' bytes.
//!
//! Two layers, taken in this order and released together:
//! - in this process, a mutex per upload (a newcomer cancels the holder's `stop` token);
//! - on PostgreSQL, where several instances share one database, the instance-wide lease of
//!   [`super::postgres`]: an advisory lock on a dedicated session, asked for across instances with
//!   `NOTIFY`, released at once by PostgreSQL if the instance dies.
//!
//! On SQLite there is no cross-instance lease: one instance per SQLite database is the design,
//! so the in-process layer is the whole of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::locked::Locked;
use super::postgres::{AdvisoryLockError, HeldLock, PgAdvisoryLocks};

/// How long a newcomer waits for the current holder to let go.
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
}

/// The per-upload writer locks of this process, and the cross-instance lease if there is one.
#[derive(Default, Clone)]
pub struct UploadLocks {
    slots: Arc<Mutex<HashMap<Uuid, Slot>>>,
    lease: Option<PgAdvisoryLocks>,
}

/// Exclusive right to write one upload; `stop` fires when a newer request wants it.
pub struct WriterGuard {
    slots: Arc<Mutex<HashMap<Uuid, Slot>>>,
    id: Uuid,
    guard: Option<OwnedMutexGuard<()>>,
    lease: Option<HeldLock>,
    /// Cancelled when another request (here or on another instance) asks for this upload, or
    /// when the cross-instance lease is lost.
    pub stop: CancellationToken,
}

impl UploadLocks {
    /// Locks within this process only: for SQLite, which one instance serves by design.
    pub fn in_process() -> Self {
        Self::default()
    }

    /// Locks within this process plus the cross-instance lease, for instances sharing the
    /// PostgreSQL database at `database_url`. Opens the lease's own two connections.
    pub async fn with_postgres_advisory_locks(
        database_url: &str,
    ) -> Result<Self, AdvisoryLockError> {
        Ok(UploadLocks {
            slots: Arc::default(),
            lease: Some(PgAdvisoryLocks::start(database_url).await?),
        })
    }

    /// The `application_name` of this instance's lease session in `pg_stat_activity`, if it
    /// has one: what an operator (or a test) looks for to see or end it.
    pub fn advisory_session_name(&self) -> Option<&str> {
        self.lease.as_ref().map(PgAdvisoryLocks::application_name)
    }

    /// Takes the upload's writer lock, asking any current holder to stop first: the one in
    /// this process, then (on PostgreSQL) the one on another instance.
    pub async fn acquire(&self, id: Uuid) -> Result<WriterGuard, Locked> {
        let deadline = Instant::now() + TAKEOVER_WAIT;
        let lock = {
            let mut slots = self.slots.lock().map_err(|_| Locked)?;
            let slot = slots.entry(id).or_default();
            slot.stop.cancel();
            slot.lock.clone()
        };
        let guard = tokio::time::timeout_at(deadline, lock.lock_owned())
            .await
            .map_err(|_| Locked)?;
        let stop = CancellationToken::new();
        {
            let mut slots = self.slots.lock().map_err(|_| Locked)?;
            slots.entry(id).or_default().stop = stop.clone();
        }
        // Built before the lease is tried, so a refusal releases the local lock by its drop.
        let mut writer = WriterGuard {
            slots: self.slots.clone(),
            id,
            guard: Some(guard),
            lease: None,
            stop,
        };
        if let Some(lease) = &self.lease {
            writer.lease = Some(lease.acquire(id, &writer.stop, deadline).await?);
        }
        Ok(writer)
    }
}

impl WriterGuard {
    /// Whether the cross-instance lease was lost while held (its PostgreSQL session ended,
    /// which released it): another instance may be writing the upload now, so this writer
    /// must not write or commit anything more. Always false on SQLite.
    pub fn session_lost(&self) -> bool {
        self.lease.as_ref().is_some_and(HeldLock::is_lost)
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        // The lease first: its unlock is queued before a local newcomer can queue its lock.
        self.lease.take();
        self.guard.take();
        if let Ok(mut slots) = self.slots.lock() {
            // Waiters clone the Arc under this mutex, so a count of 1 means nobody waits.
            if slots
                .get(&self.id)
                .is_some_and(|s| Arc::strong_count(&s.lock) == 1)
            {
                slots.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newcomer_asks_the_holder_to_stop_and_then_gets_the_lock() -> Result<(), Locked> {
        let locks = UploadLocks::default();
        let id = Uuid::new_v4();
        let first = locks.acquire(id).await?;
        let stop = first.stop.clone();
        let releaser = tokio::spawn(async move {
            stop.cancelled().await;
            drop(first);
        });
        let second = locks.acquire(id).await?;
        assert!(!second.stop.is_cancelled());
        releaser.await.map_err(|_| Locked)?;
        drop(second);
        assert!(
            locks.slots.lock().map_err(|_| Locked)?.is_empty(),
            "slots are cleaned up"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_that_never_lets_go_leaves_the_newcomer_locked_out() -> Result<(), Locked> {
        let locks = UploadLocks::default();
        let id = Uuid::new_v4();
        let _stubborn = locks.acquire(id).await?;
        assert!(locks.acquire(id).await.is_err());
        Ok(())
    }
}
