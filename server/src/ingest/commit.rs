//! Committing an upload's progress: store sync first, then the database update guarded by
//! the offset the last commit left. Checkpoints inside a long PATCH sync in the background.

use std::time::Instant;
use time::OffsetDateTime;

use tokio::task::JoinHandle;
use uuid::Uuid;

use super::error::IngestError;
use super::pipeline::Pipeline;
use super::sealing::PendingCheckpoint;
use crate::db::DbError;
use crate::db::uploads::Checkpoint;
use crate::policy::UNFINISHED_TTL;
use crate::state::AppState;
use crate::telemetry;

/// Records progress: store sync first, then the database update guarded by the offset the
/// last commit left. A background checkpoint syncs while the body keeps flowing; at most one
/// is in flight, and every path waits for it before the request ends.
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

    /// Waits for the background checkpoint, if any.
    pub async fn join_background(&mut self) -> Result<(), IngestError> {
        if let Some((offset, task)) = self.background.take() {
            task.await.map_err(|e| IngestError::Task(e.to_string()))??;
            self.committed = offset;
        }
        Ok(())
    }

    /// Whether a checkpoint at `offset` may be committed: not at the upload's length, which
    /// only the completion records. An upload left "uploading" at its full length would look
    /// finished to a client's HEAD, which then never sends the request that completes it.
    pub fn may_checkpoint_at(&self, offset: u64) -> bool {
        self.length != Some(offset)
    }

    /// Commits a checkpoint the pipeline reached, in the background (its sync overlaps with
    /// further appends), unless a later commit already covers it.
    pub async fn commit_pending(&mut self, pending: PendingCheckpoint) -> Result<(), IngestError> {
        self.join_background().await?;
        let offset = pending.checkpoint.offset;
        if offset > self.committed && self.may_checkpoint_at(offset) {
            self.start_background(pending);
        }
        Ok(())
    }

    fn start_background(&mut self, pending: PendingCheckpoint) {
        let PendingCheckpoint {
            mut checkpoint,
            syncer,
        } = pending;
        let (state, tenant_id, id, length, from) = (
            self.state.clone(),
            self.tenant_id,
            self.id,
            self.length,
            self.committed,
        );
        let offset = checkpoint.offset;
        let task = tokio::spawn(async move {
            let began = Instant::now();
            checkpoint.store_state = tokio::task::spawn_blocking(move || syncer.sync())
                .await
                .map_err(|e| IngestError::Task(e.to_string()))??;
            save(&state, tenant_id, id, from, length, &checkpoint).await?;
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
        self.join_background().await?;
        let began = Instant::now();
        let checkpoint = pipeline.run(|ingest| ingest.checkpoint()).await?;
        let expires_at = save(
            &self.state,
            self.tenant_id,
            self.id,
            self.committed,
            self.length,
            &checkpoint,
        )
        .await?;
        telemetry::upload_committed(checkpoint.offset - self.committed, began.elapsed());
        self.committed = checkpoint.offset;
        Ok(expires_at)
    }
}

/// Writes a durable checkpoint if the upload is still at `from`.
async fn save(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    from: u64,
    length: Option<u64>,
    checkpoint: &Checkpoint,
) -> Result<OffsetDateTime, IngestError> {
    let expires_at = OffsetDateTime::now_utc() + UNFINISHED_TTL;
    state
        .db
        .save_checkpoint(tenant_id, id, from, checkpoint, length, expires_at)
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => IngestError::Moved {
                expected: checkpoint.offset,
                got: from,
            },
            other => IngestError::Db(other),
        })?;
    Ok(expires_at)
}
