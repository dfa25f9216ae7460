//! Who is calling and what they may touch: the one ownership rule and the admin rule.

use super::role::Role;
use crate::audit::Actor;

/// The authenticated sender or admin behind a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Tenant the key or person belongs to; every query is scoped to it.
    pub tenant_id: uuid::Uuid,
    /// The principal acting: an API key's id, or a signed-in person's. Recorded as the owner
    /// of what it creates.
    pub principal_id: uuid::Uuid,
    /// Which kind of principal, for the audit log.
    pub kind: PrincipalKind,
    /// Its role.
    pub role: Role,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A Ferry API key (`fk_…`).
    ApiKey,
    /// A person signed in through Entra ID (the Outlook add-in).
    Person,
}

impl Caller {
    /// Who the audit log names for what this caller does.
    pub fn actor(&self) -> Actor {
        match self.kind {
            PrincipalKind::ApiKey => Actor::Key(self.principal_id),
            PrincipalKind::Person => Actor::Person(self.principal_id),
        }
    }
}

/// What a caller means to do with something a sender created (an upload, a file, a share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Look at it: HEAD, the file's status, a share's details.
    Read,
    /// Delete or revoke it.
    Delete,
    /// Add to it or hand it out: PATCH, sharing a file.
    Write,
}

impl Caller {
    /// The one ownership rule: a sender reaches only what it created itself (its key, or the
    /// signed-in person); a tenant's admin may also read and delete what anyone of the tenant
    /// created, but appends to and shares only its own. Returns the creator a row must have
    /// (`None`: any creator of the caller's tenant). Every query of uploads and shares binds
    /// it next to the tenant, so what another principal created is `NotFound` (404), exactly
    /// like another tenant's.
    pub fn must_have_created(&self, intent: Intent) -> Option<uuid::Uuid> {
        match (self.role, intent) {
            (Role::Admin, Intent::Read | Intent::Delete) => None,
            _ => Some(self.principal_id),
        }
    }
}

/// Refusal of an admin-only operation to a sender key (403: the key is valid, its role is
/// not enough).
#[derive(Debug, thiserror::Error)]
#[error("this needs an admin key")]
pub struct Forbidden;

impl Caller {
    /// Admin-only operations (policy, the tenant's file list, the audit log) call this first.
    pub fn require_admin(&self) -> Result<(), Forbidden> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Sender => Err(Forbidden),
        }
    }
}
