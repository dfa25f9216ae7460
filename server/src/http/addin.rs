//! The Outlook add-in's files: this deployment's manifest (for "Add from URL" and the admin
//! centre) and the icons it names. Public: Outlook fetches them without credentials.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use crate::addin::{Manifest, ManifestError, assets};
use crate::state::AppState;

/// `GET /addin/manifest.xml` and `GET /addin/assets/{name}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(manifest))
        .routes(routes!(asset))
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
