//! The upload pipeline: plaintext in, BLAKE3 tree state and sealed segments out, appended to
//! the store ([`sealing`]); batches handed to blocking threads two deep ([`pipeline`]); and
//! progress committed, store first and database second ([`commit`]). It knows nothing of the
//! tus protocol: the protocol drives it and maps its [`IngestError`].

pub mod commit;
mod error;
pub mod pipeline;
pub mod sealing;

pub use commit::Committer;
pub use error::IngestError;
pub use pipeline::Pipeline;
pub use sealing::{Ingest, PendingCheckpoint};
