//! The two-deep upload pipeline: one batch is gathered from the request body on the async
//! side while the previous one is hashed, sealed and written on a blocking thread. A batch is
//! the body's own frames (reference-counted `Bytes` from the HTTP reader), never copied: each
//! byte is read once, by the hashing and sealing. Memory per busy upload is two batches and
//! the sealed output of one, whatever the file's size; an upload whose client is slower than
//! the server holds only what arrived since it last waited (see [`Pipeline::idle`]), so
//! hundreds of slow uploads cost little.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::error::IngestError;
use super::sealing::{Ingest, PendingCheckpoint};

/// Plaintext handed to the blocking side per step while few uploads run: big batches halve
/// the thread hand-offs of a fast stream (about a tenth of one stream's upload speed).
const BATCH_FEW: usize = 512 * 1024;
/// Plaintext per step while many uploads run: then memory per upload matters more (a busy
/// upload holds about three batches).
const BATCH_MANY: usize = 256 * 1024;
/// Up to this many pipelines at once use [`BATCH_FEW`].
const FEW: usize = 8;
/// Pipelines alive in this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The batch size for now, by how many uploads are being written.
fn batch_len() -> usize {
    if ACTIVE.load(Ordering::Relaxed) <= FEW {
        BATCH_FEW
    } else {
        BATCH_MANY
    }
}
type InFlight = JoinHandle<(Ingest, Result<(), IngestError>)>;

/// Body frames gathered for one step of the blocking side.
#[derive(Default)]
struct Batch {
    frames: Vec<Bytes>,
    len: usize,
}

/// The two-deep pipeline: one batch being gathered here while the previous one is absorbed.
pub struct Pipeline {
    ingest: Option<Ingest>,
    in_flight: Option<InFlight>,
    filling: Batch,
    /// The latest checkpoint the absorbed batches reached.
    pending: Option<PendingCheckpoint>,
}

impl Pipeline {
    /// A pipeline around a resumed upload.
    pub fn new(ingest: Ingest) -> Self {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Pipeline {
            pending: None,
            ingest: Some(ingest),
            in_flight: None,
            filling: Batch::default(),
        }
    }

    /// Waits for the batch being absorbed, if any.
    async fn join_in_flight(&mut self) -> Result<(), IngestError> {
        if let Some(handle) = self.in_flight.take() {
            let (mut ingest, result) =
                handle.await.map_err(|e| IngestError::Task(e.to_string()))?;
            if let Some(pending) = ingest.take_checkpoint() {
                self.pending = Some(pending);
            }
            self.ingest = Some(ingest);
            result?;
        }
        Ok(())
    }

    /// Hands the gathered batch to a blocking thread.
    async fn dispatch(&mut self) -> Result<(), IngestError> {
        self.join_in_flight().await?;
        if self.filling.len == 0 {
            return Ok(());
        }
        let mut ingest = self
            .ingest
            .take()
            .ok_or_else(|| IngestError::Task("pipeline lost".into()))?;
        let batch = std::mem::take(&mut self.filling);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = ingest.absorb(&batch.frames);
            if batch.len < BATCH_MANY {
                ingest.release_buffers();
            }
            (ingest, result)
        }));
        Ok(())
    }

    /// The body has nothing more for now. If the blocking side is idle too, what arrived is
    /// absorbed at once rather than held until a batch fills: a client slower than the server
    /// costs the bytes it sent since the last wait, not two batches. A busy blocking side is
    /// left alone (the body's pause lets it catch up).
    pub async fn idle(&mut self) -> Result<(), IngestError> {
        if self.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        self.join_in_flight().await?;
        if self.filling.len > 0 {
            self.dispatch().await?;
        }
        Ok(())
    }

    /// Waits for the batch being absorbed and for the store writer's background work,
    /// whatever their outcome. Called on every way out of a write before the upload's lock
    /// is released: a write of this request landing after a newer request's would overwrite
    /// its bytes (on disk, the same offsets; in S3, the same part number).
    pub async fn quiesce(&mut self) {
        if let Some(handle) = self.in_flight.take()
            && let Ok((ingest, _)) = handle.await
        {
            self.ingest = Some(ingest);
        }
        if let Some(mut ingest) = self.ingest.take() {
            let _ = tokio::task::spawn_blocking(move || ingest.quiesce()).await;
        }
    }

    /// Takes the latest checkpoint reached by the batches absorbed so far.
    pub fn take_checkpoint(&mut self) -> Option<PendingCheckpoint> {
        self.pending.take()
    }

    /// Adds a frame of the body (kept as it is, not copied); a full batch goes to the
    /// blocking side.
    pub async fn push(&mut self, frame: Bytes) -> Result<(), IngestError> {
        if frame.is_empty() {
            return Ok(());
        }
        self.filling.len += frame.len();
        self.filling.frames.push(frame);
        if self.filling.len >= batch_len() {
            self.dispatch().await?;
        }
        Ok(())
    }

    /// Absorbs everything pushed so far and returns the idle pipeline state.
    async fn drain(&mut self) -> Result<&mut Ingest, IngestError> {
        self.dispatch().await?;
        self.join_in_flight().await?;
        self.ingest
            .as_mut()
            .ok_or_else(|| IngestError::Task("pipeline lost".into()))
    }

    /// Runs a blocking step on the drained pipeline state.
    pub async fn run<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&mut Ingest) -> Result<T, IngestError> + Send + 'static,
    ) -> Result<T, IngestError> {
        self.drain().await?;
        let mut ingest = self
            .ingest
            .take()
            .ok_or_else(|| IngestError::Task("pipeline lost".into()))?;
        let (ingest, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut ingest);
            (ingest, result)
        })
        .await
        .map_err(|e| IngestError::Task(e.to_string()))?;
        self.ingest = Some(ingest);
        result
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
