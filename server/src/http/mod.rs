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

mod addin;
mod admin;
mod auth;
mod connection;
mod download;
mod entra_links;
pub mod error;
mod files;
mod guard;
mod health;
mod json;
mod metrics;
pub mod openapi;
mod page;
mod path;
pub mod range;
pub mod serve;
mod shares;
mod tus;

/// Every documented route group, with the document they make together. Recipient routes
/// sit behind `token_guard`.
fn api(token_guard: guard::TokenGuard) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(addin::router())
        .merge(admin::router())
        .merge(entra_links::router())
        .merge(files::router())
        .merge(shares::router())
        .merge(download::router(token_guard))
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
}

/// The span of one request in the logs: method and path, with a link token replaced by `…`
/// (whoever reads the logs must not be able to download what recipients were sent).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %redacted_path(request.uri().path()),
    )
}

/// `path` with the token of `/d/{token}…` hidden; other paths as they are (no query string).
fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/d/") {
        Some(rest) => {
            let after_token = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/d/…{after_token}").into()
        }
        None => path.into(),
    }
}

/// The whole service's routes. Serve them with [`serve::serve`], which gives each request
/// its peer as `ConnectInfo<SocketAddr>`: recipient routes budget failed lookups per client
/// address and refuse requests whose peer is unknown.
pub fn router(state: AppState) -> Router {
    crate::telemetry::install();
    let token_guard = guard::TokenGuard::new(&state.config);
    let (api, document) = api(token_guard).split_for_parts();
    Router::new()
        .merge(tus::router())
        .merge(api)
        .fallback(|| async { error::AppError::not_found() })
        .layer(Extension(openapi::ServedDocument(Arc::new(document))))
        // tus bodies are unbounded streams; JSON endpoints bound themselves via ApiJson.
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(axum::middleware::from_fn(connection::close_if_body_unread))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::redacted_path;

    #[test]
    fn link_tokens_never_reach_the_logs() {
        let token = "AbCdEfGhIjKl0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        let file = "/f/6f1c2a52-8a4e-4d57-9d5e-0d7c1b8a3f10";
        assert_eq!(redacted_path(&format!("/d/{token}")), "/d/…");
        assert_eq!(
            redacted_path(&format!("/d/{token}{file}")),
            format!("/d/…{file}")
        );
        assert_eq!(redacted_path("/files/abc"), "/files/abc");
    }
}
