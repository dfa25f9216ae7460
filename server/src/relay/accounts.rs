//! Relay accounts as a domain: creating and revoking them (each with its audit event) and
//! checking SMTP AUTH credentials. The CLI and the relay's SMTP listener both go through here.

use uuid::Uuid;

use crate::audit::{Actor, AuditEntry, EventKind};
use crate::auth::secret::{RandomError, mint_relay_account, parse_relay_login};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::{Db, DbError};

/// An account just created; the password is shown once and never stored.
#[derive(Debug, Clone)]
pub struct CreatedRelayAccount {
    /// Its id (in the audit events).
    pub id: Uuid,
    /// SMTP AUTH username.
    pub username: String,
    /// SMTP AUTH password.
    pub password: String,
}

/// Why an account could not be created, revoked or checked.
#[derive(Debug, thiserror::Error)]
pub enum RelayAccountError {
    /// Unknown, malformed, revoked, or a wrong password.
    #[error("invalid relay credentials")]
    Unauthorized,
    /// No randomness for the password.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[source] CryptoError),
    /// The database failed, or (revoking) has no such account.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates an account that relays for `tenant`.
pub async fn create(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    actor: Actor,
) -> Result<CreatedRelayAccount, RelayAccountError> {
    let minted = mint_relay_account()?;
    let id = Uuid::new_v4();
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::RelayAccountCreated,
        actor,
        Some(id),
        serde_json::json!({ "username": minted.username }),
    )
    .map_err(RelayAccountError::Crypto)?;
    db.insert_relay_account(id, tenant, &minted.selector, &minted.secret_hash, &audit)
        .await?;
    Ok(CreatedRelayAccount {
        id,
        username: minted.username,
        password: minted.password,
    })
}

/// Revokes the account with `username`: refused from the next AUTH on. Returns its tenant
/// and whether it was live until now.
pub async fn revoke(
    db: &Db,
    master: &MasterKey,
    username: &str,
    actor: Actor,
) -> Result<(Uuid, bool), RelayAccountError> {
    let selector = username
        .strip_prefix(crate::auth::secret::RELAY_USER_PREFIX)
        .ok_or(RelayAccountError::Db(DbError::NotFound))?;
    let (id, tenant) = db.relay_account_id(selector).await?;
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::RelayAccountRevoked,
        actor,
        Some(id),
        serde_json::json!({ "username": username }),
    )
    .map_err(RelayAccountError::Crypto)?;
    let now = db.revoke_relay_account(id, &audit).await?;
    Ok((tenant, now))
}

/// The tenant whose account these credentials are; a database failure is not a refusal.
pub async fn authenticate(
    db: &Db,
    username: &str,
    password: &str,
) -> Result<Uuid, RelayAccountError> {
    let presented = parse_relay_login(username, password).ok_or(RelayAccountError::Unauthorized)?;
    let account = match db.relay_account_by_selector(presented.selector).await {
        Ok(account) => account,
        Err(DbError::NotFound) => return Err(RelayAccountError::Unauthorized),
        Err(other) => return Err(other.into()),
    };
    if !presented.matches(&account.secret_hash) {
        return Err(RelayAccountError::Unauthorized);
    }
    Ok(account.tenant_id)
}
