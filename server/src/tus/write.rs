//! Writing a PATCH body (or a creation-with-upload body) to an upload.
//!
//! The body is read on the async side into batches; each batch goes through [`Ingest`] on a
//! blocking thread while the next one is read (a two-deep pipeline, so memory per upload is a
//! few batches whatever the file size). Progress is committed at the checkpoints the store
//! sets (see [`crate::store::ObjectWriter::checkpoint_every`]), after [`IDLE_COMMIT`] without
//! body bytes, and when the body ends or breaks, always in the order: store sync, then
//! database.

use std::fmt::Display;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::checksum::ExpectedChecksum;
use super::error::TusError;
use super::upload::{ceiling, check_length, ensure_not_gone, hold, max_upload_len};
use crate::audit::EventKind;
use crate::auth::{Caller, Intent};
use crate::crypto::segment::SegmentCipher;
use crate::db::uploads::{CompletedFile, UploadRow, UploadState};
use crate::ingest::{Committer, Ingest, Pipeline};
use crate::state::AppState;
use crate::telemetry::{self, UploadInFlight};

/// A body that stalls this long commits what it has, so a slow client that then loses its
/// connection to a crashing server keeps everything the server had received.
const IDLE_COMMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A PATCH (or creation-with-upload) request, parsed.
pub struct PatchRequest {
    /// `Upload-Offset`.
    pub offset: u64,
    /// `Upload-Length`, when a deferred length is being declared.
    pub length: Option<u64>,
    /// `Upload-Checksum`, if sent.
    pub checksum: Option<ExpectedChecksum>,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
}

/// The state after a PATCH.
#[derive(Debug, Clone)]
pub struct PatchOutcome {
    /// New durable offset.
    pub offset: u64,
    /// When the upload will be abandoned, while unfinished.
    pub expires_at: Option<OffsetDateTime>,
    /// Hex BLAKE3, if the upload completed.
    pub blake3: Option<String>,
}

/// Writes a PATCH body (or a creation-with-upload body) to upload `id`.
///
/// Runs to completion even if the client goes away (callers spawn it), so what arrived is
/// committed and no database write outlives the upload's lock.
pub async fn write<S, E>(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    mut request: PatchRequest,
    mut body: S,
) -> Result<PatchOutcome, TusError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let (writer, row) = hold(state, caller, id, Intent::Write).await?;
    let _in_flight = UploadInFlight::start();
    let policy_max = match row.length {
        None => state.db.policy(caller.tenant_id).await?.max_upload_bytes,
        Some(_) => None,
    };
    let length = decide_length(state, policy_max, &row, &request)?;
    if row.state == UploadState::Complete {
        return if request.offset == row.offset && request.content_length.unwrap_or(0) == 0 {
            Ok(PatchOutcome {
                offset: row.offset,
                expires_at: None,
                blake3: row.blake3,
            })
        } else {
            Err(TusError::TooLarge("the upload is already complete".into()))
        };
    }
    // While the length is deferred, the body may run up to the largest upload allowed.
    let limit = length.unwrap_or_else(|| ceiling(state, policy_max));
    let declared_end = request
        .offset
        .checked_add(request.content_length.unwrap_or(0))
        .filter(|end| *end <= limit);
    let Some(_) = declared_end else {
        return Err(TusError::TooLarge(match length {
            Some(length) => format!("the body would end past Upload-Length {length}"),
            None => format!("the body would end past the maximum upload of {limit} bytes"),
        }));
    };

    let wrapped = state.db.wrapped_dek(caller.tenant_id, id).await?;
    let dek = state.tenant_kek(caller.tenant_id)?.unwrap(&wrapped, id)?;
    let cipher = SegmentCipher::new(&dek, id)?;
    let store = state.store.clone();
    let checkpoint = row.checkpoint();
    let max_plaintext_len = length.unwrap_or_else(|| max_upload_len(state));
    let ingest = tokio::task::spawn_blocking(move || {
        Ingest::resume(store.as_ref(), id, cipher, &checkpoint, max_plaintext_len)
    })
    .await
    .map_err(TusError::Task)??;

    let mut pipeline = Pipeline::new(ingest);
    let written = async {
        let mut committer = Committer::new(state.clone(), caller.tenant_id, id, length, row.offset);
        let room = limit.saturating_sub(row.offset);
        let read = read_body(
            &mut body,
            &writer.stop,
            &mut request,
            room,
            &mut pipeline,
            &mut committer,
        )
        .await;
        // Never return (and release the lock) while a checkpoint is still being written.
        let background = committer.join_background().await;
        let (end, received) = read?;
        background?;
        if writer.session_lost() {
            // PostgreSQL released the lock with its session: another instance may hold the
            // upload now. Write and commit nothing more; the client resumes from HEAD.
            return Err(TusError::HoldLost);
        }
        finish_write(
            state,
            caller,
            id,
            &request,
            (end, row.offset + received),
            limit,
            &mut pipeline,
            &mut committer,
        )
        .await
    }
    .await;
    // On every way out, success or not: nothing of this request may still be writing once
    // the lock is released (the writer guard drops after this).
    pipeline.quiesce().await;
    drop(writer);
    written
}

/// Completes, commits or refuses what the body brought, by how it ended; `offset` is where
/// the body's last byte left the upload.
#[allow(clippy::too_many_arguments)] // the pieces of one write, borrowed from `write`
async fn finish_write(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    request: &PatchRequest,
    (end, offset): (End, u64),
    limit: u64,
    pipeline: &mut Pipeline,
    committer: &mut Committer,
) -> Result<PatchOutcome, TusError> {
    let length = committer.length();
    // A body that overran the length or failed its checksum is refused whole (beyond any
    // checkpoint already committed); a broken or taken-over body keeps what arrived, unless
    // a checksum was promised and so cannot be verified.
    let keep = match (&end, &request.checksum) {
        (End::TooLong, _) => false,
        (End::Done, Some(checksum)) => checksum.matches(),
        (_, Some(_)) => false,
        (_, None) => true,
    };
    if !keep {
        // Bytes already appended past the committed offset are overwritten by the next write.
        return Err(match end {
            End::Done => TusError::ChecksumMismatch,
            End::Broken(e) => TusError::Interrupted(e),
            End::TakenOver => TusError::Locked,
            End::TooLong => TusError::TooLarge(match length {
                Some(_) => "the body is longer than Upload-Length".into(),
                None => format!("the body runs past the maximum upload of {limit} bytes"),
            }),
        });
    }
    if length == Some(offset) {
        let began = std::time::Instant::now();
        let digests = pipeline.run(|ingest| ingest.finish()).await?;
        let hex = digests.blake3.to_hex().to_string();
        let audit = state.audit(
            caller.tenant_id,
            EventKind::UploadCompleted,
            caller.actor(),
            Some(id),
            serde_json::json!({ "size": offset, "blake3": hex }),
        )?;
        state
            .db
            .complete_upload(
                caller.tenant_id,
                id,
                committer.committed(),
                &CompletedFile {
                    length: offset,
                    blake3_hex: &hex,
                    crc32: digests.crc32,
                },
                &audit,
            )
            .await?;
        // The completion is the last commit: its bytes count as committed too.
        telemetry::upload_committed(offset - committer.committed(), began.elapsed());
        state.store.forget_upload_state(id);
        return Ok(PatchOutcome {
            offset,
            expires_at: None,
            blake3: Some(hex),
        });
    }
    let expires_at = committer.commit_now(pipeline).await?;
    match end {
        End::Broken(e) => Err(TusError::Interrupted(e)),
        _ => Ok(PatchOutcome {
            offset: committer.committed(),
            expires_at: Some(expires_at),
            blake3: None,
        }),
    }
}

/// How the body loop ended.
enum End {
    /// The body ended normally.
    Done,
    /// The client's connection broke.
    Broken(String),
    /// A newer request asked for the upload.
    TakenOver,
    /// The body carried more than the upload's length.
    TooLong,
}

/// Reads the body into the pipeline, checkpointing as it goes; returns how it ended and the
/// bytes received.
async fn read_body<S, E>(
    body: &mut S,
    stop: &CancellationToken,
    request: &mut PatchRequest,
    room: u64,
    pipeline: &mut Pipeline,
    committer: &mut Committer,
) -> Result<(End, u64), TusError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let start = committer.committed();
    let mut received = 0u64;
    let received_counter = telemetry::upload_bytes_received();
    let mut last_frame = Instant::now();
    let idle = tokio::time::sleep(IDLE_COMMIT);
    tokio::pin!(idle);
    loop {
        if stop.is_cancelled() {
            return Ok((End::TakenOver, received));
        }
        let frame = match body.next().now_or_never() {
            Some(frame) => frame,
            None => {
                // Waiting on the client: absorb what it sent rather than hold it.
                pipeline.idle().await?;
                let uncommitted = request.checksum.is_none()
                    && start + received > committer.committed()
                    && committer.may_checkpoint_at(start + received);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Ok((End::TakenOver, received)),
                    () = &mut idle, if uncommitted => {
                        let deadline = if last_frame.elapsed() >= IDLE_COMMIT {
                            committer.commit_now(pipeline).await?;
                            Instant::now() + IDLE_COMMIT
                        } else {
                            last_frame + IDLE_COMMIT
                        };
                        idle.as_mut().reset(deadline);
                        continue;
                    }
                    frame = body.next() => frame,
                }
            }
        };
        last_frame = Instant::now();
        let bytes = match frame {
            None => return Ok((End::Done, received)),
            Some(Err(e)) => return Ok((End::Broken(e.to_string()), received)),
            Some(Ok(bytes)) => bytes,
        };
        if received + bytes.len() as u64 > room {
            return Ok((End::TooLong, received));
        }
        received += bytes.len() as u64;
        received_counter.increment(bytes.len() as u64);
        if let Some(checksum) = request.checksum.as_mut() {
            checksum.update(&bytes);
        }
        pipeline.push(bytes).await?;
        // A body with a checksum commits nothing until the whole of it is verified.
        if let Some(pending) = pipeline.take_checkpoint()
            && request.checksum.is_none()
        {
            committer.commit_pending(pending).await?;
        }
    }
}

/// Decides the upload's length for this request (deferred lengths are declared on PATCH).
fn decide_length(
    state: &AppState,
    policy_max: Option<u64>,
    row: &UploadRow,
    request: &PatchRequest,
) -> Result<Option<u64>, TusError> {
    ensure_not_gone(row, OffsetDateTime::now_utc())?;
    if request.offset != row.offset {
        return Err(TusError::OffsetMismatch {
            expected: row.offset,
            got: request.offset,
        });
    }
    match (row.length, request.length) {
        (Some(stored), Some(sent)) if stored != sent => Err(TusError::BadRequest(format!(
            "Upload-Length is already {stored}; it cannot change to {sent}"
        ))),
        (None, Some(sent)) => {
            check_length(state, policy_max, sent)?;
            if sent < row.offset {
                return Err(TusError::BadRequest(format!(
                    "Upload-Length {sent} is below the bytes already stored ({})",
                    row.offset
                )));
            }
            Ok(Some(sent))
        }
        (stored, _) => Ok(stored),
    }
}
