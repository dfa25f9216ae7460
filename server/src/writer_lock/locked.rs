//! The one refusal of the writer lock, shared by both layers.

/// The holder did not release the upload in time.
#[derive(Debug, thiserror::Error)]
#[error("another request is writing to this upload")]
pub struct Locked;
