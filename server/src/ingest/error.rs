//! What can go wrong between a body's bytes and a committed offset, in the pipeline's own
//! terms; the tus protocol maps each to its status.

use crate::crypto::CryptoError;
use crate::db::DbError;
use crate::hash::HashStateError;
use crate::store::StoreError;

/// Failures inside the pipeline; all of them leave the last committed state intact.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Sealing or opening the saved tail failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The saved hash state is unusable.
    #[error(transparent)]
    Hash(#[from] HashStateError),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store already holds this upload complete (an earlier attempt finished it but its
    /// completion was not recorded), and the bytes sent again are not the ones it holds.
    #[error(
        "the bytes sent again from offset {offset} differ from the ones an earlier attempt \
         already stored for this upload"
    )]
    Resent {
        /// Plaintext offset of the first segment that differs.
        offset: u64,
    },
    /// Another writer committed first: the upload is not at the offset this commit started
    /// from (the offset-guarded update refused it).
    #[error("the upload moved on to {expected} while this request wrote from {got}")]
    Moved {
        /// Where the upload is.
        expected: u64,
        /// Where this commit started.
        got: u64,
    },
    /// The database failed to record progress.
    #[error("recording progress failed")]
    Db(#[source] DbError),
    /// A blocking batch or a background checkpoint died, or the pipeline lost its state.
    #[error("pipeline task failed: {0}")]
    Task(String),
}
