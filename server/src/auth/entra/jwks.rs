//! Entra ID's signing keys, fetched once and kept: a token's `kid` is looked up in memory,
//! and the keys are fetched again only when a token names one they lack (Entra rolls its
//! keys over) or when they are a day old — never per request, and never more often than
//! the refresh interval, however many unknown `kid`s arrive (a flood of made-up ones costs
//! one fetch per interval).

use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};

use super::{EntraUser, Expectations, SigningKeys, TokenError, key_id, validate};

/// Largest JWKS document read (Entra's is about 10 KB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys older than this are fetched again on the next token.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token could not be checked or was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntraError {
    /// The token is not acceptable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The signing keys could not be fetched (the token is neither accepted nor refused).
    #[error("fetching Entra ID's signing keys from {url} failed: {reason}")]
    Keys {
        /// Where from.
        url: String,
        /// Why.
        reason: String,
    },
}

struct Fetched {
    keys: SigningKeys,
    at: Option<Instant>,
}

/// The signing keys at one JWKS URL, cached.
pub struct KeyCache {
    url: String,
    client: reqwest::Client,
    min_refresh: Duration,
    fetched: RwLock<Fetched>,
    /// One fetch at a time; the others wait for it and use its keys.
    fetching: Mutex<()>,
}

impl KeyCache {
    /// A cache of the keys at `url` (normally [`crate::config::ENTRA_JWKS_URL`]), fetched again on an
    /// unknown `kid` at most once per `min_refresh`.
    ///
    /// # Errors
    /// `Keys` if no HTTP client can be built (no TLS roots on this machine).
    pub fn new(url: &str, min_refresh: Duration) -> Result<KeyCache, EntraError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| EntraError::Keys {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(KeyCache {
            url: url.to_owned(),
            client,
            min_refresh,
            fetched: RwLock::new(Fetched {
                keys: SigningKeys::default(),
                at: None,
            }),
            fetching: Mutex::new(()),
        })
    }

    /// The user `token` speaks for (see [`validate`]), at `now` (Unix seconds).
    ///
    /// # Errors
    /// `Token` if the token is refused, `Keys` if the keys it needs could not be fetched.
    pub async fn validate(
        &self,
        token: &str,
        expect: &Expectations,
        now: i64,
    ) -> Result<EntraUser, EntraError> {
        let kid = key_id(token).ok_or(TokenError::Malformed)?;
        let (known, stale) = {
            let fetched = self.fetched.read().await;
            let known = fetched.keys.has(&kid);
            (
                known,
                !known || fetched.at.is_none_or(|at| at.elapsed() > MAX_AGE),
            )
        };
        if stale && let Err(e) = self.refresh(&kid).await {
            // Day-old keys that hold the token's kid are still Entra's: keep serving on them
            // while the endpoint is unreachable.
            if !known {
                return Err(e);
            }
            tracing::warn!(error = %e, "keeping Entra ID's day-old signing keys");
        }
        let fetched = self.fetched.read().await;
        Ok(validate(token, &fetched.keys, expect, now)?)
    }

    /// Fetches the keys unless another caller just did (or the interval has not passed).
    async fn refresh(&self, kid: &str) -> Result<(), EntraError> {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let fetched = self.fetched.read().await;
            let fresh = fetched.at.is_some_and(|at| at.elapsed() < MAX_AGE);
            if fresh && fetched.keys.has(kid) {
                return Ok(()); // another caller fetched them meanwhile
            }
            if fetched.at.is_some_and(|at| at.elapsed() < self.min_refresh) {
                return Ok(()); // too soon: the token is judged by the keys we have
            }
        }
        let keys = self.fetch().await?;
        *self.fetched.write().await = Fetched {
            keys,
            at: Some(Instant::now()),
        };
        Ok(())
    }

    async fn fetch(&self) -> Result<SigningKeys, EntraError> {
        let failed = |reason: String| EntraError::Keys {
            url: self.url.clone(),
            reason,
        };
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        SigningKeys::from_jwks(&body).map_err(|e| failed(e.to_string()))
    }
}
