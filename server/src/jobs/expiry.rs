//! The expiry pass: destroys what has outlived its time, in an order that is safe to cut at
//! any point. First it records the end of every share past its expiry (the link answers 410
//! from then on; one audit event each). Then, for a file whose last share has ended (or that
//! got none within 24 h of upload) and for an unfinished upload 24 h past its last byte: the
//! key is shredded first (the bytes are unreadable from that instant) together with the row
//! becoming a tombstone and the audit event, then the object is deleted, then the row is
//! marked destroyed. A pass that dies between steps leaves a claimed row whose claim runs out;
//! the next pass redoes what is missing, and every step is idempotent.
//!
//! Several instances may run passes at once: each row is claimed before it is touched (see
//! [`crate::db::expiry`]), and an unfinished upload is also locked like a writer, so a PATCH
//! that arrives as it expires is never cut short by the job.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, EventKind};
use crate::crypto::CryptoError;
use crate::db::DbError;
use crate::db::expiry::{ClaimedUpload, DueShare, UploadWork};
use crate::objects::{DestroyError, destroy_object};
use crate::state::AppState;
use crate::store::StoreError;
use crate::telemetry;

/// How long a pass holds a claimed row before another pass may take it: far longer than one
/// row's work (a key deletion and an object deletion).
pub const CLAIM_LEASE: time::Duration = time::Duration::minutes(10);

/// Rows claimed at a time: small, so instances running together share the work.
pub const CLAIM_BATCH: u32 = 16;

/// Why a pass stopped early. Rows it had claimed are taken again by a later pass.
#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The object store failed (the row stays a tombstone until a later pass deletes it).
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    /// A blocking task died.
    #[error("task: {0}")]
    Task(String),
    /// An audit event could not be keyed.
    #[error("audit key: {0}")]
    Crypto(#[from] CryptoError),
    /// A tombstone's object could not be destroyed (a later pass retries).
    #[error("destroying an object: {0}")]
    Destroy(#[from] DestroyError),
}

/// What a pass did (or, for a dry run, would do).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExpiryReport {
    /// The time the pass ran as.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Shares whose expiry this pass recorded (dry run: that are due).
    pub shares_expired: Vec<Uuid>,
    /// Files whose key this pass shredded (dry run: that may be due; a file is only destroyed
    /// if no live share holds it when the pass gets to it).
    pub files_expired: Vec<Uuid>,
    /// Unfinished uploads whose key this pass shredded (dry run: that are due).
    pub uploads_expired: Vec<Uuid>,
    /// Objects this pass deleted, of those and of earlier tombstones (dry run: tombstones due).
    pub objects_deleted: Vec<Uuid>,
    /// Claimed uploads left alone because they were being written or had become live again.
    pub skipped: Vec<Uuid>,
}

impl Default for ExpiryPass {
    fn default() -> Self {
        ExpiryPass {
            now: OffsetDateTime::now_utc(),
            dry_run: false,
            claimant: format!("ferry-{}-{}", std::process::id(), Uuid::new_v4().simple()),
            batch: CLAIM_BATCH,
        }
    }
}

/// One pass of the expiry job.
#[derive(Debug, Clone)]
pub struct ExpiryPass {
    /// The time the pass runs as (`ferry expire --now`); now by default.
    pub now: OffsetDateTime,
    /// Report what is due without changing anything.
    pub dry_run: bool,
    /// Who holds the claims this pass takes (unique per pass).
    pub claimant: String,
    /// Rows claimed per round.
    pub batch: u32,
}

impl ExpiryPass {
    /// Runs the pass to the end of the due work.
    pub async fn run(&self, state: &AppState) -> Result<ExpiryReport, ExpiryError> {
        let outcome = self.run_pass(state).await;
        match &outcome {
            _ if self.dry_run => {}
            Ok(report) => telemetry::expiry_pass_done(
                report.shares_expired.len(),
                report.files_expired.len() + report.uploads_expired.len(),
                report.objects_deleted.len(),
            ),
            Err(_) => telemetry::expiry_pass_failed(),
        }
        outcome
    }

    async fn run_pass(&self, state: &AppState) -> Result<ExpiryReport, ExpiryError> {
        let mut report = ExpiryReport {
            now: self.now,
            dry_run: self.dry_run,
            shares_expired: Vec::new(),
            files_expired: Vec::new(),
            uploads_expired: Vec::new(),
            objects_deleted: Vec::new(),
            skipped: Vec::new(),
        };
        if self.dry_run {
            for share in state.db.shares_due(self.now, u32::MAX).await? {
                report.shares_expired.push(share.id);
            }
            for row in state.db.expiry_due(self.now, u32::MAX).await? {
                match row.work {
                    UploadWork::Unfinished => report.uploads_expired.push(row.id),
                    UploadWork::File => report.files_expired.push(row.id),
                    UploadWork::Tombstone => report.objects_deleted.push(row.id),
                }
            }
            return Ok(report);
        }
        loop {
            let due = state.db.shares_due(self.now, self.batch).await?;
            let mut ended = 0;
            for share in &due {
                if self.end_share(state, *share).await? {
                    report.shares_expired.push(share.id);
                    ended += 1;
                }
            }
            // Rows another pass ended are no longer due; a batch with none of ours left is
            // the other pass's to finish.
            if ended == 0 {
                break;
            }
        }
        loop {
            let claimed = self.claim(state).await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            for row in claimed {
                self.process(state, row, &mut report).await?;
            }
        }
    }

    /// Claims the next batch of due rows for this pass.
    pub async fn claim(&self, state: &AppState) -> Result<Vec<ClaimedUpload>, ExpiryError> {
        Ok(state
            .db
            .claim_expiry_work(self.now, self.now + CLAIM_LEASE, &self.claimant, self.batch)
            .await?)
    }

    /// Takes one claimed row through the steps it still needs.
    async fn process(
        &self,
        state: &AppState,
        row: ClaimedUpload,
        report: &mut ExpiryReport,
    ) -> Result<(), ExpiryError> {
        if row.work != UploadWork::Tombstone {
            if !self.shred(state, row).await? {
                state
                    .db
                    .release_claim(row.tenant_id, row.id, &self.claimant)
                    .await?;
                report.skipped.push(row.id);
                return Ok(());
            }
            match row.work {
                UploadWork::File => report.files_expired.push(row.id),
                _ => report.uploads_expired.push(row.id),
            }
        }
        self.destroy(state, row).await?;
        report.objects_deleted.push(row.id);
        Ok(())
    }

    /// Records a share's expiry with its audit event; `false` if another pass did first.
    pub async fn end_share(&self, state: &AppState, share: DueShare) -> Result<bool, ExpiryError> {
        let audit = state.audit(
            share.tenant_id,
            EventKind::ShareExpired,
            Actor::System,
            Some(share.id),
            serde_json::json!({ "as_of": self.as_of() }),
        )?;
        let ended = state
            .db
            .end_expired_share(share.tenant_id, share.id, self.now, &audit)
            .await?;
        if ended {
            tracing::info!(share = %share.id, tenant = %share.tenant_id, "share expired");
        }
        Ok(ended)
    }

    /// Step one for an unfinished upload or a file: under its writer lock, shreds its key and
    /// makes it a tombstone, with its audit event, if it is still due. `false` if it is not (a
    /// write extended the upload, a share keeps the file) or a writer would not let go.
    pub async fn shred(&self, state: &AppState, row: ClaimedUpload) -> Result<bool, ExpiryError> {
        let Ok(_writer) = state.locks.acquire(row.id).await else {
            return Ok(false);
        };
        let (kind, details) = match row.work {
            UploadWork::File => {
                let reason = if state.db.file_was_shared(row.tenant_id, row.id).await? {
                    "its last share ended"
                } else {
                    "it was not shared within 24 hours of upload"
                };
                (
                    EventKind::FileExpired,
                    serde_json::json!({ "reason": reason, "as_of": self.as_of() }),
                )
            }
            _ => (
                EventKind::UploadExpired,
                serde_json::json!({
                    "reason": "no byte arrived for 24 hours",
                    "as_of": self.as_of(),
                }),
            ),
        };
        let audit = state.audit(row.tenant_id, kind, Actor::System, Some(row.id), details)?;
        let shredded = state
            .db
            .shred_expired(row.tenant_id, row.id, self.now, &audit)
            .await?;
        if shredded {
            tracing::info!(upload = %row.id, tenant = %row.tenant_id, event = kind.as_str(),
                "key shredded");
        }
        Ok(shredded)
    }

    /// The pass's time as RFC 3339, for audit events (it differs from the event's own time
    /// when the pass runs as another time).
    fn as_of(&self) -> String {
        self.now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Step two: deletes a tombstone's object, then records it destroyed.
    pub async fn destroy(&self, state: &AppState, row: ClaimedUpload) -> Result<(), ExpiryError> {
        destroy_object(state, row.tenant_id, row.id).await?;
        Ok(())
    }
}
