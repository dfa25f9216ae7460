//! The HTTP edge: one module per route group, each exporting `router()`. Handlers parse,
//! call a domain function, and map its error through [`error::AppError`].
//!
//! Every group but tus is an [`OpenApiRouter`] whose handlers are registered with `routes!`,
//! so routing a handler and describing it in `GET /api/openapi.json` are one step (the
//! pattern is written down in [`openapi`]).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

mod admin;
mod auth;
mod download;
pub mod error;
mod files;
mod guard;
mod health;
mod json;
pub mod openapi;
mod page;
pub mod range;
mod shares;
mod tus;

/// Every documented route group, with the document they make together. Recipient routes
/// sit behind `token_guard`.
fn api(token_guard: guard::TokenGuard) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(admin::router())
        .merge(files::router())
        .merge(shares::router())
        .merge(download::router(token_guard))
        .merge(health::router())
        .merge(openapi::router())
}

/// The whole service's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`: recipient routes budget failed
/// lookups per client address and refuse requests whose peer is unknown.
pub fn router(state: AppState) -> Router {
    let token_guard = guard::TokenGuard::new(&state.config);
    let (api, document) = api(token_guard).split_for_parts();
    Router::new()
        .merge(tus::router())
        .merge(api)
        .fallback(|| async { error::AppError::not_found() })
        .layer(Extension(openapi::ServedDocument(Arc::new(document))))
        // tus bodies are unbounded streams; JSON endpoints bound themselves via ApiJson.
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
