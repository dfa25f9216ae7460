//! Tenant admins' endpoints under `/api/v1/admin/`: the tenant's policy, its live files and
//! its audit log. Sender keys get 403.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{AppError, ErrorBody};
use super::json::ApiJson;
use crate::admin;
use crate::audit::ExportedEvent;
use crate::auth::Caller;
use crate::branding::Branding;
use crate::policy::Policy;
use crate::state::AppState;

/// Routes for tenant admins.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(get_branding, put_branding))
        .routes(routes!(list_files))
        .routes(routes!(export_audit))
        .routes(routes!(list_deliveries))
}

/// A query string the handler could not read: 400 with the API's error shape.
fn bad_query(rejection: QueryRejection) -> AppError {
    AppError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        rejection.body_text(),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/policy",
    tag = "admin",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's policy", body = Policy),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Policy>, AppError> {
    Ok(Json(admin::tenant_policy(&state, &caller).await?))
}

/// Replaces the tenant's policy; the answer is the policy as stored (domains normalised).
#[utoipa::path(
    put,
    path = "/api/v1/admin/policy",
    tag = "admin",
    security(("api_key" = [])),
    request_body = Policy,
    responses(
        (status = 200, description = "The policy as stored", body = Policy),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a policy (`invalid`), or outside Ferry's limits \
                                      (`invalid_policy`, naming the limit)", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Json<Policy>, AppError> {
    Ok(Json(admin::set_policy(&state, &caller, policy).await?))
}

/// How the tenant appears on its recipients' pages.
#[utoipa::path(
    get,
    path = "/api/v1/admin/branding",
    tag = "admin",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's display name and logo", body = Branding),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn get_branding(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Branding>, AppError> {
    Ok(Json(admin::tenant_branding(&state, &caller).await?))
}

/// Replaces the tenant's display name and logo (`null` removes either).
#[utoipa::path(
    put,
    path = "/api/v1/admin/branding",
    tag = "admin",
    security(("api_key" = [])),
    request_body = Branding,
    responses(
        (status = 200, description = "The branding as stored", body = Branding),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a branding (`invalid`), or a name or logo outside \
                                      the rules (`invalid_branding`, naming the rule)",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn put_branding(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(branding): ApiJson<Branding>,
) -> Result<Json<Branding>, AppError> {
    Ok(Json(admin::set_branding(&state, &caller, &branding).await?))
}

/// A page of the file list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FilesQuery {
    /// Continue after this file id (the previous page's `next_after`).
    after: Option<Uuid>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A live file: who uploaded it, what it is, when it goes.
#[derive(Serialize, ToSchema)]
struct LiveFileView {
    id: Uuid,
    name: String,
    owner_id: Uuid,
    size: u64,
    blake3: String,
    #[serde(with = "time::serde::rfc3339::option")]
    completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// One page of live files.
#[derive(Serialize, ToSchema)]
struct FilesPage {
    files: Vec<LiveFileView>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<Uuid>,
}

/// The tenant's live files: owner (API key), size, hash, and when each is due for destruction.
#[utoipa::path(
    get,
    path = "/api/v1/admin/files",
    tag = "admin",
    security(("api_key" = [])),
    params(FilesQuery),
    responses(
        (status = 200, description = "A page of live files, in id order", body = FilesPage),
        (status = 400, description = "The query string cannot be read", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 422, description = "`limit` outside 1–1000", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn list_files(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FilesQuery>, QueryRejection>,
) -> Result<Json<FilesPage>, AppError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = admin::live_files(&state, &caller, query.after, query.limit).await?;
    Ok(Json(FilesPage {
        files: page
            .files
            .into_iter()
            .map(|f| LiveFileView {
                id: f.id,
                name: f.name,
                owner_id: f.owner_id,
                size: f.size,
                blake3: f.blake3,
                completed_at: f.completed_at,
                expires_at: f.expires_at,
            })
            .collect(),
        next_after: page.next_after,
    }))
}

/// The time window of an audit export.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Events recorded at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    /// Events recorded before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
}

/// The tenant's audit events in chain order, one JSON object per line, streamed page by page.
/// Each line carries its `prev_hash` and `hash`; `ferry audit verify` checks the chain.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    security(("api_key" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Events as JSON lines (one `AuditEvent` per line)",
         body = ExportedEvent, content_type = "application/x-ndjson"),
        (status = 400, description = "`since` or `until` is not an RFC 3339 time",
         body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn export_audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(bad_query)?;
    let mut pages = admin::audit_export(&state, &caller, query.since, query.until).await?;
    let (lines, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        loop {
            let page = match pages.next_page().await {
                Ok(page) if page.is_empty() => return,
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "audit export cut short");
                    let _ = lines.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
            let mut chunk = Vec::new();
            for event in page {
                match serde_json::to_vec(&event) {
                    Ok(line) => {
                        chunk.extend_from_slice(&line);
                        chunk.push(b'\n');
                    }
                    Err(e) => {
                        let _ = lines.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                }
            }
            if lines.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    });
    let mut response = Body::from_stream(ReceiverStream::new(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Which message's deliveries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// The `Message-ID` header, angle brackets included (`<id@host>`).
    message_id: String,
}

/// One recipient of a relayed message, now.
#[derive(Serialize, ToSchema)]
struct RecipientView {
    /// The relay's queue id of the copy.
    queue_id: Uuid,
    recipient: String,
    /// `queued`, `delivered`, `bounced` or `expired` (held past the hold window; the sender
    /// got a report).
    status: String,
    attempts: u32,
}

/// The relay's record of one message.
#[derive(Serialize, ToSchema)]
struct DeliveriesView {
    message_id: String,
    recipients: Vec<RecipientView>,
    /// Every attempt's proof record (`relay.delivery` audit events, chain order): MX, address,
    /// method, TLS version and cipher, certificate SHA-256s and issuer, MTA-STS policy,
    /// SHA-256 of the bytes sent, outcome and the MX's reply.
    attempts: Vec<ExportedEvent>,
}

/// How the relay delivered a message: per recipient its state, and the proof record of every
/// attempt. Empty lists when the tenant relayed no message with this Message-ID.
#[utoipa::path(
    get,
    path = "/api/v1/admin/deliveries",
    tag = "admin",
    security(("api_key" = [])),
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "Recipients and proof records", body = DeliveriesView),
        (status = 400, description = "No `message_id` in the query", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 422, description = "`message_id` empty or longer than 998", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<DeliveriesView>, AppError> {
    let Query(query) = query.map_err(bad_query)?;
    let found = admin::deliveries(&state, &caller, &query.message_id).await?;
    Ok(Json(DeliveriesView {
        message_id: query.message_id,
        recipients: found
            .recipients
            .into_iter()
            .map(|(queue_id, recipient, status, attempts)| RecipientView {
                queue_id,
                recipient,
                status,
                attempts,
            })
            .collect(),
        attempts: found.attempts,
    }))
}
