//! The Outlook add-in's files: this deployment's manifest (for "Add from URL" and the admin
//! centre), the icons it names, the task pane and launch event handler with their scripts, and
//! the pane's sign-in settings. Public: Outlook fetches them without credentials.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use crate::addin::{Manifest, ManifestError, assets};
use crate::state::AppState;

/// `GET /addin/manifest.xml`, `/addin/config.json`, `/addin/assets/{name}`, `/addin/{name}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(manifest))
        .routes(routes!(pane_config))
        .routes(routes!(asset))
        .routes(routes!(pane_file))
}

/// How the pane signs in, from the server's configuration.
#[derive(Serialize, ToSchema)]
struct PaneConfig {
    /// Entra ID sign-in; `null` when this server takes API keys only.
    entra: Option<PaneEntra>,
}

/// What the pane's MSAL client (or Office SSO) asks tokens for.
#[derive(Serialize, ToSchema)]
struct PaneEntra {
    /// The app registration's client id.
    client_id: String,
    /// The scope to request: `<application ID URI>/<scope>`.
    scope_uri: String,
}

/// The pane's sign-in settings (no secrets: a client id and a scope are public).
#[utoipa::path(
    get,
    path = "/addin/config.json",
    tag = "addin",
    responses((status = 200, description = "The pane's settings", body = PaneConfig))
)]
async fn pane_config(State(state): State<AppState>) -> Json<PaneConfig> {
    let entra = state.config.entra.as_ref().map(|entra| {
        let resource = entra
            .app_id_uri
            .clone()
            .unwrap_or_else(|| format!("api://{}", entra.client_id));
        PaneEntra {
            client_id: entra.client_id.clone(),
            scope_uri: format!("{}/{}", resource.trim_end_matches('/'), entra.scope),
        }
    });
    Json(PaneConfig { entra })
}

/// A file of the task pane or the launch event handler (`taskpane.html`, `launchevent.html`
/// and `.js`, and the scripts and style they load), with a strict Content-Security-Policy.
#[utoipa::path(
    get,
    path = "/addin/{name}",
    tag = "addin",
    params(("name" = String, Path, description = "The file's name, e.g. `taskpane.html`")),
    responses(
        (status = 200, description = "The file",
         content(("text/html"), ("text/javascript"), ("text/css"))),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
async fn pane_file(Path(name): Path<String>) -> Result<Response, AppError> {
    let file = assets::pane_file(&name).ok_or_else(AppError::not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, assets::PANE_CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        file.bytes,
    )
        .into_response())
}

/// The Outlook add-in's XML manifest for this deployment (every URL in it is
/// `FERRY_PUBLIC_URL`'s), for the Microsoft 365 admin centre or sideloading.
#[utoipa::path(
    get,
    path = "/addin/manifest.xml",
    tag = "addin",
    responses(
        (status = 200, description = "The manifest", body = String,
         content_type = "application/xml"),
        (status = 404, description = "`FERRY_PUBLIC_URL` is not set or not https", body = ErrorBody),
    )
)]
async fn manifest(State(state): State<AppState>) -> Result<Response, AppError> {
    let url = state.config.public_url.as_deref();
    let manifest = Manifest::new(url.ok_or(ManifestError::NoPublicUrl)?)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        manifest.xml(),
    )
        .into_response())
}

/// A file of the add-in (its icons: `icon-16.png`, 32, 64, 80, 128).
#[utoipa::path(
    get,
    path = "/addin/assets/{name}",
    tag = "addin",
    params(("name" = String, Path, description = "The file's name, e.g. `icon-32.png`")),
    responses(
        (status = 200, description = "The file", content(("image/png"))),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let asset = assets::asset(&name).ok_or_else(AppError::not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response())
}
