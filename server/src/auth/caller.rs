//! Who is calling and what they may touch: the one ownership rule and the admin rule.

use super::role::Role;

/// The authenticated sender or admin behind a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Tenant the key belongs to; every query is scoped to it.
    pub tenant_id: uuid::Uuid,
    /// The API key used, recorded as owner of what it creates.
    pub key_id: uuid::Uuid,
    /// Its role.
    pub role: Role,
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
    /// The one ownership rule: a sender reaches only what its own key created; a tenant's
    /// admin may also read and delete what any of the tenant's keys created, but appends to
    /// and shares only its own. Returns the creator a row must have (`None`: any creator of
    /// the caller's tenant). Every query of uploads and shares binds it next to the tenant,
    /// so what another key created is `NotFound` (404), exactly like another tenant's.
    pub fn must_have_created(&self, intent: Intent) -> Option<uuid::Uuid> {
        match (self.role, intent) {
            (Role::Admin, Intent::Read | Intent::Delete) => None,
            _ => Some(self.key_id),
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
