//! People signed in through Entra ID (the Outlook add-in): which Microsoft 365 tenants may
//! sign in to which Ferry tenant, and a valid token turned into a [`Caller`] — the person,
//! recorded at their first sign-in, owns what they upload and share and is the audit actor.
//!
//! A Microsoft 365 tenant is linked by the operator (`ferry tenant link-entra`, trusted
//! like every other CLI command) or through the admin API by a tenant admin who also
//! presents an Entra token of that Microsoft 365 tenant from one of its directory admins:
//! otherwise any Ferry tenant's admin could claim another organisation's people.

use uuid::Uuid;

use super::caller::{Caller, Forbidden, PrincipalKind};
use super::entra::jwks::EntraError;
use super::entra::{EntraUser, TokenError};
use super::role::Role;
use crate::audit::{Actor, AuditEntry, EventKind};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::people::{NewPerson, PersonRow};
use crate::db::{Db, DbError};
use crate::state::AppState;

/// Why a person could not sign in, or a link could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// This server has no Entra sign-in configured (`FERRY_ENTRA_CLIENT_ID`).
    #[error("sign-in with Microsoft 365 is not set up on this server; use an API key")]
    NotConfigured,
    /// The token is not acceptable (the variant says why, for the log).
    #[error("the Microsoft 365 sign-in token is not accepted")]
    Refused(#[source] TokenError),
    /// Entra's signing keys could not be fetched: the token is neither accepted nor refused.
    #[error("Microsoft 365 sign-in cannot be checked right now")]
    Keys(String),
    /// The person's Microsoft 365 tenant is not linked to any Ferry tenant.
    #[error(
        "your Microsoft 365 organisation is not linked to a Ferry tenant; ask your Ferry \
         administrator to link it"
    )]
    NotLinked,
    /// Linking through the API needs a directory admin of the Microsoft 365 tenant.
    #[error(
        "the token must be from a Global, Application or Cloud Application Administrator of \
         the Microsoft 365 tenant to link (and carry the wids claim)"
    )]
    NotDirectoryAdmin,
    /// A sender tried an admin's operation.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// An audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[source] CryptoError),
    /// The database failed (or, linking, the tenant is linked elsewhere: `Conflict`).
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The caller behind an Entra token: the person, in the Ferry tenant their Microsoft 365
/// tenant is linked to, as a sender. Recorded (with a `person.added` event) at their first
/// sign-in; their address is kept up to date.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, SignInError> {
    let user = verified(state, token).await?;
    let (tenant, known) = match state.db.linked_person(user.tenant, user.object_id).await {
        Ok(found) => found,
        Err(DbError::NotFound) => return Err(SignInError::NotLinked),
        Err(other) => return Err(other.into()),
    };
    let person = match known {
        Some(known) => {
            if known.address != user.address {
                state
                    .db
                    .set_person_address(tenant, known.id, user.address.as_deref())
                    .await?;
            }
            known
        }
        None => add_person(state, tenant, &user).await?,
    };
    Ok(Caller {
        tenant_id: tenant,
        principal_id: person.id,
        kind: PrincipalKind::Person,
        role: Role::Sender,
    })
}

/// The person `token` speaks for, by the configured checks.
async fn verified(state: &AppState, token: &str) -> Result<EntraUser, SignInError> {
    let verifier = state.entra.as_deref().ok_or(SignInError::NotConfigured)?;
    match verifier.user(token).await {
        Ok(user) => Ok(user),
        Err(EntraError::Token(refused)) => {
            tracing::info!(reason = %refused, "Entra token refused");
            Err(SignInError::Refused(refused))
        }
        Err(EntraError::Keys { url, reason }) => Err(SignInError::Keys(format!(
            "fetching the signing keys from {url} failed: {reason}"
        ))),
    }
}

/// Records `user` in `tenant` at their first sign-in, with a `person.added` event.
async fn add_person(
    state: &AppState,
    tenant: Uuid,
    user: &EntraUser,
) -> Result<PersonRow, SignInError> {
    let id = Uuid::new_v4();
    let audit = state
        .audit(
            tenant,
            EventKind::PersonAdded,
            Actor::Person(id),
            Some(id),
            serde_json::json!({
                "entra_tenant": user.tenant,
                "object_id": user.object_id,
                "address": user.address,
            }),
        )
        .map_err(SignInError::Crypto)?;
    let new = NewPerson {
        id,
        tenant_id: tenant,
        entra_tenant_id: user.tenant,
        entra_object_id: user.object_id,
        address: user.address.as_deref(),
    };
    Ok(state.db.add_person(&new, &audit).await?)
}

/// Links Microsoft 365 tenant `entra_tenant` to `tenant` for `actor` (with an
/// `entra.linked` event carrying `proof`). `true` if linked now, `false` if it already was;
/// `Db(Conflict)` if another Ferry tenant holds it.
pub async fn link(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    entra_tenant: Uuid,
    actor: Actor,
    proof: serde_json::Value,
) -> Result<bool, SignInError> {
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::EntraLinked,
        actor,
        None,
        serde_json::json!({ "entra_tenant": entra_tenant, "proof": proof }),
    )
    .map_err(SignInError::Crypto)?;
    Ok(db.link_entra(entra_tenant, tenant, &audit).await?)
}

/// Unlinks `entra_tenant` from `tenant`: its people are refused from the next request on
/// (what they uploaded and shared stays, owned by them). `false` if it was not linked there.
pub async fn unlink(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    entra_tenant: Uuid,
    actor: Actor,
) -> Result<bool, SignInError> {
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::EntraUnlinked,
        actor,
        None,
        serde_json::json!({ "entra_tenant": entra_tenant }),
    )
    .map_err(SignInError::Crypto)?;
    Ok(db.unlink_entra(entra_tenant, tenant, &audit).await?)
}

/// The admin API's link: `caller` (an admin of a Ferry tenant) links the Microsoft 365
/// tenant whose directory admin signed `admin_token`. Returns that tenant's id and whether
/// it is linked now.
pub async fn link_as_directory_admin(
    state: &AppState,
    caller: &Caller,
    admin_token: &str,
) -> Result<(Uuid, bool), SignInError> {
    caller.require_admin()?;
    let user = verified(state, admin_token).await?;
    if !user.may_link_tenant() {
        return Err(SignInError::NotDirectoryAdmin);
    }
    let proof = serde_json::json!({
        "directory_admin": user.object_id,
        "address": user.address,
    });
    let now = link(
        &state.db,
        &state.master_key,
        caller.tenant_id,
        user.tenant,
        caller.actor(),
        proof,
    )
    .await?;
    Ok((user.tenant, now))
}

/// The admin API's unlink, for the caller's own tenant.
pub async fn unlink_as_admin(
    state: &AppState,
    caller: &Caller,
    entra_tenant: Uuid,
) -> Result<bool, SignInError> {
    caller.require_admin()?;
    unlink(
        &state.db,
        &state.master_key,
        caller.tenant_id,
        entra_tenant,
        caller.actor(),
    )
    .await
}

/// The Microsoft 365 tenants linked to the caller's tenant (admins only).
pub async fn links(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<crate::db::people::EntraLink>, SignInError> {
    caller.require_admin()?;
    Ok(state.db.entra_links(caller.tenant_id).await?)
}
