//! The HTTP edge: one module per route group, each exporting `router()`. Handlers parse,
//! call a domain function, and map its error through [`error::AppError`].

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

mod admin;
mod auth;
mod download;
pub mod error;
mod files;
mod guard;
mod health;
mod json;
mod page;
pub mod range;
mod shares;
mod tus;

/// The whole service's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`: recipient routes budget failed
/// lookups per client address and refuse requests whose peer is unknown.
pub fn router(state: AppState) -> Router {
    let token_guard = guard::TokenGuard::new(&state.config);
    Router::new()
        .merge(tus::router())
        .merge(admin::router())
        .merge(files::router())
        .merge(shares::router())
        .merge(download::router(token_guard))
        .merge(health::router())
        .fallback(|| async { error::AppError::not_found() })
        // tus bodies are unbounded streams; JSON endpoints bound themselves via ApiJson.
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
