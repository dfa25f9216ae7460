//! The domains a tenant's mail server may send from: the relay takes MAIL FROM only in one of
//! them (or the null sender of a bounce), so relay credentials cannot be used to send as
//! anyone else, and a domain relays for one tenant only. The CLI and the listener both go
//! through here.

use uuid::Uuid;

use crate::audit::{Actor, AuditEntry, EventKind};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::{Db, DbError};

/// Why a domain could not be added, removed or checked.
#[derive(Debug, thiserror::Error)]
pub enum RelayDomainError {
    /// Not a domain name.
    #[error("{0:?} is not a domain name")]
    Invalid(String),
    /// The audit event could not be keyed.
    #[error("the audit event could not be keyed")]
    Crypto(#[from] CryptoError),
    /// The database failed; another tenant has the domain (`Conflict`); the tenant does not
    /// have it (`NotFound`, removing).
    #[error(transparent)]
    Db(#[from] DbError),
}

/// `domain` in the form kept and compared: lower case, no trailing dot; `None` when it is no
/// host name (labels of letters, digits and inner hyphens, at least two of them).
pub fn normalize(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    crate::policy::valid_domain(&domain).then_some(domain)
}

/// Lets `tenant`'s mail server send from `domain`. `Ok(false)` when it already could.
pub async fn add(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
    actor: Actor,
) -> Result<bool, RelayDomainError> {
    let domain = normalize(domain).ok_or_else(|| RelayDomainError::Invalid(domain.to_owned()))?;
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::RelayDomainAdded,
        actor,
        None,
        serde_json::json!({ "domain": domain }),
    )?;
    Ok(db.add_relay_domain(tenant, &domain, &audit).await?)
}

/// Stops `tenant`'s mail server sending from `domain`.
pub async fn remove(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
    actor: Actor,
) -> Result<(), RelayDomainError> {
    let domain = normalize(domain).ok_or_else(|| RelayDomainError::Invalid(domain.to_owned()))?;
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::RelayDomainRemoved,
        actor,
        None,
        serde_json::json!({ "domain": domain }),
    )?;
    Ok(db.remove_relay_domain(tenant, &domain, &audit).await?)
}

/// The tenant's domains, sorted.
pub async fn list(db: &Db, tenant: Uuid) -> Result<Vec<String>, RelayDomainError> {
    Ok(db.relay_domains(tenant).await?)
}

/// Whether `tenant` may use `sender` as the envelope sender: the null sender (a bounce), or
/// an address in one of its domains (exactly: a subdomain is another domain).
pub async fn may_send_as(db: &Db, tenant: Uuid, sender: &str) -> Result<bool, RelayDomainError> {
    if sender.is_empty() {
        return Ok(true);
    }
    Ok(owner_of(db, sender).await? == Some(tenant))
}

/// The tenant whose domain `sender`'s is, if any.
pub async fn owner_of(db: &Db, sender: &str) -> Result<Option<Uuid>, RelayDomainError> {
    let Some(domain) = sender.rsplit_once('@').and_then(|(_, d)| normalize(d)) else {
        return Ok(None);
    };
    Ok(db.relay_domain_owner(&domain).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_kept_in_one_form_and_non_names_refused() {
        assert_eq!(
            normalize(" Hospital.Example. ").as_deref(),
            Some("hospital.example")
        );
        assert_eq!(normalize("a-b.c1.eu").as_deref(), Some("a-b.c1.eu"));
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.b",
            "a-.b",
            "a b.c",
            "a_b.c",
            "*.a.b",
            "a@b.c",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert_eq!(normalize(&format!("{}.eu", "a".repeat(64))), None);
    }
}
