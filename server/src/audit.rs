//! The audit log: what happened to a tenant's files and links, as facts a tenant can prove.
//!
//! Events form one chain per tenant: each carries the hash of the one before, and its own hash
//! is a keyed BLAKE3 (the tenant's [`AuditKey`], derived from the master key) over every column
//! of the row. Changing any column of any row, removing a row or inserting one breaks the chain
//! at that row, and [`ChainVerifier`] names it. An event is written in the same transaction as
//! the change it records wherever the change is a database write (a share created, a key
//! shredded), so the log and the data never disagree.
//!
//! What is recorded: transport and access facts (who, when, which file or link, bytes, IP and
//! user agent of a recipient). Never mail contents, share notes or link tokens.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{AuditKey, CryptoError, MasterKey};
use crate::db::{Db, DbError};

/// Events read per query while verifying or exporting a chain.
pub const PAGE: u32 = 1000;

/// Why a chain could not be checked (as opposed to being broken).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The chain key could not be derived.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Verifies tenant `tenant_id`'s whole chain: `Ok(Ok(n))` with `n` events intact, or
/// `Ok(Err(..))` naming the first event that does not verify.
pub async fn verify_tenant(
    db: &Db,
    master: &MasterKey,
    tenant_id: Uuid,
) -> Result<Result<i64, BrokenChain>, VerifyError> {
    let mut verifier = ChainVerifier::new(tenant_id, master.audit_key(tenant_id)?);
    let mut after = 0;
    loop {
        let page = db.audit_events(tenant_id, after, None, None, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for event in &page {
            if let Err(broken) = verifier.check(event) {
                return Ok(Err(broken));
            }
        }
    }
    Ok(verifier.finish(db.audit_head(tenant_id).await?))
}

/// The `prev_hash` of a tenant's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// Domain separation for the hashed bytes of an event (format version 1).
const EVENT_DOMAIN: &[u8] = b"ferry/v1/audit-event";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A tus upload was created.
    UploadCreated,
    /// An upload's last byte was stored: it is a file now.
    UploadCompleted,
    /// Its sender terminated an upload (key shredded).
    UploadTerminated,
    /// An unfinished upload was abandoned for 24 h and destroyed by the expiry job.
    UploadExpired,
    /// A share (link) was created.
    ShareCreated,
    /// A share was revoked.
    ShareRevoked,
    /// A share reached its expiry.
    ShareExpired,
    /// A recipient got a link of their own to a share (by the sender, or by the relay for
    /// their copy of a message); the link id and recipient are in the details.
    ShareLinkCreated,
    /// A recipient's link was revoked: it answers 410 from then on, the others still work.
    ShareLinkRevoked,
    /// A recipient opened a share's page (never a download: mail scanners prefetch links).
    PageOpened,
    /// A recipient was served file bytes.
    Download,
    /// A file's last share ended (or it never got one): key shredded, object deleted.
    FileExpired,
    /// An admin changed the tenant's policy.
    PolicyChanged,
    /// An admin changed how the tenant appears on recipients' pages.
    BrandingChanged,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked: refused from then on.
    KeyRevoked,
    /// A person signed in through Entra ID for the first time (their tenant, object id and
    /// address are in the details, so the chain itself says who `person:<id>` is).
    PersonAdded,
    /// A Microsoft 365 tenant was linked: its people may sign in to this tenant.
    EntraLinked,
    /// A Microsoft 365 tenant was unlinked: its people are refused from then on.
    EntraUnlinked,
    /// SMTP AUTH credentials for the tenant's mail server were created.
    RelayAccountCreated,
    /// Relay credentials were revoked: AUTH with them fails from then on.
    RelayAccountRevoked,
    /// The relay queued a message from the tenant's mail server (envelope, size; never the
    /// content).
    RelayAccepted,
    /// One recipient, one delivery attempt: the proof record (RELAY.md).
    RelayDelivery,
    /// A DKIM key was made for one of the tenant's domains (its public record in the
    /// details).
    DkimKeyCreated,
    /// A DKIM key signs the domain's mail from now on (rotation).
    DkimKeyActivated,
    /// A DKIM key was deleted.
    DkimKeyRemoved,
    /// The tenant's mail server may relay mail from a domain (envelope sender) from now on.
    RelayDomainAdded,
    /// A domain was removed: the relay refuses its senders from now on.
    RelayDomainRemoved,
}

impl EventKind {
    /// The stable name stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UploadCreated => "upload.created",
            EventKind::UploadCompleted => "upload.completed",
            EventKind::UploadTerminated => "upload.terminated",
            EventKind::UploadExpired => "upload.expired",
            EventKind::ShareCreated => "share.created",
            EventKind::ShareRevoked => "share.revoked",
            EventKind::ShareExpired => "share.expired",
            EventKind::ShareLinkCreated => "share_link.created",
            EventKind::ShareLinkRevoked => "share_link.revoked",
            EventKind::PageOpened => "page.opened",
            EventKind::Download => "file.downloaded",
            EventKind::FileExpired => "file.expired",
            EventKind::PolicyChanged => "policy.changed",
            EventKind::BrandingChanged => "branding.changed",
            EventKind::KeyCreated => "key.created",
            EventKind::KeyRevoked => "key.revoked",
            EventKind::PersonAdded => "person.added",
            EventKind::EntraLinked => "entra.linked",
            EventKind::EntraUnlinked => "entra.unlinked",
            EventKind::RelayAccountCreated => "relay_account.created",
            EventKind::RelayAccountRevoked => "relay_account.revoked",
            EventKind::RelayAccepted => "relay.accepted",
            EventKind::RelayDelivery => "relay.delivery",
            EventKind::DkimKeyCreated => "relay.dkim_key_created",
            EventKind::DkimKeyActivated => "relay.dkim_key_activated",
            EventKind::DkimKeyRemoved => "relay.dkim_key_removed",
            EventKind::RelayDomainAdded => "relay.domain_added",
            EventKind::RelayDomainRemoved => "relay.domain_removed",
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A sender or admin, by API key id.
    Key(Uuid),
    /// A person signed in through Entra ID, by principal id (`principals` holds their
    /// Microsoft 365 tenant, object id and address; a `person.added` event records them).
    Person(Uuid),
    /// Someone holding a link (a recipient, or whoever they forwarded it to).
    Recipient,
    /// Ferry itself (the expiry job).
    System,
    /// The operator, through the `ferry` command line.
    Operator,
}

impl Actor {
    /// The stored form: `key:<uuid>`, `person:<uuid>`, `recipient`, `system`, `operator`.
    pub fn label(self) -> String {
        match self {
            Actor::Key(id) => format!("key:{id}"),
            Actor::Person(id) => format!("person:{id}"),
            Actor::Recipient => "recipient".into(),
            Actor::System => "system".into(),
            Actor::Operator => "operator".into(),
        }
    }
}

/// An event to append, with the key its hash is made with.
#[derive(Debug)]
pub struct AuditEntry {
    /// The tenant whose chain it joins.
    pub tenant_id: Uuid,
    /// What happened.
    pub kind: EventKind,
    /// Who caused it.
    pub actor: Actor,
    /// The upload, file, share or key it concerns.
    pub subject: Option<Uuid>,
    /// Facts specific to the kind, as a JSON object.
    pub details: serde_json::Value,
    /// The tenant's chain key.
    pub key: AuditKey,
}

impl AuditEntry {
    /// An entry for `tenant_id`'s chain, keyed from `master`.
    pub fn new(
        master: &MasterKey,
        tenant_id: Uuid,
        kind: EventKind,
        actor: Actor,
        subject: Option<Uuid>,
        details: serde_json::Value,
    ) -> Result<AuditEntry, CryptoError> {
        Ok(AuditEntry {
            tenant_id,
            kind,
            actor,
            subject,
            details,
            key: master.audit_key(tenant_id)?,
        })
    }
}

/// An event as stored: every column, exactly as the hash covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// Event id.
    pub id: Uuid,
    /// When it was recorded.
    pub at: OffsetDateTime,
    /// [`EventKind::as_str`].
    pub kind: String,
    /// [`Actor::label`].
    pub actor: String,
    /// What it concerns.
    pub subject: Option<Uuid>,
    /// The JSON object, as text.
    pub details: String,
    /// The previous event's hash ([`GENESIS`] for the first).
    pub prev_hash: Vec<u8>,
    /// This event's hash.
    pub hash: Vec<u8>,
}

fn put_text(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

/// The hash of an event given its previous event's hash: keyed BLAKE3 over a length-prefixed,
/// fixed-order encoding of every column but `hash` (times as microseconds since the epoch,
/// which is how they are stored).
pub fn event_hash(key: &AuditKey, event: &StoredEvent) -> [u8; 32] {
    let mut hasher = key.hasher();
    hasher.update(EVENT_DOMAIN);
    hasher.update(&(event.prev_hash.len() as u64).to_be_bytes());
    hasher.update(&event.prev_hash);
    hasher.update(event.tenant_id.as_bytes());
    hasher.update(&event.seq.to_be_bytes());
    hasher.update(event.id.as_bytes());
    let micros = event.at.unix_timestamp_nanos().div_euclid(1_000);
    hasher.update(&micros.to_be_bytes());
    put_text(&mut hasher, &event.kind);
    put_text(&mut hasher, &event.actor);
    match event.subject {
        Some(subject) => {
            hasher.update(&[1]);
            hasher.update(subject.as_bytes());
        }
        None => {
            hasher.update(&[0]);
        }
    }
    put_text(&mut hasher, &event.details);
    *hasher.finalize().as_bytes()
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain of tenant {tenant_id} broken at seq {seq} (event {event_id:?}): {reason}")]
pub struct BrokenChain {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The first event that does not verify (or the seq expected where one is missing).
    pub seq: i64,
    /// That event's id, if the event exists.
    pub event_id: Option<Uuid>,
    /// What does not match.
    pub reason: String,
}

/// Checks one tenant's events, fed in `seq` order, against the chain rules.
pub struct ChainVerifier {
    tenant_id: Uuid,
    key: AuditKey,
    last_seq: i64,
    last_hash: Vec<u8>,
}

impl ChainVerifier {
    /// A verifier for `tenant_id`'s chain, from its first event.
    pub fn new(tenant_id: Uuid, key: AuditKey) -> ChainVerifier {
        ChainVerifier {
            tenant_id,
            key,
            last_seq: 0,
            last_hash: GENESIS.to_vec(),
        }
    }

    fn broken(&self, seq: i64, event_id: Option<Uuid>, reason: impl Into<String>) -> BrokenChain {
        BrokenChain {
            tenant_id: self.tenant_id,
            seq,
            event_id,
            reason: reason.into(),
        }
    }

    /// Checks the next event: its position, its link to the previous one, its own hash.
    pub fn check(&mut self, event: &StoredEvent) -> Result<(), BrokenChain> {
        let expected = self.last_seq + 1;
        if event.tenant_id != self.tenant_id {
            return Err(self.broken(event.seq, Some(event.id), "belongs to another tenant"));
        }
        if event.seq != expected {
            return Err(self.broken(
                expected,
                None,
                format!("event {expected} is missing (next stored is {})", event.seq),
            ));
        }
        if event.prev_hash != self.last_hash {
            return Err(self.broken(
                event.seq,
                Some(event.id),
                "prev_hash is not the previous event's hash",
            ));
        }
        if event.hash.as_slice() != event_hash(&self.key, event) {
            return Err(self.broken(
                event.seq,
                Some(event.id),
                "hash does not match the event's contents",
            ));
        }
        self.last_seq = event.seq;
        self.last_hash.clone_from(&event.hash);
        Ok(())
    }

    /// Ends the check against the chain's recorded head (`None`: no event was ever recorded);
    /// returns how many events verified. Catches events cut from the end.
    pub fn finish(self, head: Option<(i64, Vec<u8>)>) -> Result<i64, BrokenChain> {
        let (seq, hash) = head.unwrap_or((0, GENESIS.to_vec()));
        if seq != self.last_seq {
            return Err(self.broken(
                self.last_seq + 1,
                None,
                format!(
                    "the chain ends at {} but its head records {seq} events",
                    self.last_seq
                ),
            ));
        }
        if hash != self.last_hash {
            return Err(self.broken(seq, None, "the head's hash is not the last event's hash"));
        }
        Ok(self.last_seq)
    }
}

/// An event as the admin API exports it (one JSON line each).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedEvent {
    /// Position in the tenant's chain.
    pub seq: i64,
    /// Event id.
    pub id: Uuid,
    /// When it was recorded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// What it concerns.
    pub subject: Option<Uuid>,
    /// Kind-specific facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hex of the previous event's hash.
    pub prev_hash: String,
    /// Hex of this event's hash.
    pub hash: String,
}

impl From<StoredEvent> for ExportedEvent {
    fn from(e: StoredEvent) -> Self {
        let details = serde_json::from_str(&e.details)
            .unwrap_or_else(|_| serde_json::Value::String(e.details.clone()));
        ExportedEvent {
            seq: e.seq,
            id: e.id,
            at: e.at,
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            details,
            prev_hash: hex(&e.prev_hash),
            hash: hex(&e.hash),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests;
