//! Fetching a policy document as RFC 8461 §3.3 says: HTTPS to `mta-sts.<domain>` with a
//! certificate valid for that name under the relay's roots, only a `200`, no redirects, no
//! HTTP cache, at most [`MAX_POLICY_BYTES`]. Names are resolved by the relay's own
//! [`Resolver`], so the test bed's DNS server answers them too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{MAX_POLICY_BYTES, MtaStsError, Policy, parse_policy};
use crate::dns::Resolver;
use crate::tls::TrustRoots;

/// How long one fetch may take in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no policy came back. Each is "fetch failed": the caller applies a cached policy if it
/// has one, and otherwise delivers under WebPKI (never plaintext).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// DNS, TCP, TLS (including a certificate not valid for `mta-sts.<domain>`), or a timeout.
    #[error("fetching the MTA-STS policy failed: {0}")]
    Transport(String),
    /// Anything but `200`, redirects included (RFC 8461 §3.3: they are not followed).
    #[error("the MTA-STS policy server answered {0}")]
    Status(u16),
    /// Not `text/plain`.
    #[error("the MTA-STS policy is served as {0:?}, not text/plain")]
    MediaType(String),
    /// Too large or malformed.
    #[error(transparent)]
    Policy(#[from] MtaStsError),
}

/// Why the fetcher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the MTA-STS HTTPS client: {0}")]
pub struct FetcherSetupError(String);

/// Fetches policies; one per relay, shared by every delivery.
#[derive(Clone)]
pub struct PolicyFetcher {
    client: reqwest::Client,
    port: u16,
}

impl PolicyFetcher {
    /// A fetcher that resolves through `resolver`, trusts `roots`, and connects to `port`
    /// (443; `FERRY_RELAY_MTA_STS_PORT` is a test knob).
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new<R: Resolver>(
        resolver: Arc<R>,
        roots: &TrustRoots,
        port: u16,
    ) -> Result<Self, FetcherSetupError> {
        let tls = (*roots.client_config()).clone();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .dns_resolver(Arc::new(ViaRelayResolver(resolver)))
            .user_agent(concat!("ferry-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetcherSetupError(e.to_string()))?;
        Ok(Self { client, port })
    }

    /// The policy of `domain`, and the document's text (what the cache keeps).
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn fetch(&self, domain: &str) -> Result<(Policy, String), FetchError> {
        let url = if self.port == 443 {
            format!("https://mta-sts.{domain}/.well-known/mta-sts.txt")
        } else {
            format!(
                "https://mta-sts.{domain}:{}/.well-known/mta-sts.txt",
                self.port
            )
        };
        let transport = |e: reqwest::Error| FetchError::Transport(error_chain(&e));
        let mut response = self
            .client
            .get(&url)
            .header(reqwest::header::CACHE_CONTROL, "no-cache")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let essence = media_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("text/plain") {
            return Err(FetchError::MediaType(media_type));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_POLICY_BYTES as u64)
        {
            return Err(MtaStsError::TooLarge.into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_POLICY_BYTES {
                return Err(MtaStsError::TooLarge.into());
            }
            body.extend_from_slice(&chunk);
        }
        let policy = parse_policy(&body)?;
        let text = String::from_utf8_lossy(&body).into_owned();
        Ok((policy, text))
    }
}

/// reqwest's name resolution through the relay's resolver.
struct ViaRelayResolver<R>(Arc<R>);

impl<R: Resolver> reqwest::dns::Resolve for ViaRelayResolver<R> {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolver.addresses(&host).await?;
            if addresses.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            // The port is the URL's; reqwest replaces this one.
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// An error and its causes on one line (reqwest's own message says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
