//! Entra ID (Azure AD) v2 access tokens, as the Outlook add-in sends them (Nested App
//! Authentication, or Office SSO): who signed in, from which Microsoft 365 tenant.
//!
//! A token is accepted only if every one of these holds: it is a JWS of three base64url parts
//! no longer than [`MAX_TOKEN_LEN`]; its header says `RS256` (never `none`, never an HMAC,
//! which a public key could be abused to forge) and names a `kid` of the signing keys; the
//! RSA signature verifies under that key; `ver` is `2.0`; `iss` is
//! `https://login.microsoftonline.com/{tid}/v2.0` for the token's own `tid`; `aud` is one of
//! the configured audiences; `exp` and `nbf` hold with [`CLOCK_SKEW`] of slack; `scp` holds
//! the required scope; `tid` and `oid` are GUIDs. Which Ferry tenant a `tid` belongs to is
//! decided elsewhere (an admin links them); this module only says who the token is for.
//!
//! [`jwks::KeyCache`] keeps Entra's signing keys, [`verifier::Verifier`] checks tokens as
//! configured, and `auth::people` turns a person's valid token into a caller.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use uuid::Uuid;

/// Longest token considered (Entra's are 1–3 KB; a bound keeps parsing cheap).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Slack, in seconds, for clocks that disagree on `exp` and `nbf`.
pub const CLOCK_SKEW: i64 = 120;

/// Why a token is refused (every one is a 401 to the client; the variant is for the logs).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWS of three base64url parts with JSON header and claims, or too long.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header's `alg` is not `RS256`.
    #[error("the token's algorithm {0:?} is not accepted (RS256 only)")]
    Algorithm(String),
    /// No signing key has the header's `kid`.
    #[error("the token's signing key {0:?} is unknown")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// Not an Entra ID v2 token, or not issued for its own tenant.
    #[error("the token's issuer is not Entra ID v2 for its tenant")]
    Issuer,
    /// Issued for another application.
    #[error("the token is for another audience")]
    Audience,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `scp` lacks the scope Ferry requires.
    #[error("the token lacks the scope {0:?}")]
    Scope(String),
    /// `tid` or `oid` missing or not a GUID.
    #[error("the token does not name its tenant and user")]
    Subject,
}

/// What a valid token must be for.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Accepted `aud` values: the app's client id, and its application ID URI.
    pub audiences: Vec<String>,
    /// The delegated scope the add-in asks for (e.g. `access_as_user`).
    pub scope: String,
}

/// The person a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraUser {
    /// The Microsoft 365 tenant (`tid`).
    pub tenant: Uuid,
    /// The user's object id in that tenant (`oid`): stable, unlike the address.
    pub object_id: Uuid,
    /// The sign-in address (`preferred_username`), for display and the audit log.
    pub address: Option<String>,
    /// The directory roles the person holds in their tenant (`wids`; present when the app
    /// registration's `groupMembershipClaims` includes `DirectoryRole`).
    pub directory_roles: Vec<Uuid>,
}

/// Directory roles whose holders may link their Microsoft 365 tenant to a Ferry tenant
/// through the admin API (role template ids: Global Administrator, Application
/// Administrator, Cloud Application Administrator — the roles that may consent to an app
/// for the whole tenant).
pub const TENANT_LINKING_ROLES: [Uuid; 3] = [
    uuid::uuid!("62e90394-69f5-4237-9190-012177145e10"),
    uuid::uuid!("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"),
    uuid::uuid!("158c047a-c907-4556-b7ef-446551a6b5f7"),
];

impl EntraUser {
    /// Whether this person administers their tenant's applications (see
    /// [`TENANT_LINKING_ROLES`]).
    pub fn may_link_tenant(&self) -> bool {
        self.directory_roles
            .iter()
            .any(|role| TENANT_LINKING_ROLES.contains(role))
    }
}

/// Entra's signing keys (a JWKS document), by `kid`.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    keys: HashMap<String, RsaPublicKeyComponents<Vec<u8>>>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
}

impl SigningKeys {
    /// The RSA signing keys of a JWKS document; keys of other types or uses are skipped.
    ///
    /// # Errors
    /// `Malformed` if the document is not a JWKS.
    pub fn from_jwks(json: &[u8]) -> Result<SigningKeys, TokenError> {
        let document: JwksDocument =
            serde_json::from_slice(json).map_err(|_| TokenError::Malformed)?;
        let mut keys = HashMap::new();
        for key in document.keys {
            let usable = key.kty == "RSA" && key.usage.as_deref().is_none_or(|u| u == "sig");
            if let (true, Some(kid), Some(n), Some(e)) = (usable, key.kid, key.n, key.e) {
                let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
                    continue;
                };
                keys.insert(kid, RsaPublicKeyComponents { n, e });
            }
        }
        Ok(SigningKeys { keys })
    }

    /// Whether a key has this `kid` (an unknown one means the keys rolled over: refetch).
    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    ver: Option<String>,
    iss: Option<String>,
    aud: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    scp: Option<String>,
    tid: Option<String>,
    oid: Option<String>,
    preferred_username: Option<String>,
    wids: Option<Vec<String>>,
}

/// The `kid` a token's header names, to pick (or refetch) the signing keys before
/// [`validate`]; `None` for anything that is not a well-formed RS256 token.
pub fn key_id(token: &str) -> Option<String> {
    let (header, _, _) = split(token).ok()?;
    let header: Header = decode_json(header).ok()?;
    (header.alg == "RS256").then_some(header.kid).flatten()
}

/// The user a token speaks for, if it passes every check in this module's description at
/// time `now` (Unix seconds).
///
/// # Errors
/// The first check that fails, as a [`TokenError`].
pub fn validate(
    token: &str,
    keys: &SigningKeys,
    expect: &Expectations,
    now: i64,
) -> Result<EntraUser, TokenError> {
    let (header_part, claims_part, signature_part) = split(token)?;
    let header: Header = decode_json(header_part)?;
    if header.alg != "RS256" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let kid = header.kid.ok_or(TokenError::Malformed)?;
    let key = keys
        .keys
        .get(&kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| TokenError::Malformed)?;
    let signed = &token[..header_part.len() + 1 + claims_part.len()];
    key.verify(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        signed.as_bytes(),
        &signature,
    )
    .map_err(|_| TokenError::Signature)?;

    let claims: Claims = decode_json(claims_part)?;
    let tenant = claims
        .tid
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or(TokenError::Subject)?;
    let object_id = claims
        .oid
        .as_deref()
        .and_then(|o| Uuid::parse_str(o).ok())
        .ok_or(TokenError::Subject)?;
    let issuer = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    if claims.ver.as_deref() != Some("2.0") || claims.iss.as_deref() != Some(issuer.as_str()) {
        return Err(TokenError::Issuer);
    }
    if !claims
        .aud
        .as_ref()
        .is_some_and(|aud| expect.audiences.iter().any(|a| a == aud))
    {
        return Err(TokenError::Audience);
    }
    match claims.exp {
        Some(exp) if now <= exp.saturating_add(CLOCK_SKEW) => {}
        _ => return Err(TokenError::Expired),
    }
    if claims
        .nbf
        .is_some_and(|nbf| now < nbf.saturating_sub(CLOCK_SKEW))
    {
        return Err(TokenError::NotYetValid);
    }
    if !claims
        .scp
        .as_deref()
        .is_some_and(|scp| scp.split(' ').any(|s| s == expect.scope))
    {
        return Err(TokenError::Scope(expect.scope.clone()));
    }
    Ok(EntraUser {
        tenant,
        object_id,
        address: claims.preferred_username,
        directory_roles: claims
            .wids
            .unwrap_or_default()
            .iter()
            .filter_map(|role| Uuid::parse_str(role).ok())
            .collect(),
    })
}

/// The three parts of a compact JWS.
fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) if !h.is_empty() && !c.is_empty() => Ok((h, c, s)),
        _ => Err(TokenError::Malformed),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

pub mod jwks;
pub mod verifier;

#[cfg(test)]
mod tests;
