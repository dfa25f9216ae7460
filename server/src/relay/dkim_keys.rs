//! Tenants' DKIM keys: made by `ferry relay dkim-keygen` (the private key sealed at once, the
//! public key printed as the DNS record to publish), rotated by making a key under a new
//! selector and activating it once its record is published (`ferry relay dkim-key activate`),
//! removed when retired, and opened by the queue to sign mail from that domain.

use ferry_relay::dkim::{self, Algorithm, DkimError, SigningKey};
use uuid::Uuid;

use crate::audit::{Actor, AuditEntry, EventKind};
use crate::crypto::segment::{Dek, SegmentCipher, open_object, plaintext_len_of, seal_object};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::dkim_keys::{DkimKeyRow, StoredDkimKey};
use crate::db::{Db, DbError};

/// Why a key could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    /// The domain or selector is not a DNS label sequence.
    #[error("{0}")]
    Invalid(&'static str),
    /// Generating or parsing the key failed.
    #[error(transparent)]
    Dkim(#[from] DkimError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A key just made: where and what to publish.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    /// `<selector>._domainkey.<domain>`.
    pub name: String,
    /// The TXT record's text.
    pub record: String,
    /// Whether it signs now (the domain's first key), or waits to be activated.
    pub active: bool,
}

fn is_dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Makes a key for `tenant`'s mail from `domain`, stored sealed (replacing one with the same
/// selector), with its `relay.dkim_key_created` event.
pub async fn generate(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
) -> Result<PublishedKey, DkimKeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_dns_name(&domain) || !is_dns_name(selector) {
        return Err(DkimKeyError::Invalid(
            "domain and selector must be DNS names",
        ));
    }
    let pkcs8 = dkim::generate(algorithm)?;
    let key = SigningKey::from_pkcs8(algorithm, &domain, selector, &pkcs8)?;
    let mut published = PublishedKey {
        name: key.dns_name(),
        record: key.dns_record()?,
        active: false,
    };
    let key_id = Uuid::new_v4();
    let dek = Dek::generate()?;
    let sealed_key = seal_object(&SegmentCipher::new(&dek, key_id)?, &pkcs8)?;
    let wrapped_dek = master.tenant_kek(tenant)?.wrap(&dek, key_id)?;
    let audit = AuditEntry::new(
        master,
        tenant,
        EventKind::DkimKeyCreated,
        Actor::Operator,
        Some(key_id),
        serde_json::json!({
            "domain": domain,
            "selector": selector,
            "algorithm": algorithm.as_str(),
            "record": published.record,
        }),
    )?;
    let stored = StoredDkimKey {
        domain,
        selector: selector.to_owned(),
        algorithm: algorithm.as_str().to_owned(),
        key_id,
        wrapped_dek,
        sealed_key,
    };
    published.active = db.put_dkim_key(tenant, &stored, &audit).await?;
    Ok(published)
}

/// The tenant's keys (never the keys themselves).
pub async fn list(db: &Db, tenant: Uuid) -> Result<Vec<DkimKeyRow>, DkimKeyError> {
    Ok(db.dkim_keys(tenant).await?)
}

/// Makes `selector`'s key sign `domain`'s mail from now on (publish its record first).
pub async fn activate(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
    selector: &str,
) -> Result<(), DkimKeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let audit = key_event(
        master,
        tenant,
        EventKind::DkimKeyActivated,
        &domain,
        selector,
    )?;
    Ok(db
        .activate_dkim_key(tenant, &domain, selector, &audit)
        .await?)
}

/// Deletes `selector`'s key of `domain` (a retired one; if it was the signing key, the
/// domain's previous activated key signs again, or none).
pub async fn remove(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
    selector: &str,
) -> Result<(), DkimKeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let audit = key_event(master, tenant, EventKind::DkimKeyRemoved, &domain, selector)?;
    Ok(db
        .remove_dkim_key(tenant, &domain, selector, &audit)
        .await?)
}

fn key_event(
    master: &MasterKey,
    tenant: Uuid,
    kind: EventKind,
    domain: &str,
    selector: &str,
) -> Result<AuditEntry, DkimKeyError> {
    Ok(AuditEntry::new(
        master,
        tenant,
        kind,
        Actor::Operator,
        None,
        serde_json::json!({ "domain": domain, "selector": selector }),
    )?)
}

/// The key `tenant` signs mail from `domain` with, if it has one.
pub async fn signer_for(
    db: &Db,
    master: &MasterKey,
    tenant: Uuid,
    domain: &str,
) -> Result<Option<SigningKey>, DkimKeyError> {
    let Some(stored) = db
        .dkim_key_for(tenant, &domain.to_ascii_lowercase())
        .await?
    else {
        return Ok(None);
    };
    let algorithm = Algorithm::parse(&stored.algorithm).ok_or(DkimKeyError::Invalid(
        "a stored DKIM key has an unknown algorithm",
    ))?;
    let dek = master
        .tenant_kek(tenant)?
        .unwrap(&stored.wrapped_dek, stored.key_id)?;
    let len = plaintext_len_of(stored.sealed_key.len() as u64).ok_or(CryptoError::Malformed(
        "a sealed DKIM key has an impossible length",
    ))?;
    let pkcs8 = open_object(
        &SegmentCipher::new(&dek, stored.key_id)?,
        &stored.sealed_key,
        len,
    )?;
    Ok(Some(SigningKey::from_pkcs8(
        algorithm,
        &stored.domain,
        &stored.selector,
        &pkcs8,
    )?))
}
