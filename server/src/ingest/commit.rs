//! Committing an upload's progress: store sync first, then the database update guarded by
//! the offset the last commit left. Checkpoints inside a long PATCH sync in the background.

use std::time::Instant;
use time::OffsetDateTime;

use tokio::task::JoinHandle;
use uuid::Uuid;

use super::error::IngestError;
use super::pipeline::Pipeline;
use super::sealing::{FreeCheckpoint, Snapshot};
use crate::db::DbError;
use crate::db::uploads::Progress;
use crate::policy::UNFINISHED_TTL;
use crate::state::AppState;
use crate::telemetry;

/// Records progress: store sync first, then the database update guarded by the offset the
/// last commit left. A background checkpoint syncs while the body keeps flowing; at most one
/// is in flight, and every path settles it before the request ends.
pub struct Committer {
    state: AppState,
    tenant_id: Uuid,
    id: Uuid,
    length: Option<u64>,
    /// Offset of the last database commit.
    committed: u64,
    /// A checkpoint being synced and saved, and the offset it will commit.
    background: Option<(u64, JoinHandle<Result<(), IngestError>>)>,
}

impl Committer {
    /// The committer of upload `id` (of `length`, if known) whose last commit is at
    /// `committed`.
    pub fn new(
        state: AppState,
        tenant_id: Uuid,
        id: Uuid,
        length: Option<u64>,
        committed: u64,
    ) -> Committer {
        Committer {
            state,
            tenant_id,
            id,
            length,
            committed,
            background: None,
        }
    }

    /// Offset of the last database commit.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The upload's length, if known.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The offset the next checkpoint counts from (the one in flight, or the last committed).
    pub fn checkpointed(&self) -> u64 {
        self.background
            .as_ref()
            .map_or(self.committed, |(offset, _)| *offset)
    }

    /// Waits for the background checkpoint, if any.
    pub async fn settle(&mut self) -> Result<(), IngestError> {
        if let Some((offset, task)) = self.background.take() {
            task.await.map_err(|e| IngestError::Task(e.to_string()))??;
            self.committed = offset;
        }
        Ok(())
    }

    /// Starts a checkpoint of everything absorbed so far whose sync overlaps with further
    /// appends.
    pub async fn commit_in_background(
        &mut self,
        pipeline: &mut Pipeline,
    ) -> Result<(), IngestError> {
        self.settle().await?;
        let checkpoint = pipeline.run(|ingest| ingest.snapshot_for_sync()).await?;
        self.start_background(checkpoint);
        Ok(())
    }

    /// Whether a checkpoint at `offset` may be committed: not at the upload's length, which
    /// only the completion records. An upload left "uploading" at its full length would look
    /// finished to a client's HEAD, which then never sends the request that completes it.
    pub fn may_checkpoint_at(&self, offset: u64) -> bool {
        self.length != Some(offset)
    }

    /// Commits a free checkpoint (an S3 part boundary) in the background, unless a later
    /// commit already covers it.
    pub async fn commit_free(&mut self, checkpoint: FreeCheckpoint) -> Result<(), IngestError> {
        self.settle().await?;
        if checkpoint.0.offset > self.committed && self.may_checkpoint_at(checkpoint.0.offset) {
            self.start_background(checkpoint);
        }
        Ok(())
    }

    fn start_background(&mut self, (mut snapshot, syncer): FreeCheckpoint) {
        let (state, tenant_id, id, length, from) = (
            self.state.clone(),
            self.tenant_id,
            self.id,
            self.length,
            self.committed,
        );
        let offset = snapshot.offset;
        let task = tokio::spawn(async move {
            let began = Instant::now();
            snapshot.store_state = tokio::task::spawn_blocking(move || syncer.sync())
                .await
                .map_err(|e| IngestError::Task(e.to_string()))?
                .map_err(|e| IngestError::Task(e.to_string()))?;
            save(&state, tenant_id, id, from, length, &snapshot).await?;
            telemetry::upload_committed(offset - from, began.elapsed());
            Ok(())
        });
        self.background = Some((offset, task));
    }

    /// Syncs and commits everything absorbed so far; returns the new abandonment time.
    pub async fn commit_now(
        &mut self,
        pipeline: &mut Pipeline,
    ) -> Result<OffsetDateTime, IngestError> {
        self.settle().await?;
        let began = Instant::now();
        let snapshot = pipeline.run(|ingest| ingest.checkpoint()).await?;
        let expires_at = save(
            &self.state,
            self.tenant_id,
            self.id,
            self.committed,
            self.length,
            &snapshot,
        )
        .await?;
        telemetry::upload_committed(snapshot.offset - self.committed, began.elapsed());
        self.committed = snapshot.offset;
        Ok(expires_at)
    }
}

/// Writes a durable snapshot's state if the upload is still at `from`.
async fn save(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    from: u64,
    length: Option<u64>,
    snapshot: &Snapshot,
) -> Result<OffsetDateTime, IngestError> {
    let expires_at = OffsetDateTime::now_utc() + UNFINISHED_TTL;
    state
        .db
        .save_progress(
            tenant_id,
            id,
            from,
            &Progress {
                offset: snapshot.offset,
                length,
                hash_state: &snapshot.hash_state,
                sealed_tail: snapshot.sealed_tail.as_deref(),
                store_state: snapshot.store_state.as_deref(),
                expires_at,
            },
        )
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => IngestError::Moved {
                expected: snapshot.offset,
                got: from,
            },
            other => IngestError::Db(other),
        })?;
    Ok(expires_at)
}
