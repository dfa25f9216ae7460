//! The Outlook add-in's sign-in with Entra ID: off unless the app registration's client id is
//! configured (`FERRY_ENTRA_CLIENT_ID`); API keys work either way.

use super::ConfigError;

/// Entra ID's signing keys for every tenant (v2 endpoint).
pub const ENTRA_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";

/// Scope the add-in asks for unless configured otherwise (the name Microsoft's add-in
/// samples expose on the app registration).
pub const DEFAULT_SCOPE: &str = "access_as_user";

/// How tokens from the add-in are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    /// The app registration's client id (a GUID): the `aud` of the v2 tokens Entra issues
    /// for Ferry's API, and what the pane's MSAL client asks tokens as.
    pub client_id: String,
    /// The application ID URI (`FERRY_ENTRA_APP_ID_URI`, e.g.
    /// `api://files.example.eu/<client id>`), also accepted as `aud`.
    pub app_id_uri: Option<String>,
    /// The delegated scope a token must carry (`FERRY_ENTRA_SCOPE`).
    pub scope: String,
    /// Where Entra's signing keys are fetched (`FERRY_ENTRA_JWKS_URL`). For tests only: the
    /// default is Microsoft's; any other must be https, or http on loopback.
    pub jwks_url: String,
}

/// The `entra_*` keys of `ferry.toml`.
#[derive(Debug, Default)]
pub(super) struct FileEntra {
    pub entra_client_id: Option<String>,
    pub entra_app_id_uri: Option<String>,
    pub entra_scope: Option<String>,
    pub entra_jwks_url: Option<String>,
}

/// The Entra settings from the environment, else the file; `None` without a client id.
pub(super) fn resolve(
    env: &impl Fn(&str) -> Option<String>,
    file: FileEntra,
) -> Result<Option<EntraConfig>, ConfigError> {
    let Some(client_id) = env("FERRY_ENTRA_CLIENT_ID")
        .or(file.entra_client_id)
        .map(|id| id.trim().to_ascii_lowercase())
        .filter(|id| !id.is_empty())
    else {
        return Ok(None);
    };
    if uuid::Uuid::parse_str(&client_id).is_err() {
        return Err(ConfigError::Invalid {
            key: "FERRY_ENTRA_CLIENT_ID",
            message: format!("{client_id:?} is not an application (client) id, a GUID"),
        });
    }
    let app_id_uri = env("FERRY_ENTRA_APP_ID_URI")
        .or(file.entra_app_id_uri)
        .filter(|uri| !uri.trim().is_empty());
    let scope = env("FERRY_ENTRA_SCOPE")
        .or(file.entra_scope)
        .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
    if scope.is_empty() || scope.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid {
            key: "FERRY_ENTRA_SCOPE",
            message: format!("{scope:?} is not one scope name"),
        });
    }
    let jwks_url = env("FERRY_ENTRA_JWKS_URL")
        .or(file.entra_jwks_url)
        .unwrap_or_else(|| ENTRA_JWKS_URL.to_owned());
    if !(jwks_url.starts_with("https://")
        || jwks_url.starts_with("http://127.0.0.1:")
        || jwks_url.starts_with("http://[::1]:"))
    {
        return Err(ConfigError::Invalid {
            key: "FERRY_ENTRA_JWKS_URL",
            message: format!("{jwks_url:?} must be https:// (or http:// on loopback, in tests)"),
        });
    }
    Ok(Some(EntraConfig {
        client_id,
        app_id_uri,
        scope,
        jwks_url,
    }))
}
