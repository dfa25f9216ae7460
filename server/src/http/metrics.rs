//! `GET /metrics`: the Prometheus scrape endpoint ([`crate::telemetry`] holds the numbers).
//!
//! Who may read it: a scraper presenting `FERRY_METRICS_TOKEN` as a bearer token, from
//! anywhere; without a token, only a client on this host's loopback that is not a trusted
//! proxy (a reverse proxy on the same host forwards the public, so its requests do not count
//! as local). Anyone else gets 403: traffic volumes are the operator's business.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::telemetry;

/// The scrape route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Operational metrics in the Prometheus text format: uploads in flight, bytes received and
/// committed, commit latency, downloads and bytes served, token-guard refusals, expiry passes,
/// store errors by kind. No label names a tenant, a file or a token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
         content_type = "text/plain"),
        (status = 403, description = "Neither a loopback client nor the metrics token",
         body = ErrorBody),
        (status = 503, description = "No metrics recorder is installed", body = ErrorBody),
    )
)]
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !may_scrape(
        peer.ip(),
        &state.config.trusted_proxies,
        presented,
        state.config.metrics_token.as_deref(),
    ) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are served to loopback clients and to FERRY_METRICS_TOKEN",
        ));
    }
    if let Err(e) = crate::relay::refresh_metrics(&state).await {
        tracing::warn!(error = %e, "reading the relay queue for /metrics failed");
    }
    let text = telemetry::render()
        .ok_or_else(|| AppError::unavailable("no metrics recorder is installed"))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// The access rule of the module doc.
fn may_scrape(
    peer: IpAddr,
    trusted_proxies: &[IpAddr],
    presented: Option<&str>,
    token: Option<&str>,
) -> bool {
    if let (Some(presented), Some(token)) = (presented, token) {
        return bool::from(presented.trim().as_bytes().ct_eq(token.as_bytes()));
    }
    let peer = peer.to_canonical();
    peer.is_loopback() && !trusted_proxies.contains(&peer)
}

#[cfg(test)]
mod tests {
    use super::may_scrape;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn loopback_or_the_token_and_nobody_else() {
        let local = ip("127.0.0.1");
        let remote = ip("192.0.2.7");
        assert!(may_scrape(local, &[], None, None));
        assert!(may_scrape(ip("::1"), &[], None, None));
        assert!(may_scrape(ip("::ffff:127.0.0.1"), &[], None, None));
        assert!(!may_scrape(remote, &[], None, None));
        assert!(!may_scrape(remote, &[], Some("guess"), None));
        // A reverse proxy on this host forwards the public: not local.
        assert!(!may_scrape(local, &[local], None, None));
        assert!(may_scrape(remote, &[], Some("s3cret"), Some("s3cret")));
        assert!(!may_scrape(remote, &[], Some("s3cre"), Some("s3cret")));
        // A wrong token is refused even from loopback.
        assert!(!may_scrape(local, &[], Some("wrong"), Some("s3cret")));
    }
}
