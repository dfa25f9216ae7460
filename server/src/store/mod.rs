//! Object storage: where the sealed segments of each file live.
//!
//! The trait is what Ferry needs of a store, not a mirror of S3: append sealed bytes at a known
//! durable position, make them durable, read any range back, delete. Its methods block; the
//! upload and download pipelines call them from blocking threads.

use std::sync::Arc;

use uuid::Uuid;

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
    /// The store URL is not one this build understands (not retryable).
    #[error("unsupported store {0:?} (this build supports file://DIR)")]
    Unsupported(String),
    /// An `s3://` URL is malformed (not retryable).
    #[error(transparent)]
    S3Url(#[from] s3::S3UrlError),
    /// The store would keep data outside the EEA (not retryable).
    #[error(transparent)]
    Residency(#[from] s3::residency::ResidencyError),
}

/// A place to keep encrypted objects.
pub trait ObjectStore: Send + Sync + 'static {
    /// Opens the object of `file` to continue writing at `stored_offset`, which must be a
    /// position whose preceding bytes are durable; anything already beyond it is overwritten.
    ///
    /// # Errors
    /// `Io` if the object cannot be created or opened.
    fn open_writer(
        &self,
        file: Uuid,
        stored_offset: u64,
    ) -> Result<Box<dyn ObjectWriter>, StoreError>;

    /// Opens the object of `file` for ranged reads.
    ///
    /// # Errors
    /// `NotFound` if there is no such object, `Io` otherwise.
    fn open_reader(&self, file: Uuid) -> Result<Box<dyn ObjectReader>, StoreError>;

    /// Deletes the object of `file`; deleting a missing object succeeds.
    ///
    /// # Errors
    /// `Io` if the store refuses.
    fn delete(&self, file: Uuid) -> Result<(), StoreError>;
}

/// Sequential writer of one object.
pub trait ObjectWriter: Send {
    /// Appends sealed bytes at the current position.
    ///
    /// # Errors
    /// `Io` on write failure; the bytes may or may not be there, but they are not durable.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError>;

    /// Makes every appended byte durable; only after it returns may an offset be acknowledged.
    ///
    /// # Errors
    /// `Io` if durability cannot be guaranteed.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// A handle that makes durable, from another thread, at least every byte appended so
    /// far, so a checkpoint's sync can overlap with further appends.
    ///
    /// # Errors
    /// `Io` if the handle cannot be made.
    fn syncer(&self) -> Result<Box<dyn ObjectSyncer>, StoreError>;

    /// Ends the object at the current position (dropping anything a crashed writer left
    /// beyond it) and makes it durable.
    ///
    /// # Errors
    /// `Io` on failure; the object is then not complete.
    fn finish(&mut self) -> Result<(), StoreError>;
}

/// Makes an object's appended bytes durable (see [`ObjectWriter::syncer`]).
pub trait ObjectSyncer: Send {
    /// Returns once every byte appended before the syncer was made is durable.
    ///
    /// # Errors
    /// `Io` if durability cannot be guaranteed.
    fn sync(&self) -> Result<(), StoreError>;
}

/// Ranged reader of one object.
pub trait ObjectReader: Send {
    /// Fills `buf` with the bytes starting at `offset`.
    ///
    /// # Errors
    /// `Truncated` if the object ends before `buf` is full, `Io` otherwise.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;
}

/// Opens the store named by a `FERRY_STORE` URL. `eea_regions` are the operator's additions
/// to the EEA allowlist (`FERRY_EEA_REGIONS`).
pub fn open(url: &str, eea_regions: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if let Some(dir) = url.strip_prefix("file://") {
        return Ok(Arc::new(disk::DiskStore::open(dir)?));
    }
    if url.starts_with("s3://") {
        let location = s3::S3Location::parse(url)?;
        let allowlist = s3::residency::EeaAllowlist::new(eea_regions);
        if !allowlist.extra().is_empty() {
            tracing::warn!(
                regions = ?allowlist.extra(),
                "FERRY_EEA_REGIONS: the operator declares these store regions to be inside the EEA"
            );
        }
        allowlist.check_region(&location.region)?;
        // The location is valid and inside the EEA, but the multipart writer is not built yet.
        return Err(StoreError::Unsupported(format!(
            "{url} (valid and inside the EEA, but this build has no S3 writer yet: issue 3)"
        )));
    }
    Err(StoreError::Unsupported(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_error(url: &str, extra: &str) -> String {
        match open(url, extra) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn start_up_refuses_stores_outside_the_eea() {
        let err = open_error("s3://ferry?region=us-east-1", "");
        assert!(
            err.contains("\"us-east-1\" is not on the EEA allowlist"),
            "{err}"
        );
        let err = open_error(
            "s3://ferry?region=eu-west-2&endpoint=https://s3.example",
            "",
        );
        assert!(err.contains("eu-west-2"), "{err}");
        let err = open_error(
            "s3://ferry?region=garage&endpoint=http://127.0.0.1:3900",
            "",
        );
        assert!(err.contains("FERRY_EEA_REGIONS"), "{err}");
    }

    #[test]
    fn an_eea_s3_store_is_recognised_but_not_yet_writable() {
        let err = open_error(
            "s3://ferry?region=garage&endpoint=http://127.0.0.1:3900",
            "garage",
        );
        assert!(err.contains("valid and inside the EEA"), "{err}");
        let err = open_error("gs://ferry", "");
        assert!(err.contains("unsupported store"), "{err}");
    }
}
