//! The configured check of Entra tokens: the signing keys (cached) and what a token must be
//! for, built once from the configuration and shared by every request.

use std::time::Duration;

use super::jwks::{EntraError, KeyCache};
use super::{EntraUser, Expectations};
use crate::config::EntraConfig;

/// Shortest time between two fetches of the signing keys for unknown `kid`s.
const MIN_KEY_REFRESH: Duration = Duration::from_secs(60);

/// Checks tokens as configured.
pub struct Verifier {
    keys: KeyCache,
    expect: Expectations,
}

impl Verifier {
    /// The check `config` describes; the keys are fetched on the first token, not here.
    ///
    /// # Errors
    /// `Keys` if no HTTP client can be built for the key fetches.
    pub fn new(config: &EntraConfig) -> Result<Verifier, EntraError> {
        let mut audiences = vec![config.client_id.clone()];
        audiences.extend(config.app_id_uri.clone());
        Ok(Verifier {
            keys: KeyCache::new(&config.jwks_url, MIN_KEY_REFRESH)?,
            expect: Expectations {
                audiences,
                scope: config.scope.clone(),
            },
        })
    }

    /// The person `token` speaks for, now.
    ///
    /// # Errors
    /// `Token` if it is refused, `Keys` if the keys it needs could not be fetched.
    pub async fn user(&self, token: &str) -> Result<EntraUser, EntraError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.keys.validate(token, &self.expect, now).await
    }
}
