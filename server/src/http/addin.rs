//! The Outlook add-in's files: this deployment's manifest (for "Add from URL" and the admin
//! centre) and the icons it names. Public: Outlook fetches them without credentials. Not in
//! the OpenAPI document, which describes the API, not static files.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::AppError;
use crate::addin::{Manifest, ManifestError, assets};
use crate::state::AppState;

/// `GET /addin/manifest.xml` and `GET /addin/assets/{name}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/addin/manifest.xml", get(manifest))
        .route("/addin/assets/{name}", get(asset))
}

/// The manifest of this deployment, from `FERRY_PUBLIC_URL`.
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

/// One embedded asset; 404 for any other name.
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
