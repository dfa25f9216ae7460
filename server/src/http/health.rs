//! Liveness and readiness probes.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use crate::state::AppState;

/// `/healthz` (the process answers) and `/readyz` (the database answers).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers, so requests can be served.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.check_ready().await?;
    Ok("ready")
}
