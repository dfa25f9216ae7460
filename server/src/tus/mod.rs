//! The tus 1.0 protocol's domain side: creating uploads, writing PATCH bodies through the
//! encryption and hashing pipeline, terminating. The HTTP layer parses headers and calls in.

pub mod checksum;
mod commit;
mod error;
pub mod ingest;
pub mod lease;
pub mod locks;
pub mod metadata;
mod pipeline;
mod upload;

pub use upload::{
    CreateRequest, PatchOutcome, PatchRequest, TusError, create, max_upload_len, terminate,
    upload_expiry, write,
};

/// The protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Extensions advertised by OPTIONS.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
/// How long an unfinished upload lives after its last byte.
pub const UNFINISHED_TTL: time::Duration = time::Duration::hours(24);
