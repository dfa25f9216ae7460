//! The guard of recipient routes against link-token guessing: who the client is (the TCP
//! peer, or the client a trusted reverse proxy names), and its budget of failed lookups
//! ([`crate::ratelimit`]). A 404 from a recipient route is by definition a failed lookup
//! (unknown or malformed token, wrong secret, a file not in the share); everything else
//! gives its reservation back.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use super::error::AppError;
use crate::config::Config;
use crate::ratelimit::{FailureBudget, MAX_TRACKED_CLIENTS};
use crate::telemetry;

/// The per-process failure budgets and the proxies whose word on the client is trusted.
#[derive(Clone, Debug)]
pub struct TokenGuard {
    budget: Arc<FailureBudget>,
    trusted_proxies: Arc<[IpAddr]>,
}

impl TokenGuard {
    /// A guard with the configured burst, refill and trusted proxies.
    pub fn new(config: &Config) -> Self {
        TokenGuard {
            budget: Arc::new(FailureBudget::new(
                config.token_failure_burst,
                config.token_failures_per_hour,
                MAX_TRACKED_CLIENTS,
            )),
            trusted_proxies: config.trusted_proxies.iter().copied().collect(),
        }
    }

    /// Admits a request from `peer` before its token is looked up, reserving one failure;
    /// returns the client address to record the outcome against.
    ///
    /// # Errors
    /// 429 with `Retry-After` when the client has no failures left.
    pub fn admit(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, AppError> {
        let client = client_ip(peer, headers, &self.trusted_proxies);
        if let Err(spent) = self.budget.spend(client) {
            telemetry::token_guard_refused();
            return Err(spent.into());
        }
        Ok(client)
    }

    /// Records an admitted request's outcome: only a 404 keeps the failure it reserved.
    pub fn record_outcome(&self, client: IpAddr, status: StatusCode) {
        if status != StatusCode::NOT_FOUND {
            self.budget.refund(client);
        }
    }
}

/// The client of a request: the TCP peer, unless the peer is a trusted proxy, in which case
/// the last `X-Forwarded-For` entry — the address the proxy itself saw and appended. Entries
/// further left are the client's own claims and never trusted.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy_and_only_its_last_hop() {
        let proxies = [ip("10.0.0.1")];
        let spoofed = forwarded(&["198.51.100.9"]);
        // No proxies configured, or a peer that is not one: the header is ignored.
        assert_eq!(client_ip(ip("192.0.2.7"), &spoofed, &[]), ip("192.0.2.7"));
        assert_eq!(
            client_ip(ip("192.0.2.7"), &spoofed, &proxies),
            ip("192.0.2.7")
        );
        // The trusted proxy's last hop is the client; what the client prepended is not.
        let chain = forwarded(&["1.1.1.1, 2.2.2.2", "203.0.113.5 , 198.51.100.3"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &chain, &proxies),
            ip("198.51.100.3")
        );
        assert_eq!(
            client_ip(
                ip("::ffff:10.0.0.1"),
                &forwarded(&["::ffff:192.0.2.8"]),
                &proxies
            ),
            ip("192.0.2.8")
        );
        // Missing or garbled: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &forwarded(&["1.1.1.1, unknown"]), &proxies),
            ip("10.0.0.1")
        );
    }
}
