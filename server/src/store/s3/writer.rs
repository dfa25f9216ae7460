//! Writing one object by S3 multipart upload, resumable by any instance.
//!
//! Sealed segments are spooled to a local file (ciphertext only) until a part is exactly
//! full; then that part uploads in the background from the file while the next one fills, at
//! most one in flight, so memory stays at a few segments whatever the part size. A commit
//! before the part is full writes what the spool holds beyond the last commit as a pending
//! piece (a small object), so the acknowledged offset is durable in the store; the next
//! writer, on any instance, reads the pieces back into its spool. Part numbers are only ever
//! used for full parts, so no interruption can burn one (tusd#1247).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared, join_all};
use uuid::Uuid;

use super::client::{error_code, remote};
use super::plan::PartPlan;
use super::state::{MultipartState, PendingPiece};
use super::{Bucket, SPOOL_READ_BUFFER, pending_prefix};
use crate::store::{
    CHECKPOINT_SEGMENTS, ObjectSyncer, ObjectWriter, StoreError, StoreState, WriteFrom,
};

/// A part upload that both the writer and checkpoint syncers can wait for; yields the ETag.
type PartUpload = Shared<BoxFuture<'static, Result<String, String>>>;

/// The bytes of the part being filled, in a local file removed when dropped.
struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes written.
    len: u64,
    /// Bytes already in pending pieces.
    covered: u64,
}

impl Spool {
    fn create(dir: &std::path::Path, file_id: Uuid) -> Result<Self, StoreError> {
        let path = dir.join(format!("{file_id}-{}.spool", Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(Spool {
            path,
            file,
            len: 0,
            covered: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Hands the file over to whoever uploads it (and then removes it).
    fn into_path(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The multipart writer of one object.
pub(super) struct S3Writer {
    bucket: Arc<Bucket>,
    file_id: Uuid,
    plan: PartPlan,
    upload_id: Option<String>,
    parts: Vec<PartUpload>,
    pending: Vec<PendingPiece>,
    spool: Option<Spool>,
    /// Stored bytes of the object so far (committed or not).
    written: u64,
    /// The object's stored length when an earlier attempt already completed it (see
    /// [`ObjectWriter::completed_len`]); nothing is written then.
    completed: Option<u64>,
}

fn ready(etag: String) -> PartUpload {
    futures_util::future::ready(Ok(etag)).boxed().shared()
}

impl S3Writer {
    /// Picks the object up where the last commit left it.
    pub(super) fn open(
        bucket: Arc<Bucket>,
        file_id: Uuid,
        from: WriteFrom<'_>,
    ) -> Result<Self, StoreError> {
        let state = match from.state {
            Some(bytes) => MultipartState::decode(bytes)?,
            None if from.stored_offset == 0 => MultipartState::new(
                PartPlan::for_len(from.max_plaintext_len)
                    .map_err(|e| StoreError::State(e.to_string()))?,
            ),
            None => {
                return Err(StoreError::State(format!(
                    "upload {file_id} has {} stored bytes but no S3 state: it was started on \
                     another store",
                    from.stored_offset
                )));
            }
        };
        let plan = state
            .plan()
            .ok_or_else(|| StoreError::State("invalid part plan".into()))?;
        // A multipart object exists under its key only once completed. Checked whenever a
        // multipart upload was started (one HEAD per PATCH): a completion whose database
        // commit failed must be recognised, or the retry would send parts to an upload that
        // no longer exists.
        let completed = match (state.completed_len, &state.upload_id) {
            (Some(len), _) => Some(len),
            (None, Some(_)) => bucket.object_len(&bucket.object_key(file_id))?,
            (None, None) => None,
        };
        if let Some(len) = completed {
            if from.stored_offset > len {
                return Err(StoreError::State(format!(
                    "upload {file_id}: the completed object holds {len} stored bytes, the \
                     offset {} is beyond it",
                    from.stored_offset
                )));
            }
            return Ok(S3Writer {
                bucket,
                file_id,
                plan,
                upload_id: state.upload_id,
                parts: Vec::new(),
                pending: Vec::new(),
                spool: None,
                written: from.stored_offset,
                completed: Some(len),
            });
        }
        if state.stored_len(plan) != from.stored_offset {
            return Err(StoreError::State(format!(
                "upload {file_id}: the saved S3 state covers {} stored bytes, the offset {}",
                state.stored_len(plan),
                from.stored_offset
            )));
        }
        let mut spool = Spool::create(bucket.spool_dir.ensure()?, file_id)?;
        for piece in &state.pending {
            bucket.read_object_into(&piece.key, piece.len, &mut spool.file)?;
            spool.len += piece.len;
        }
        spool.covered = spool.len;
        if !state.parts.is_empty() {
            // Before the first part is full there are no pieces of earlier parts: no listing.
            bucket.forget_pieces_before(file_id, state.parts.len() as u64 + 1);
        }
        Ok(S3Writer {
            bucket,
            file_id,
            plan,
            upload_id: state.upload_id,
            parts: state.parts.into_iter().map(ready).collect(),
            pending: state.pending,
            spool: Some(spool),
            written: from.stored_offset,
            completed: None,
        })
    }

    fn spool(&mut self) -> Result<&mut Spool, StoreError> {
        self.spool
            .as_mut()
            .ok_or_else(|| StoreError::State("the writer failed earlier".into()))
    }

    fn upload_id(&mut self) -> Result<String, StoreError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let key = self.bucket.object_key(self.file_id);
        let created = self
            .bucket
            .block_on(
                self.bucket
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket.name)
                    .key(&key)
                    .send(),
            )
            .map_err(|e| remote(format_args!("CreateMultipartUpload {key}"), e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| StoreError::Remote(format!("CreateMultipartUpload {key}: no UploadId")))?
            .to_owned();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Starts uploading the spool as the next part and opens a fresh spool. At most one part
    /// is in flight while the next fills: the previous one is awaited first.
    fn hand_off(&mut self) -> Result<(), StoreError> {
        let upload_id = self.upload_id()?;
        if let Some(previous) = self.parts.last() {
            self.bucket
                .block_on(previous.clone())
                .map_err(StoreError::Remote)?;
        }
        let next = Spool::create(self.bucket.spool_dir.ensure()?, self.file_id)?;
        let full = self
            .spool
            .replace(next)
            .ok_or_else(|| StoreError::State("the writer failed earlier".into()))?;
        let len = full.len;
        let path = full.into_path();
        self.pending.clear();
        let number = self.parts.len() + 1;
        let bucket = self.bucket.clone();
        let key = bucket.object_key(self.file_id);
        let task = self.bucket.runtime.spawn(async move {
            let result = upload_part(&bucket, &key, &upload_id, number, &path, len).await;
            let _ = tokio::fs::remove_file(&path).await;
            result
        });
        let part = async move {
            task.await
                .map_err(|e| format!("part upload task: {e}"))?
                .map_err(|e| e.to_string())
        };
        self.parts.push(part.boxed().shared());
        Ok(())
    }

    /// Writes what the spool holds beyond the last pending piece as a new piece.
    fn write_piece(&mut self) -> Result<(), StoreError> {
        let part = self.parts.len() + 1;
        let file_id = self.file_id;
        let bucket = self.bucket.clone();
        let spool = self.spool()?;
        if spool.len == spool.covered {
            return Ok(());
        }
        spool.file.flush()?;
        let key = format!(
            "{}{part:05}-{}",
            pending_prefix(file_id),
            Uuid::new_v4().simple()
        );
        let (offset, len, path) = (spool.covered, spool.len - spool.covered, spool.path.clone());
        bucket.block_on(async {
            let body = ByteStream::read_from()
                .buffer_size(SPOOL_READ_BUFFER)
                .path(&path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| {
                    StoreError::Remote(format!("reading spool {}: {e}", path.display()))
                })?;
            bucket
                .client
                .put_object()
                .bucket(&bucket.name)
                .key(&key)
                .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                .body(body)
                .send()
                .await
                .map_err(|e| remote(format_args!("PutObject {key}"), e))
        })?;
        spool.covered = spool.len;
        self.pending.push(PendingPiece { key, len });
        Ok(())
    }

    /// The state to commit, minus the ETags (filled in when the parts are done).
    fn state_template(&self) -> MultipartState {
        MultipartState {
            upload_id: self.upload_id.clone(),
            pending: self.pending.clone(),
            completed_len: self.completed,
            ..MultipartState::new(self.plan)
        }
    }

    /// Refuses to write to an object an earlier attempt completed.
    fn not_completed(&self) -> Result<(), StoreError> {
        match self.completed {
            None => Ok(()),
            Some(_) => Err(StoreError::State(format!(
                "upload {}: the object is already complete; nothing may be appended",
                self.file_id
            ))),
        }
    }
}

async fn upload_part(
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
    number: usize,
    path: &std::path::Path,
    len: u64,
) -> Result<String, StoreError> {
    let what = format_args!("UploadPart {number} of {key}").to_string();
    let body = ByteStream::read_from()
        .buffer_size(SPOOL_READ_BUFFER)
        .path(path)
        .build()
        .await
        .map_err(|e| StoreError::Remote(format!("{what}: reading the spool: {e}")))?;
    let done = bucket
        .client
        .upload_part()
        .bucket(&bucket.name)
        .key(key)
        .upload_id(upload_id)
        .part_number(i32::try_from(number).unwrap_or(i32::MAX))
        .content_length(i64::try_from(len).unwrap_or(i64::MAX))
        .body(body)
        .send()
        .await
        .map_err(|e| remote(&what, e))?;
    done.e_tag()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Remote(format!("{what}: no ETag in the answer")))
}

/// Waits for `parts` and returns their ETags in order.
async fn etags(parts: Vec<PartUpload>) -> Result<Vec<String>, StoreError> {
    join_all(parts)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::Remote)
}

impl ObjectWriter for S3Writer {
    fn append(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        self.not_completed()?;
        let part_bytes = self.plan.part_bytes();
        while !bytes.is_empty() {
            let spool = self.spool()?;
            let room = usize::try_from(part_bytes - spool.len).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            spool.write(now)?;
            let full = spool.len == part_bytes;
            self.written += now.len() as u64;
            bytes = rest;
            if full {
                self.hand_off()?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<StoreState, StoreError> {
        if self.completed.is_some() {
            return Ok(Some(self.state_template().encode()?));
        }
        self.write_piece()?;
        let mut state = self.state_template();
        state.parts = self.bucket.block_on(etags(self.parts.clone()))?;
        Ok(Some(state.encode()?))
    }

    fn syncer(&mut self) -> Result<Box<dyn ObjectSyncer>, StoreError> {
        if self.completed.is_some() {
            return Ok(Box::new(S3Syncer {
                bucket: self.bucket.clone(),
                parts: Vec::new(),
                state: self.state_template(),
            }));
        }
        // At a part boundary (the usual case) the spool is empty and this costs nothing.
        self.write_piece()?;
        Ok(Box::new(S3Syncer {
            bucket: self.bucket.clone(),
            parts: self.parts.clone(),
            state: self.state_template(),
        }))
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if self.completed.is_some() {
            // The caller checked every byte sent again against the object.
            return Ok(());
        }
        let key = self.bucket.object_key(self.file_id);
        if self.upload_id.is_none() {
            // The whole object fits in one part: a single PUT, no multipart upload at all.
            let spool = self
                .spool
                .take()
                .ok_or_else(|| StoreError::State("the writer failed earlier".into()))?;
            self.bucket.put_file(&key, &spool.path, spool.len)?;
        } else {
            if self.spool()?.len > 0 {
                self.hand_off()?;
            }
            let upload_id = self.upload_id()?;
            let etags = self.bucket.block_on(etags(self.parts.clone()))?;
            let total = etags.len() as u64; // parts, for the message below
            let completed = CompletedMultipartUpload::builder()
                .set_parts(Some(
                    etags
                        .into_iter()
                        .enumerate()
                        .map(|(i, etag)| {
                            CompletedPart::builder()
                                .part_number(i32::try_from(i + 1).unwrap_or(i32::MAX))
                                .e_tag(etag)
                                .build()
                        })
                        .collect(),
                ))
                .build();
            let result = self.bucket.block_on(
                self.bucket
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket.name)
                    .key(&key)
                    .upload_id(&upload_id)
                    .multipart_upload(completed)
                    .send(),
            );
            match result {
                Ok(_) => {}
                // A retry after a crash between completing and recording it: the object is
                // already whole if it is there with every part.
                Err(e) if error_code(&e) == Some("NoSuchUpload") => {
                    if self.bucket.object_len(&key)? != Some(self.written) {
                        return Err(remote(
                            format_args!("CompleteMultipartUpload {key} ({total} parts)"),
                            e,
                        ));
                    }
                }
                Err(e) => {
                    return Err(remote(
                        format_args!("CompleteMultipartUpload {key} ({total} parts)"),
                        e,
                    ));
                }
            }
        }
        // The pending pieces stay until the database has recorded the completion
        // (`ObjectStore::forget_upload_state`): if that commit fails, the retry resumes
        // from a state that names them.
        Ok(())
    }

    fn completed_len(&self) -> Option<u64> {
        self.completed
    }

    fn quiesce(&mut self) {
        let _ = self.bucket.block_on(join_all(self.parts.clone()));
    }

    fn checkpoint_every(&self) -> u64 {
        // A completed object writes nothing: any moment is as good for a checkpoint.
        match self.completed {
            None => self.plan.segments_per_part(),
            Some(_) => CHECKPOINT_SEGMENTS,
        }
    }
}

/// Waits for the parts a checkpoint covers, then names them in the state to commit.
struct S3Syncer {
    bucket: Arc<Bucket>,
    parts: Vec<PartUpload>,
    state: MultipartState,
}

impl ObjectSyncer for S3Syncer {
    fn sync(self: Box<Self>) -> Result<StoreState, StoreError> {
        let mut state = self.state;
        state.parts = self.bucket.block_on(etags(self.parts))?;
        Ok(Some(state.encode()?))
    }
}
