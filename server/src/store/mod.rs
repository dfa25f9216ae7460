//! Object storage: where the sealed segments of each file live.
//!
//! The trait is what Ferry needs of a store, not a mirror of S3: append sealed bytes at a known
//! durable position, make them durable, read any range back, delete. Its methods block; the
//! upload and download pipelines call them from blocking threads.

use std::ops::Range;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;

pub mod disk;
pub mod s3;

/// Failures of a store. Every variant is retryable by the client unless stated.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (never written, or deleted).
    #[error("object not found")]
    NotFound,
    /// The object is shorter than the range asked for: it was damaged or truncated.
    #[error("object shorter than expected")]
    Truncated,
    /// I/O with the backing store failed.
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The remote store (S3) refused or could not be reached; the message says which request.
    #[error("{0}")]
    Remote(String),
    /// The store's saved state for an upload does not match the upload (not retryable).
    #[error("object store state: {0}")]
    State(String),
    /// The store URL is not one this build understands (not retryable).
    #[error("unsupported store {0:?} (this build supports file://DIR and s3://BUCKET?region=…)")]
    Unsupported(String),
    /// The configured S3 store cannot be used: a malformed URL, or a region outside the
    /// EEA (not retryable).
    #[error(transparent)]
    S3Config(#[from] s3::S3ConfigError),
}

impl StoreError {
    /// A fixed word for the kind of failure, for metrics (never a message, which may name an
    /// object or a path).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound => "not_found",
            StoreError::Truncated => "truncated",
            StoreError::Io(_) => "io",
            StoreError::Remote(_) => "remote",
            StoreError::State(_) => "state",
            StoreError::Unsupported(_) => "unsupported",
            StoreError::S3Config(_) => "s3_config",
        }
    }
}

/// The store's own resumable state for an unfinished object, committed with the offset it
/// belongs to (`uploads.store_state`); `None` for stores whose object is its own state.
pub type StoreState = Option<Vec<u8>>;

/// Where a writer picks up an object.
#[derive(Debug, Clone, Copy)]
pub struct WriteFrom<'a> {
    /// Stored bytes known durable (whole segments); anything beyond is overwritten.
    pub stored_offset: u64,
    /// The largest plaintext length the upload may reach (its length, or the maximum under
    /// deferred length): fixes the S3 part size at the first write.
    pub max_plaintext_len: u64,
    /// The state the last commit recorded, if any.
    pub state: Option<&'a [u8]>,
}

/// A place to keep encrypted objects.
pub trait ObjectStore: Send + Sync + 'static {
    /// Opens the object of `file` to continue writing where the last commit left it.
    ///
    /// # Errors
    /// `Io`/`Remote` if the object cannot be created or opened, `State` if the saved state
    /// does not match `from`.
    fn open_writer(
        &self,
        file: Uuid,
        from: WriteFrom<'_>,
    ) -> Result<Box<dyn ObjectWriter>, StoreError>;

    /// Opens the object of `file` for ranged reads; `expected` is the stored byte range the
    /// reader will be asked for, in order (a hint: S3 fetches it with one request).
    ///
    /// # Errors
    /// `NotFound` if there is no such object, `Io`/`Remote` otherwise.
    fn open_reader(
        &self,
        file: Uuid,
        expected: Range<u64>,
    ) -> Result<Box<dyn ObjectReader>, StoreError>;

    /// Deletes the object of `file` and anything an unfinished upload left; deleting a
    /// missing object succeeds.
    ///
    /// # Errors
    /// `Io`/`Remote` if the store refuses.
    fn delete(&self, file: Uuid) -> Result<(), StoreError>;

    /// Drops what the store kept so the unfinished upload of `file` could be resumed (S3:
    /// its pending pieces), once the database has recorded the upload complete — never
    /// earlier: if that commit fails, the client's retry resumes from the last committed
    /// state, which names them. Best effort; [`ObjectStore::delete`] removes anything left.
    fn forget_upload_state(&self, _file: Uuid) {}

    /// The largest plaintext length one object may hold (S3: 10,000 parts of at most 5 GiB).
    fn max_plaintext_len(&self) -> u64 {
        u64::MAX
    }

    /// Plaintext bytes per part for an upload that may reach `max_plaintext_len`, for stores
    /// that write in parts: a client whose PATCHes carry whole parts never causes a pending
    /// piece (advertised as `Ferry-Part-Size`).
    fn part_plaintext_len(&self, _max_plaintext_len: u64) -> Option<u64> {
        None
    }
}

/// Sequential writer of one object.
pub trait ObjectWriter: Send {
    /// Appends sealed bytes at the current position.
    ///
    /// # Errors
    /// `Io`/`Remote` on failure; the bytes may or may not be there, but they are not durable.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError>;

    /// Makes every appended byte durable and returns the state to commit with them; only
    /// after it returns may an offset be acknowledged.
    ///
    /// # Errors
    /// `Io`/`Remote` if durability cannot be guaranteed.
    fn sync(&mut self) -> Result<StoreState, StoreError>;

    /// A handle that makes durable, from another thread, every byte appended so far, so a
    /// checkpoint's sync can overlap with further appends.
    ///
    /// # Errors
    /// `Io`/`Remote` if the handle cannot be made.
    fn syncer(&mut self) -> Result<Box<dyn ObjectSyncer>, StoreError>;

    /// Ends the object at the current position (dropping anything a crashed writer left
    /// beyond it) and makes it durable and readable. Keeps what the last committed state
    /// names (see [`ObjectStore::forget_upload_state`]). Finishing an object that
    /// [`ObjectWriter::completed_len`] reports complete succeeds without writing.
    ///
    /// # Errors
    /// `Io`/`Remote` on failure; the object is then not complete.
    fn finish(&mut self) -> Result<(), StoreError>;

    /// Waits for whatever this writer still does in the background (S3: part uploads),
    /// ignoring the outcome. Called before the upload's lock is released, so that nothing of
    /// a request that failed can land after a newer request's writes.
    fn quiesce(&mut self) {}

    /// `Some(stored length)` when an earlier attempt already completed this object in the
    /// store although the database never recorded it (the commit after the store's failed),
    /// and the store cannot take it apart again (a completed S3 multipart upload). The
    /// caller then checks the bytes sent again against the object instead of appending them;
    /// the writer's syncs return a state that resumes the same way.
    fn completed_len(&self) -> Option<u64> {
        None
    }

    /// Every how many segments a long write commits a checkpoint: the store's own rhythm
    /// (S3: each part boundary, where the part upload is the sync and costs nothing extra),
    /// or [`CHECKPOINT_SEGMENTS`] where any moment costs the same.
    fn checkpoint_every(&self) -> u64;
}

/// Segments (32 MiB of plaintext) between a long write's checkpoints where the store has no
/// rhythm of its own: often enough that a crash loses little, rarely enough that the syncs
/// cost nothing measurable.
pub const CHECKPOINT_SEGMENTS: u64 = 512;

/// Makes an object's appended bytes durable (see [`ObjectWriter::syncer`]).
pub trait ObjectSyncer: Send {
    /// Returns, once every byte appended before the syncer was made is durable, the state
    /// to commit with them.
    ///
    /// # Errors
    /// `Io`/`Remote` if durability cannot be guaranteed.
    fn sync(self: Box<Self>) -> Result<StoreState, StoreError>;
}

/// Ranged reader of one object.
pub trait ObjectReader: Send {
    /// Fills `buf` with the bytes starting at `offset`.
    ///
    /// # Errors
    /// `Truncated` if the object ends before `buf` is full, `NotFound`, `Io`/`Remote` otherwise.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;
}

/// Opens the store named by `config.store`: `file://DIR`, or `s3://BUCKET?region=…` after
/// checking that the region is on the EEA allowlist and that the bucket really is there.
pub async fn open(config: &Config) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let url = config.store.as_str();
    if let Some(dir) = url.strip_prefix("file://") {
        return Ok(Arc::new(disk::DiskStore::open(dir)?));
    }
    if url.starts_with("s3://") {
        let store = s3::connect(config).await?;
        store.check_location().await?;
        match store.is_versioned().await {
            Ok(false) => {}
            Ok(true) => tracing::warn!(
                bucket = %store.location().bucket,
                "the bucket keeps old versions: a deleted file's ciphertext stays until \
                 noncurrent versions expire (run `ferry store lifecycle`; see `ferry store check`)"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the bucket's versioning status"),
        }
        return Ok(Arc::new(store));
    }
    Err(StoreError::Unsupported(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open_error(url: &str, extra: &str) -> String {
        let config = Config::from_sources(|key| match key {
            "FERRY_STORE" => Some(url.to_owned()),
            "FERRY_EEA_REGIONS" => Some(extra.to_owned()),
            "FERRY_DATA_DIR" => Some(std::env::temp_dir().to_string_lossy().into_owned()),
            _ => None,
        });
        match config {
            Err(e) => e.to_string(),
            Ok(config) => match open(&config).await {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            },
        }
    }

    #[tokio::test]
    async fn start_up_refuses_stores_outside_the_eea() {
        let err = open_error("s3://ferry?region=us-east-1", "").await;
        assert!(
            err.contains("\"us-east-1\" is not on the EEA allowlist"),
            "{err}"
        );
        let err = open_error(
            "s3://ferry?region=eu-west-2&endpoint=https://s3.example",
            "",
        )
        .await;
        assert!(err.contains("eu-west-2"), "{err}");
        let err = open_error(
            "s3://ferry?region=garage&endpoint=http://127.0.0.1:3900",
            "",
        )
        .await;
        assert!(err.contains("FERRY_EEA_REGIONS"), "{err}");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_by_name() {
        let err = open_error("gs://ferry", "").await;
        assert!(err.contains("unsupported store \"gs://ferry\""), "{err}");
    }
}
