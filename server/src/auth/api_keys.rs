//! API keys as a domain: creating and revoking them (each with its audit event, in the same
//! transaction) and turning a presented key into a [`Caller`]. The CLI, the HTTP edge and the
//! tests all go through here, so a key never exists without its `key.created` event.

use uuid::Uuid;

use super::caller::{Caller, PrincipalKind};
use super::role::Role;
use super::secret::{RandomError, mint_api_key, parse_api_key};
use crate::audit::{Actor, AuditEntry, EventKind};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::{Db, DbError};
use crate::state::AppState;

/// A key just created: its id and the secret text, shown once and never stored.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The key's id (recorded as the owner of what it creates; names it for revocation).
    pub id: Uuid,
    /// `fk_…`: the bearer secret.
    pub text: String,
}

/// Why a key could not be created, revoked or checked.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// No key is presented, it is malformed, unknown, revoked, or its secret is wrong.
    #[error("a valid API key is required")]
    Unauthorized,
    /// No randomness for the secret.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[source] CryptoError),
    /// The database failed, or (revoking) has no key with this id.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates a key of `role` for `tenant`, recorded as made by `actor`.
pub async fn create(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    role: Role,
    actor: Actor,
) -> Result<CreatedApiKey, ApiKeyError> {
    let key = mint_api_key()?;
    let id = Uuid::new_v4();
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::KeyCreated,
        actor,
        Some(id),
        serde_json::json!({ "role": role.as_str() }),
    )
    .map_err(ApiKeyError::Crypto)?;
    db.insert_api_key(id, tenant, role, &key.selector, &key.secret_hash, &audit)
        .await?;
    Ok(CreatedApiKey { id, text: key.text })
}

/// What revoking a key found.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    /// The key's tenant.
    pub tenant: Uuid,
    /// `false` when the key was already revoked (nothing changed, no event).
    pub now: bool,
}

/// Revokes key `id` at once: requests with it are refused from the next one on.
pub async fn revoke(
    db: &Db,
    master: &MasterKey,
    id: Uuid,
    actor: Actor,
) -> Result<Revoked, ApiKeyError> {
    let tenant = db.api_key_tenant(id).await?;
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::KeyRevoked,
        actor,
        Some(id),
        serde_json::json!({}),
    )
    .map_err(ApiKeyError::Crypto)?;
    let now = db.revoke_api_key(id, &audit).await?;
    Ok(Revoked { tenant, now })
}

/// The caller behind a presented bearer secret; a database failure is not a refusal.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Caller, ApiKeyError> {
    let presented = parse_api_key(presented.trim()).ok_or(ApiKeyError::Unauthorized)?;
    let key = match state.db.api_key_by_selector(presented.selector).await {
        Ok(key) => key,
        Err(DbError::NotFound) => return Err(ApiKeyError::Unauthorized),
        Err(other) => return Err(other.into()),
    };
    if !presented.matches(&key.secret_hash) {
        return Err(ApiKeyError::Unauthorized);
    }
    Ok(Caller {
        tenant_id: key.tenant_id,
        principal_id: key.id,
        kind: PrincipalKind::ApiKey,
        role: key.role,
    })
}
