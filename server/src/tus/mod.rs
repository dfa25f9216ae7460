//! The tus 1.0 protocol's domain side: creating uploads, writing PATCH bodies through the
//! encryption and hashing pipeline, terminating. The HTTP layer parses headers and calls in.

pub mod checksum;
mod error;
pub mod metadata;
mod upload;
mod write;

pub use error::TusError;
pub use upload::{
    CreateRequest, create, max_upload_len, resumable_upload, terminate, upload_expiry,
    upload_status,
};
pub use write::{PatchOutcome, PatchRequest, write};

/// The protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Extensions advertised by OPTIONS.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
pub use crate::policy::UNFINISHED_TTL;
