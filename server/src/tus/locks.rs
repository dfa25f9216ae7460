//! One writer per upload within this process, with takeover.
//!
//! A client that lost its connection reconnects while the server may still be reading the
//! dead one. The newcomer therefore asks the current holder to stop; the holder stops at its
//! next batch boundary, commits what it has and releases. If it does not let go within
//! [`TAKEOVER_WAIT`], the newcomer gets 423. The database's optimistic offset check stays the
//! final guard, so even a missed lock can never commit two writers' bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a newcomer waits for the current holder to let go.
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
}

/// The per-upload writer locks of this process.
#[derive(Default, Clone)]
pub struct UploadLocks {
    slots: Arc<Mutex<HashMap<Uuid, Slot>>>,
}

/// The holder did not release the upload in time.
#[derive(Debug, thiserror::Error)]
#[error("another request is writing to this upload")]
pub struct Locked;

/// Exclusive right to write one upload; `stop` fires when a newer request wants it.
pub struct WriterGuard {
    slots: Arc<Mutex<HashMap<Uuid, Slot>>>,
    id: Uuid,
    guard: Option<OwnedMutexGuard<()>>,
    /// Cancelled when another request asks for this upload.
    pub stop: CancellationToken,
}

impl UploadLocks {
    /// Takes the upload's writer lock, asking any current holder to stop first.
    pub async fn acquire(&self, id: Uuid) -> Result<WriterGuard, Locked> {
        let lock = {
            let mut slots = self.slots.lock().map_err(|_| Locked)?;
            let slot = slots.entry(id).or_default();
            slot.stop.cancel();
            slot.lock.clone()
        };
        let guard = tokio::time::timeout(TAKEOVER_WAIT, lock.lock_owned())
            .await
            .map_err(|_| Locked)?;
        let stop = CancellationToken::new();
        {
            let mut slots = self.slots.lock().map_err(|_| Locked)?;
            slots.entry(id).or_default().stop = stop.clone();
        }
        Ok(WriterGuard {
            slots: self.slots.clone(),
            id,
            guard: Some(guard),
            stop,
        })
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
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
