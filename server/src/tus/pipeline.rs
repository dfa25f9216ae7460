//! The two-deep upload pipeline: one batch is filled from the request body on the async side
//! while the previous one is hashed, sealed and written on a blocking thread. Memory per
//! upload is two batches and the sealed output of one, whatever the file's size.

use tokio::task::JoinHandle;

use super::ingest::{FreeCheckpoint, Ingest, IngestError};
use super::upload::TusError;

/// Plaintext handed to the pipeline per step.
const BATCH: usize = 512 * 1024;
type InFlight = JoinHandle<(Ingest, Vec<u8>, Result<(), IngestError>)>;

/// The two-deep pipeline: one batch being filled here while the previous one is absorbed.
pub(super) struct Pipeline {
    ingest: Option<Ingest>,
    in_flight: Option<InFlight>,
    filling: Vec<u8>,
    spare: Vec<u8>,
    /// Whether the store offers free checkpoints.
    has_free_checkpoints: bool,
    /// The latest free checkpoint the absorbed batches reached.
    free: Option<FreeCheckpoint>,
}

impl Pipeline {
    pub(super) fn new(ingest: Ingest) -> Self {
        Pipeline {
            has_free_checkpoints: ingest.has_free_checkpoints(),
            free: None,
            ingest: Some(ingest),
            in_flight: None,
            filling: Vec::with_capacity(BATCH),
            spare: Vec::with_capacity(BATCH),
        }
    }

    /// Waits for the batch being absorbed, if any.
    async fn settle(&mut self) -> Result<(), TusError> {
        if let Some(handle) = self.in_flight.take() {
            let (mut ingest, mut buffer, result) =
                handle.await.map_err(|e| TusError::Storage(e.to_string()))?;
            if let Some(free) = ingest.take_free_checkpoint() {
                self.free = Some(free);
            }
            self.ingest = Some(ingest);
            buffer.clear();
            self.spare = buffer;
            result?;
        }
        Ok(())
    }

    /// Hands the filled batch to a blocking thread.
    async fn dispatch(&mut self) -> Result<(), TusError> {
        self.settle().await?;
        if self.filling.is_empty() {
            return Ok(());
        }
        let mut ingest = self
            .ingest
            .take()
            .ok_or_else(|| TusError::Storage("pipeline lost".into()))?;
        let batch = std::mem::replace(&mut self.filling, std::mem::take(&mut self.spare));
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = ingest.absorb(&batch);
            (ingest, batch, result)
        }));
        Ok(())
    }

    /// Whether the store offers free checkpoints (S3 part boundaries); byte-count
    /// checkpoints are used otherwise.
    pub(super) fn has_free_checkpoints(&self) -> bool {
        self.has_free_checkpoints
    }

    /// Takes the latest free checkpoint reached by the batches absorbed so far.
    pub(super) fn take_free_checkpoint(&mut self) -> Option<FreeCheckpoint> {
        self.free.take()
    }

    /// Adds body bytes; full batches go to the blocking side.
    pub(super) async fn push(&mut self, mut bytes: &[u8]) -> Result<(), TusError> {
        while !bytes.is_empty() {
            let take = (BATCH - self.filling.len()).min(bytes.len());
            self.filling.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.filling.len() == BATCH {
                self.dispatch().await?;
            }
        }
        Ok(())
    }

    /// Absorbs everything pushed so far and returns the idle pipeline state.
    async fn drain(&mut self) -> Result<&mut Ingest, TusError> {
        self.dispatch().await?;
        self.settle().await?;
        self.ingest
            .as_mut()
            .ok_or_else(|| TusError::Storage("pipeline lost".into()))
    }

    /// Runs a blocking step on the drained pipeline state.
    pub(super) async fn run<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&mut Ingest) -> Result<T, IngestError> + Send + 'static,
    ) -> Result<T, TusError> {
        self.drain().await?;
        let mut ingest = self
            .ingest
            .take()
            .ok_or_else(|| TusError::Storage("pipeline lost".into()))?;
        let (ingest, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut ingest);
            (ingest, result)
        })
        .await
        .map_err(|e| TusError::Storage(e.to_string()))?;
        self.ingest = Some(ingest);
        Ok(result?)
    }
}
