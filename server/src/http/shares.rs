//! Senders' share endpoints under `/api/v1/shares`.

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{AppError, ErrorBody};
use super::json::ApiJson;
use super::path::path_id;
use crate::auth::Caller;
use crate::policy::Policy;
use crate::shares::{self, CreateShare, links};
use crate::state::AppState;

/// Routes for senders' shares.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_share))
        .routes(routes!(get_share, revoke_share))
        .routes(routes!(create_link))
        .routes(routes!(revoke_link))
        .routes(routes!(sending_policy))
}

/// The tenant's policy as it applies to the caller's shares and uploads (any role; the
/// Outlook add-in offers the retention choices it allows).
#[utoipa::path(
    get,
    path = "/api/v1/policy",
    tag = "shares",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's policy", body = Policy),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn sending_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Policy>, AppError> {
    Ok(Json(shares::sending_policy(&state, &caller).await?))
}

/// A new share: which complete files, for whom, for how long. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateShareBody {
    /// Ids of complete files of the caller's tenant (duplicates count once).
    #[schema(min_items = 1, max_items = 1000)]
    files: Vec<Uuid>,
    /// E-mail addresses, inside the tenant policy's recipient domains if it lists any.
    #[schema(min_items = 1, max_items = 1000, example = json!(["dr.x@klinik.de"]))]
    recipients: Vec<String>,
    /// Days until the link expires: the policy's default if absent, never more than its
    /// maximum (`expires_at` in the answer says the real date).
    #[schema(minimum = 1)]
    retention_days: Option<i64>,
    /// Shown on the recipients' page; at most 2000 bytes of UTF-8.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// A shared file as the sender and the recipients see it.
#[derive(Serialize, ToSchema)]
struct FileView {
    /// The file id.
    id: Uuid,
    /// Its name.
    name: String,
    /// Its size in bytes.
    size: u64,
    /// Hex BLAKE3 of its bytes (also the download's `ETag`).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    blake3: String,
}

/// A created share. The link carries the token and is shown only now.
#[derive(Serialize, ToSchema)]
struct ShareView {
    /// The share id, for revoking it.
    id: Uuid,
    /// The recipients' link, `<public URL>/d/<token>`.
    url: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// True when `expires_at` is earlier than the retention asked for: a file reaches the end
    /// of its life first (the tenant's maximum retention counts from its upload's completion,
    /// and re-sharing does not extend it).
    expiry_capped: bool,
    /// The shared files.
    files: Vec<FileView>,
}

/// Shares complete files with recipients through one tokenized link.
#[utoipa::path(
    post,
    path = "/api/v1/shares",
    tag = "shares",
    security(("api_key" = [])),
    request_body = CreateShareBody,
    responses(
        (status = 201, description = "The share and its link", body = ShareView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "A file this tenant does not have (`not_found`)",
         body = ErrorBody),
        (status = 409, description = "A file is not complete yet (`file_incomplete`)",
         body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a share request (`invalid`: a bad address, a \
                                      recipient outside the allowed domains, limits)",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn create_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateShareBody>,
) -> Result<(StatusCode, Json<ShareView>), AppError> {
    let created = shares::create_share(
        &state,
        &caller,
        CreateShare {
            files: body.files,
            recipients: body.recipients,
            retention_days: body.retention_days,
            note: body.note,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareView {
            id: created.id,
            url: created.url,
            expires_at: created.expires_at,
            expiry_capped: created.expiry_capped,
            files: created
                .files
                .into_iter()
                .map(|f| FileView {
                    id: f.id,
                    name: f.name,
                    size: f.size,
                    blake3: f.blake3,
                })
                .collect(),
        }),
    ))
}

/// A file of a share as its sender sees it.
#[derive(Serialize, ToSchema)]
struct SharedFileView {
    id: Uuid,
    name: String,
    size: u64,
    /// `false` once the file is destroyed.
    available: bool,
    /// Responses that served the file's first byte through this share.
    downloads: u64,
}

/// A share as its sender sees it.
#[derive(Serialize, ToSchema)]
struct ShareStatus {
    id: Uuid,
    /// `active`, `expired` or `revoked`.
    #[schema(value_type = String, pattern = "^(active|expired|revoked)$")]
    state: &'static str,
    created_by: Uuid,
    note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    recipients: Vec<String>,
    files: Vec<SharedFileView>,
    /// The recipients' own links (never their tokens), oldest first.
    links: Vec<LinkStatus>,
}

/// A recipient's own link as the share's sender sees it.
#[derive(Serialize, ToSchema)]
struct LinkStatus {
    /// The link id, for revoking it.
    id: Uuid,
    /// Whom it was minted for.
    recipient: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

/// The sender's view of a share: its state, recipients and per-file download counts. The
/// link itself is never shown again (only its hash is kept).
#[utoipa::path(
    get,
    path = "/api/v1/shares/{id}",
    tag = "shares",
    security(("api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "The share id")),
    responses(
        (status = 200, description = "The share", body = ShareStatus),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No share with this id that this key may read",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn get_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ShareStatus>, AppError> {
    let report = shares::share_status(&state, &caller, path_id(&id)?).await?;
    let share = report.details;
    Ok(Json(ShareStatus {
        id: share.id,
        state: report.state.as_str(),
        created_by: share.created_by,
        note: share.note,
        created_at: share.created_at,
        expires_at: share.expires_at,
        revoked_at: share.revoked_at,
        recipients: share.recipients,
        files: share
            .files
            .into_iter()
            .map(|f| SharedFileView {
                id: f.id,
                name: f.name,
                size: f.size,
                available: f.available,
                downloads: f.downloads,
            })
            .collect(),
        links: report
            .links
            .into_iter()
            .map(|l| LinkStatus {
                id: l.id,
                recipient: l.recipient,
                created_at: l.created_at,
                revoked_at: l.revoked_at,
            })
            .collect(),
    }))
}

/// Revokes a share at once: its links answer 410 from now on. Admins revoke any share of their
/// tenant, senders their own; anything else is 404.
#[utoipa::path(
    delete,
    path = "/api/v1/shares/{id}",
    tag = "shares",
    security(("api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "The share id")),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No share with this id that this key may revoke",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn revoke_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    shares::revoke_share(&state, &caller, path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom a new link is for. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateLinkBody {
    /// One of the share's recipients (compared case-insensitively).
    #[schema(max_length = 254, example = "dr.x@klinik.de")]
    recipient: String,
}

/// A recipient's own link, just minted; `url` carries its token and is shown only now.
#[derive(Serialize, ToSchema)]
struct RecipientLinkView {
    /// The link id, for revoking it.
    id: Uuid,
    /// Whom it is for.
    recipient: String,
    /// `<public URL>/d/<token>`: the same page and files as the share's link; downloads
    /// through it name this recipient in the audit log.
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// Mints a link of their own for one of the share's recipients: downloads through it are
/// attributed to them, and it is revoked alone. The relay mints these itself for each
/// recipient's copy of a message; senders mint their own shares' links.
#[utoipa::path(
    post,
    path = "/api/v1/shares/{id}/links",
    tag = "shares",
    security(("api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "The share id")),
    request_body = CreateLinkBody,
    responses(
        (status = 201, description = "The link", body = RecipientLinkView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No share with this id that this key created",
         body = ErrorBody),
        (status = 409, description = "The share is revoked or expired (`share_inactive`), or \
                                      has 10,000 links already (`conflict`)",
         body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not one of the share's recipients (`not_a_recipient`)",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn create_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateLinkBody>,
) -> Result<(StatusCode, Json<RecipientLinkView>), AppError> {
    let link = links::mint_recipient_link(&state, &caller, path_id(&id)?, &body.recipient).await?;
    Ok((
        StatusCode::CREATED,
        Json(RecipientLinkView {
            id: link.id,
            recipient: link.recipient,
            url: link.url,
            created_at: link.created_at,
        }),
    ))
}

/// Revokes one recipient's link: it answers 410 from now on; the share and its other links
/// keep working. Admins revoke any link of their tenant, senders those of their own shares.
#[utoipa::path(
    delete,
    path = "/api/v1/shares/{id}/links/{link_id}",
    tag = "shares",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The share id"),
        ("link_id" = String, Path, format = Uuid, description = "The link id"),
    ),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No such link of a share this key may revoke",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn revoke_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    links::revoke_recipient_link(&state, &caller, path_id(&id)?, path_id(&link_id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
