//! What can go wrong in a tus request, in domain terms; `http::error` maps each variant to
//! its tus status code.

use crate::crypto::CryptoError;
use crate::db::DbError;
use crate::store::StoreError;

use super::metadata::MetadataError;
use crate::ingest::IngestError;

/// Why a tus request failed; the HTTP layer maps each to its tus status code.
#[derive(Debug, thiserror::Error)]
pub enum TusError {
    /// Unknown upload, or another tenant's (404).
    #[error("upload not found")]
    NotFound,
    /// Terminated or abandoned upload (410).
    #[error("upload is gone")]
    Gone,
    /// `Upload-Offset` does not match the stored offset (409).
    #[error("Upload-Offset is {got}, the upload is at {expected}")]
    OffsetMismatch {
        /// The stored offset.
        expected: u64,
        /// What the client sent.
        got: u64,
    },
    /// More bytes than the upload's length or the server's maximum (413).
    #[error("{0}")]
    TooLarge(String),
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// Another request holds the upload and did not let go (423).
    #[error("another request is writing to this upload; retry shortly")]
    Locked,
    /// The body does not match `Upload-Checksum` (460); nothing was stored.
    #[error("the body does not match Upload-Checksum; nothing was stored")]
    ChecksumMismatch,
    /// The client's body ended early; what arrived before was stored.
    #[error("the request body was interrupted: {0}")]
    Interrupted(String),
    /// A stored key or tail failed to decrypt: data was tampered with.
    #[error("stored upload state failed authentication")]
    Integrity(#[source] CryptoError),
    /// The database failed; the last committed state is intact (503: retry).
    #[error("the database failed")]
    Db(#[source] DbError),
    /// Writing the upload failed (the store, or the pipeline's work); the last committed
    /// state is intact (503: retry).
    #[error("writing the upload failed")]
    Ingest(#[source] IngestError),
    /// The upload's key could not be used for a reason other than tampering (503: retry).
    #[error("the upload's key could not be used")]
    Keys(#[source] CryptoError),
    /// The task running the request died (503: retry).
    #[error("the request's task failed")]
    Task(#[source] tokio::task::JoinError),
    /// PostgreSQL ended the session that held the upload's writer lock, so another instance
    /// may hold it now: nothing more is written or committed (503: resume from HEAD).
    #[error(
        "this server lost its hold on the upload (its database session ended); resume from \
         the offset HEAD reports"
    )]
    HoldLost,
    /// The upload's saved state cannot be used, and retrying will not change that (500).
    #[error("the upload's stored state is unusable: {0}")]
    Broken(String),
    /// The object of a terminated upload could not be deleted yet (the expiry job will).
    #[error("the upload's object could not be deleted yet")]
    Destroy(#[from] crate::objects::DestroyError),
}

impl From<DbError> for TusError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => TusError::NotFound,
            other => TusError::Db(other),
        }
    }
}

impl From<IngestError> for TusError {
    fn from(e: IngestError) -> Self {
        if let IngestError::Store(store) = &e {
            crate::telemetry::store_error(store);
        }
        match e {
            IngestError::Crypto(c @ CryptoError::Authentication) => TusError::Integrity(c),
            IngestError::Store(StoreError::State(why)) => TusError::Broken(why),
            IngestError::Hash(e) => TusError::Broken(e.to_string()),
            resent @ IngestError::Resent { .. } => TusError::BadRequest(resent.to_string()),
            IngestError::Moved { expected, got } => TusError::OffsetMismatch { expected, got },
            IngestError::Db(db) => db.into(),
            other => TusError::Ingest(other),
        }
    }
}

impl From<CryptoError> for TusError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Authentication => TusError::Integrity(e),
            other => TusError::Keys(other),
        }
    }
}

impl From<MetadataError> for TusError {
    fn from(e: MetadataError) -> Self {
        TusError::BadRequest(e.to_string())
    }
}
