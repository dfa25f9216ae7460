//! Why a download cannot be served, with the cause kept (not flattened into text) for the log.

use crate::crypto::CryptoError;
use crate::db::DbError;
use crate::store::StoreError;
use crate::telemetry;

/// Why a download cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No such link or file (404; says nothing about whether a token ever existed).
    #[error("not found")]
    NotFound,
    /// The link expired (`revoked` false) or was revoked (410).
    #[error("this link has expired or was revoked")]
    Gone {
        /// Whether its sender withdrew it (else it expired).
        revoked: bool,
    },
    /// The file was downloaded through this link as often as the tenant's policy allows (410).
    #[error("this file was downloaded as many times as allowed")]
    LimitReached,
    /// Stored bytes failed authentication: never served (500, logged loudly).
    #[error("stored data failed its integrity check")]
    Integrity,
    /// The database failed (503).
    #[error("database failure")]
    Db(#[source] DbError),
    /// The store failed (503).
    #[error("store failure")]
    Store(#[source] StoreError),
    /// A key could not be derived or unwrapped (503: the data is not known to be damaged).
    #[error("key failure")]
    Keys(#[source] CryptoError),
    /// A blocking read task died or its channel closed (503).
    #[error("download task failed: {0}")]
    Task(String),
}

impl From<DbError> for DownloadError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => DownloadError::NotFound,
            other => DownloadError::Db(other),
        }
    }
}

impl From<CryptoError> for DownloadError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Authentication | CryptoError::Malformed(_) => DownloadError::Integrity,
            other => DownloadError::Keys(other),
        }
    }
}

impl From<StoreError> for DownloadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Truncated => {
                telemetry::store_error(&e);
                DownloadError::Integrity
            }
            other => {
                telemetry::store_error(&other);
                DownloadError::Store(other)
            }
        }
    }
}
