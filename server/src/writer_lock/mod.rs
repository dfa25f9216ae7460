//! One writer per upload (not a lease: nothing expires by time). In this process, a mutex per
//! upload with takeover ([`local`]); across instances on PostgreSQL, a session-level advisory
//! lock per upload ([`postgres`]). The tus domain takes it before writing or terminating.

pub mod local;
mod locked;
pub mod postgres;

pub use local::{TAKEOVER_WAIT, UploadLocks, WriterGuard};
pub use locked::Locked;
