//! `/api/v1/admin/entra-links`: which Microsoft 365 organisations' people may sign in to the
//! tenant through the Outlook add-in. Linking needs proof of the organisation's consent: a
//! token from one of its directory admins (see `auth::people`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{AppError, ErrorBody};
use super::json::ApiJson;
use super::path::path_id;
use crate::auth::{Caller, people};
use crate::state::AppState;

/// Routes for a tenant admin's Microsoft 365 links.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_links, create_link))
        .routes(routes!(delete_link))
}

/// A linked Microsoft 365 organisation.
#[derive(Serialize, ToSchema)]
struct EntraLinkView {
    /// Its tenant id (`tid`).
    entra_tenant_id: Uuid,
    /// When it was linked.
    #[serde(with = "time::serde::rfc3339")]
    linked_at: OffsetDateTime,
}

/// The tenant's links.
#[derive(Serialize, ToSchema)]
struct LinkList {
    links: Vec<EntraLinkView>,
}

/// A request to link the organisation a directory admin signed in from.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// An Entra ID access token for Ferry (same audience and scope as the add-in's) of a
    /// Global, Application or Cloud Application Administrator of the organisation to link,
    /// with the `wids` claim.
    directory_admin_token: String,
}

/// The organisation linked.
#[derive(Serialize, ToSchema)]
struct Linked {
    /// Its tenant id.
    entra_tenant_id: Uuid,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/entra-links",
    tag = "admin",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The Microsoft 365 organisations linked, oldest first",
         body = LinkList),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn list_links(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<LinkList>, AppError> {
    let links = people::links(&state, &caller).await?;
    Ok(Json(LinkList {
        links: links
            .into_iter()
            .map(|link| EntraLinkView {
                entra_tenant_id: link.entra_tenant_id,
                linked_at: link.linked_at,
            })
            .collect(),
    }))
}

/// Links the Microsoft 365 organisation of the directory admin whose token is given: its
/// people may then sign in to this tenant from the Outlook add-in.
#[utoipa::path(
    post,
    path = "/api/v1/admin/entra-links",
    tag = "admin",
    security(("api_key" = [])),
    request_body = LinkRequest,
    responses(
        (status = 201, description = "Linked now", body = Linked),
        (status = 200, description = "Already linked to this tenant", body = Linked),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key, or the token is not accepted \
                                      (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "A sender key (`forbidden`), or the token is not a \
                                      directory admin's (`not_directory_admin`)",
         body = ErrorBody),
        (status = 409, description = "The organisation is linked to another tenant",
         body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a link request", body = ErrorBody),
        (status = 503, description = "The database, or Entra ID's signing keys, are \
                                      unavailable; retry", body = ErrorBody),
    )
)]
async fn create_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<Response, AppError> {
    let (entra_tenant_id, now) =
        people::link_as_directory_admin(&state, &caller, &request.directory_admin_token).await?;
    let status = if now {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Linked { entra_tenant_id })).into_response())
}

/// Unlinks an organisation: its people are refused from their next request on; what they
/// sent stays until it expires.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/entra-links/{entra_tenant_id}",
    tag = "admin",
    security(("api_key" = [])),
    params(("entra_tenant_id" = Uuid, Path, description = "The organisation's tenant id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 404, description = "Not linked to this tenant", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn delete_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(entra_tenant_id): Path<String>,
) -> Result<StatusCode, AppError> {
    let entra_tenant_id = path_id(&entra_tenant_id)?;
    if people::unlink_as_admin(&state, &caller, entra_tenant_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found())
    }
}
