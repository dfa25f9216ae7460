//! The one door for `Authorization: Bearer …`: a Ferry API key (`fk_…`), or a Microsoft 365
//! sign-in token (a JWT) from the Outlook add-in. Either way the result is a [`Caller`], so
//! nothing behind the door knows which it was, except the audit log's actor.

use super::api_keys::{self, ApiKeyError};
use super::caller::Caller;
use super::people::{self, SignInError};
use super::secret::API_KEY_PREFIX;
use crate::state::AppState;

/// Why a bearer credential was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// As an API key.
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    /// As a Microsoft 365 sign-in.
    #[error(transparent)]
    SignIn(#[from] SignInError),
}

/// The caller behind a presented bearer credential.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Caller, AuthError> {
    let presented = presented.trim();
    if presented.starts_with(API_KEY_PREFIX) {
        Ok(api_keys::authenticate(state, presented).await?)
    } else if presented.split('.').count() == 3 {
        Ok(people::authenticate(state, presented).await?)
    } else {
        Err(ApiKeyError::Unauthorized.into())
    }
}
