//! The one place where failures become HTTP responses.
//!
//! Policy: every error body is JSON `{"error": code, "message": text}`. Client errors say
//! what to fix. Server errors (5xx) are logged here with their cause and answered with a
//! generic message, so internals (paths, SQL, keys) never reach a client.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::addin::ManifestError;
use crate::admin::AdminError;
use crate::auth::Forbidden;
use crate::auth::api_keys::ApiKeyError;
use crate::auth::bearer::AuthError;
use crate::auth::people::SignInError;
use crate::db::DbError;
use crate::db::shares::ShareFilesError;
use crate::download::DownloadError;
use crate::ratelimit::BudgetSpent;
use crate::shares::ShareError;
use crate::tus::TusError;

/// The body of every error response, as clients parse it and as the OpenAPI document
/// describes it (`components/schemas/ErrorBody`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found` or `invalid_policy`.
    #[schema(example = "not_found")]
    pub error: String,
    /// What went wrong, for people; for client errors, what to fix.
    #[schema(example = "not found")]
    pub message: String,
}

/// A failed request: status, machine-readable code, human message, extra headers.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl AppError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header (e.g. `Content-Range` on 416).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 with a message saying what is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no or wrong API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key or Microsoft 365 sign-in is required (Authorization: Bearer …)",
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 404, saying nothing about whether the thing exists for someone else.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    /// 500 for a failure whose cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 503 for a storage failure worth retrying; the cause is logged.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "storage unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is unavailable; retry later",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A deployment that cannot have a manifest has none (404), with the reason for its operator.
impl From<ManifestError> for AppError {
    fn from(e: ManifestError) -> Self {
        AppError::new(StatusCode::NOT_FOUND, "manifest_unavailable", e.to_string())
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => AppError::not_found(),
            DbError::Conflict(what) => AppError::new(StatusCode::CONFLICT, "conflict", what),
            other => AppError::unavailable(other),
        }
    }
}

impl From<TusError> for AppError {
    fn from(e: TusError) -> Self {
        let message = e.to_string();
        match e {
            TusError::NotFound => AppError::not_found(),
            TusError::Gone => AppError::new(StatusCode::GONE, "gone", message),
            TusError::OffsetMismatch { .. } => {
                AppError::new(StatusCode::CONFLICT, "offset_mismatch", message)
            }
            TusError::TooLarge(_) => {
                AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            TusError::BadRequest(_) => AppError::bad_request(message),
            TusError::Locked => AppError::new(StatusCode::LOCKED, "locked", message),
            TusError::ChecksumMismatch => {
                AppError::new(checksum_mismatch(), "checksum_mismatch", message)
            }
            TusError::Interrupted(_) => AppError::bad_request(message),
            TusError::Integrity(cause) => {
                AppError::internal(format!("upload state failed authentication: {cause}"))
            }
            TusError::Db(_)
            | TusError::Ingest(_)
            | TusError::Keys(_)
            | TusError::Task(_)
            | TusError::HoldLost => AppError::unavailable(error_chain(&e)),
            TusError::Broken(cause) => AppError::internal(cause),
            TusError::Destroy(cause) => AppError::unavailable(error_chain(&cause)),
        }
    }
}

/// tus's own status for a checksum mismatch.
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

impl From<DownloadError> for AppError {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::NotFound => AppError::not_found(),
            DownloadError::Gone { .. } => AppError::new(StatusCode::GONE, "gone", e.to_string()),
            DownloadError::LimitReached => {
                AppError::new(StatusCode::GONE, "download_limit_reached", e.to_string())
            }
            DownloadError::Integrity => {
                AppError::internal("a stored object failed its integrity check")
            }
            DownloadError::Db(_)
            | DownloadError::Store(_)
            | DownloadError::Keys(_)
            | DownloadError::Task(_) => AppError::unavailable(error_chain(&e)),
        }
    }
}

impl From<BudgetSpent> for AppError {
    fn from(e: BudgetSpent) -> Self {
        let seconds = e.retry_after_secs();
        AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("too many failed link lookups from this address; retry in {seconds} s"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }
}

impl From<ShareFilesError> for AppError {
    fn from(e: ShareFilesError) -> Self {
        match e {
            // 404 as for any other tenant's (or no) resource: says nothing about others' files.
            ShareFilesError::NotFound(_) => {
                AppError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ShareFilesError::NotComplete(_) => {
                AppError::new(StatusCode::CONFLICT, "file_incomplete", e.to_string())
            }
            ShareFilesError::Db(db) => db.into(),
        }
    }
}

impl From<ShareError> for AppError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::Invalid(message) => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            ShareError::Files(files) => files.into(),
            ShareError::Random => AppError::internal("random generator failed"),
            ShareError::Db(e) => e.into(),
            ShareError::Crypto(e) => AppError::internal(e),
            ShareError::NotARecipient(_) => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_recipient",
                e.to_string(),
            ),
            ShareError::Inactive(_) => {
                AppError::new(StatusCode::CONFLICT, "share_inactive", e.to_string())
            }
            ShareError::Unresolved(e) => AppError::internal(e),
        }
    }
}

impl From<Forbidden> for AppError {
    fn from(_: Forbidden) -> Self {
        AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs an admin key",
        )
    }
}

impl From<AdminError> for AppError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Forbidden(forbidden) => forbidden.into(),
            AdminError::Invalid(message) => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            AdminError::InvalidPolicy(invalid) => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                invalid.0,
            ),
            AdminError::InvalidBranding(invalid) => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_branding",
                invalid.0,
            ),
            AdminError::Db(db) => db.into(),
            AdminError::Crypto(crypto) => AppError::internal(crypto),
        }
    }
}

impl From<ApiKeyError> for AppError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Unauthorized => AppError::unauthorized(),
            ApiKeyError::Db(db) => db.into(),
            other => AppError::internal(error_chain(&other)),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::ApiKey(e) => e.into(),
            AuthError::SignIn(e) => e.into(),
        }
    }
}

impl From<SignInError> for AppError {
    fn from(e: SignInError) -> Self {
        let message = e.to_string();
        match e {
            SignInError::NotConfigured | SignInError::Refused(_) => {
                AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                )
            }
            SignInError::NotLinked => {
                AppError::new(StatusCode::UNAUTHORIZED, "entra_tenant_not_linked", message)
            }
            SignInError::NotDirectoryAdmin => {
                AppError::new(StatusCode::FORBIDDEN, "not_directory_admin", message)
            }
            SignInError::Keys(reason) => {
                tracing::warn!(%reason, "Entra sign-in unavailable");
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            SignInError::Forbidden(forbidden) => forbidden.into(),
            SignInError::Db(db) => db.into(),
            SignInError::Crypto(_) => AppError::internal(error_chain(&e)),
        }
    }
}

/// An error with its causes, `outer: inner: …`, for the log (never for a client).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestError;
    use crate::store::StoreError;

    /// A store state that cannot be used will not get better by retrying: 500, not the 503
    /// that tus clients retry forever. Passing failures of the store stay 503.
    #[test]
    fn an_unusable_store_state_is_500_and_a_store_outage_503() {
        let broken = TusError::from(IngestError::Store(StoreError::State(
            "the saved S3 state covers 10 stored bytes, the offset 20".into(),
        )));
        assert_eq!(
            AppError::from(broken).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let outage = TusError::from(IngestError::Store(StoreError::Remote(
            "UploadPart 3: connection refused".into(),
        )));
        assert_eq!(
            AppError::from(outage).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let resent = TusError::from(IngestError::Resent { offset: 65_536 });
        assert_eq!(AppError::from(resent).status, StatusCode::BAD_REQUEST);
    }
}
