//! Ids in URL paths. Taken as text and parsed here rather than by a `Path<Uuid>` extractor,
//! so each handler decides when: tus checks `Tus-Resumable` first (412 before 404), the
//! recipients' file route refuses a malformed id before looking up the link.

use uuid::Uuid;

use super::error::AppError;

/// The id in a path segment; anything that is not a UUID names nothing (404).
pub fn path_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found())
}
