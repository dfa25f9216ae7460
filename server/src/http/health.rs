//! Liveness and readiness probes.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::error::AppError;
use crate::state::AppState;

/// `/healthz` (the process answers) and `/readyz` (the database answers).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

async fn ready(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.db.ping().await?;
    Ok("ready")
}
