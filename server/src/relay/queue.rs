//! The relay's queue as a domain: taking a message durably (sealed body in the store, its key
//! wrapped by the tenant's, rows and audit event in one transaction — only then does the
//! client hear 250), and working the queue: claim due recipients, deliver per message and
//! domain, record every attempt's proof in the tenant's audit chain, retry with backoff until
//! the hold window ends, shred the key when no recipient is left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_relay::deliver::{Message, Method, Outbound, ProofRecord, RecipientStatus};
use ferry_relay::dns::Resolver;
use ferry_relay::dsn;
use ferry_relay::links::{find_tokens, rewrite};
use ferry_relay::mta_sts::discover::PolicyCache;
use ferry_relay::smtp::server::{Received, Refusal};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, AuditEntry, EventKind};
use crate::crypto::segment::{
    Dek, SegmentCipher, open_object, plaintext_len_of, seal_object, stored_len,
};
use crate::crypto::{CryptoError, MasterKey};
use crate::db::relay_queue::{ClaimedRecipient, NewRelayMessage, RecipientState};
use crate::db::{Db, DbError};
use crate::shares::ShareError;
use crate::shares::links::{Relink, relink_for_recipient};
use crate::store::{ObjectStore, StoreError, WriteFrom};

/// Why the queue could not do something.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Sealing, wrapping or keying an audit event failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A blocking store task died.
    #[error("a store task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The tenant's DKIM key could not be opened.
    #[error(transparent)]
    Dkim(#[from] super::dkim_keys::DkimKeyError),
    /// A recipient's link could not be minted.
    #[error("a recipient link: {0}")]
    Link(#[from] ShareError),
    /// The message itself is unacceptable (not worth retrying).
    #[error("{0}")]
    Unacceptable(&'static str),
}

/// Longest Message-ID kept (RFC 5322 lines are at most 998 octets).
const MAX_MESSAGE_ID: usize = 998;

/// The queue: where messages wait, and the rules for retrying them.
#[derive(Clone)]
pub struct RelayQueue {
    /// Rows and claims.
    pub db: Db,
    /// Sealed bodies.
    pub store: Arc<dyn ObjectStore>,
    /// Wraps each message's key; keys the audit events.
    pub master: Arc<MasterKey>,
    /// How long an undeliverable recipient is retried before its DSN, unless the tenant's
    /// policy says (`relay_hold_hours`).
    pub hold: Duration,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub retry_base: Duration,
    /// This relay's host name (in Message-IDs it adds).
    pub hostname: String,
    /// `<public URL>/d/`: share links of this deployment start so; each recipient's copy
    /// gets their own. `None`: messages go out as they came.
    pub link_prefix: Option<String>,
}

/// What a recipient who is not on a share finds in place of its token: a link that works for
/// no one (the recipients' page says it is unknown and to ask the sender).
const WITHHELD: &str = "withheld";

impl RelayQueue {
    /// Queues `received` for `tenant`; the queue id once it is durable.
    ///
    /// # Errors
    /// A temporary [`Refusal`] when anything fails (the client retries later; nothing
    /// acknowledged is lost).
    pub async fn enqueue(&self, tenant: Uuid, received: Received) -> Result<String, Refusal> {
        self.try_enqueue(tenant, received)
            .await
            .map_err(|e| match e {
                QueueError::Unacceptable(why) => Refusal::Permanent(why.to_owned()),
                other => {
                    tracing::warn!(error = %other, %tenant, "queueing a relayed message failed");
                    Refusal::Temporary("the queue is unavailable".to_owned())
                }
            })
    }

    async fn try_enqueue(&self, tenant: Uuid, received: Received) -> Result<String, QueueError> {
        let origin = received.peer.to_string();
        self.queue(
            tenant,
            &received.from,
            &received.recipients,
            received.body,
            &origin,
        )
        .await
    }

    /// Seals and stores `body`, then commits the rows and the `relay.accepted` event;
    /// `origin` says where it came from (the client's address, or the relay itself).
    async fn queue(
        &self,
        tenant: Uuid,
        from: &str,
        to: &[String],
        body: Vec<u8>,
        origin: &str,
    ) -> Result<String, QueueError> {
        let id = Uuid::new_v4();
        let (message_id, body) = with_message_id(body, &self.hostname, id);
        if message_id.len() > MAX_MESSAGE_ID {
            return Err(QueueError::Unacceptable(
                "the Message-ID header is too long",
            ));
        }
        let dek = Dek::generate()?;
        let sealed = seal_object(&SegmentCipher::new(&dek, id)?, &body)?;
        let wrapped = self.master.tenant_kek(tenant)?.wrap(&dek, id)?;
        let store = Arc::clone(&self.store);
        let size = body.len() as u64;
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut writer = store.open_writer(
                id,
                WriteFrom {
                    stored_offset: 0,
                    max_plaintext_len: size,
                    state: None,
                },
            )?;
            writer.append(&sealed)?;
            writer.finish()
        })
        .await??;
        let recipients: Vec<(String, String)> =
            to.iter().map(|r| (r.clone(), domain_of(r))).collect();
        let now = OffsetDateTime::now_utc();
        // The tenant's hold window, else the deployment's.
        let hold = match self.db.policy(tenant).await?.relay_hold_hours {
            Some(hours) => Duration::from_secs(u64::from(hours) * 3600),
            None => self.hold,
        };
        let audit = AuditEntry::new(
            &self.master,
            tenant,
            EventKind::RelayAccepted,
            Actor::System,
            Some(id),
            serde_json::json!({
                "message_id": message_id,
                "envelope_from": from,
                "recipients": to,
                "size": size,
                "client": origin,
            }),
        )?;
        let added = self
            .db
            .enqueue_relay_message(
                &NewRelayMessage {
                    id,
                    tenant_id: tenant,
                    message_id: &message_id,
                    envelope_from: from,
                    size,
                    wrapped_dek: &wrapped,
                    received_at: now,
                    hold_until: now + hold,
                    recipients: &recipients,
                },
                &audit,
            )
            .await?;
        if added == 0 {
            // Every recipient already has this Message-ID queued: a resubmission.
            let store = Arc::clone(&self.store);
            let _ = tokio::task::spawn_blocking(move || store.delete(id)).await;
        }
        Ok(id.to_string())
    }

    /// One pass: claims up to `limit` due recipients for `claimant` and works them. Returns
    /// how many recipients it recorded an attempt for.
    ///
    /// # Errors
    /// Claiming failed; a failure with one message is logged and left to the next pass.
    pub async fn work<R: Resolver, C: PolicyCache>(
        &self,
        outbound: &Outbound<R, C>,
        claimant: &str,
        limit: u32,
    ) -> Result<usize, QueueError> {
        let now = OffsetDateTime::now_utc();
        let claims = self
            .db
            .claim_relay_work(now, now + time::Duration::minutes(10), claimant, limit)
            .await?;
        let mut groups: BTreeMap<(Uuid, Uuid, String), Vec<ClaimedRecipient>> = BTreeMap::new();
        for claim in claims {
            groups
                .entry((claim.tenant_id, claim.queue_id, claim.domain.clone()))
                .or_default()
                .push(claim);
        }
        let mut recorded = 0;
        for ((tenant, queue_id, domain), claims) in groups {
            match self
                .deliver_group(outbound, claimant, tenant, queue_id, &domain, &claims)
                .await
            {
                Ok(n) => recorded += n,
                Err(e) => {
                    tracing::warn!(error = %e, %queue_id, domain, "a relay delivery failed; the claim runs out and it is retried");
                }
            }
        }
        Ok(recorded)
    }

    async fn deliver_group<R: Resolver, C: PolicyCache>(
        &self,
        outbound: &Outbound<R, C>,
        claimant: &str,
        tenant: Uuid,
        queue_id: Uuid,
        domain: &str,
        claims: &[ClaimedRecipient],
    ) -> Result<usize, QueueError> {
        let message = self.db.relay_message(tenant, queue_id).await?;
        let Some(wrapped) = message.wrapped_dek.as_deref() else {
            return Ok(0);
        };
        let dek = self.master.tenant_kek(tenant)?.unwrap(wrapped, queue_id)?;
        let store = Arc::clone(&self.store);
        let stored = stored_len(message.size);
        let object = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StoreError> {
            let mut reader = store.open_reader(queue_id, 0..stored)?;
            let mut buf = vec![0u8; usize::try_from(stored).unwrap_or(usize::MAX)];
            reader.read_exact_at(0, &mut buf)?;
            Ok(buf)
        })
        .await??;
        let body = open_object(&SegmentCipher::new(&dek, queue_id)?, &object, message.size)?;
        let copies = self
            .copies(claimant, tenant, queue_id, &dek, body, claims)
            .await?;
        let now = OffsetDateTime::now_utc();
        let mut recorded = 0;
        let mut failures = Vec::new();
        let queue_text = queue_id.to_string();
        for (group, body) in copies {
            // Signed now, per attempt and per copy: the bytes signed are the bytes sent (and
            // hashed in the proof).
            let (body, dkim) = self.sign(tenant, &message.envelope_from, body).await?;
            let recipients: Vec<String> = group.iter().map(|c| c.recipient.clone()).collect();
            let records = outbound
                .deliver(
                    domain,
                    &Message {
                        queue_id: &queue_text,
                        message_id: &message.message_id,
                        from: &message.envelope_from,
                        recipients: &recipients,
                        body: &body,
                    },
                )
                .await;
            for claim in group {
                let mine: Vec<&ProofRecord> = records
                    .iter()
                    .filter(|r| r.envelope_to == claim.recipient)
                    .collect();
                let Some(last) = mine.last() else { continue };
                let (state, error) = match &last.outcome {
                    RecipientStatus::Delivered => (RecipientState::Delivered, None),
                    RecipientStatus::Bounced(why) => (RecipientState::Bounced, Some(why.as_str())),
                    RecipientStatus::Deferred(why) if now >= message.hold_until => {
                        (RecipientState::Expired, Some(why.as_str()))
                    }
                    RecipientStatus::Deferred(why) => (
                        RecipientState::Retry(now + self.backoff(claim.attempts)),
                        Some(why.as_str()),
                    ),
                };
                let audit = mine
                    .iter()
                    .map(|record| {
                        let mut details = serde_json::to_value(record).unwrap_or_default();
                        if let (Some(object), Some(dkim)) = (details.as_object_mut(), &dkim) {
                            object.insert("dkim".to_owned(), dkim.clone());
                        }
                        AuditEntry::new(
                            &self.master,
                            tenant,
                            EventKind::RelayDelivery,
                            Actor::System,
                            Some(queue_id),
                            details,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let method = (state == RecipientState::Delivered)
                    .then(|| last.method.map(method_name))
                    .flatten();
                if self
                    .db
                    .record_relay_attempt(claim, claimant, state, error, method, &audit)
                    .await?
                {
                    recorded += 1;
                    if let Some(failure) = failure_of(&claim.recipient, state, error) {
                        failures.push(failure);
                    }
                }
            }
        }
        // The sender hears of every recipient given up on; a report itself (null sender)
        // never gets one.
        if !failures.is_empty() && !message.envelope_from.is_empty() {
            let token = Uuid::new_v4().simple().to_string();
            let report = dsn::build(&dsn::Report {
                hostname: &self.hostname,
                to: &message.envelope_from,
                message_id: &message.message_id,
                arrived: message.received_at,
                now,
                token: &token,
                failures: &failures,
            });
            let to = [message.envelope_from.clone()];
            let report_id = self
                .queue(tenant, "", &to, report, "relay (delivery status report)")
                .await?;
            tracing::info!(%queue_id, report = %report_id, failed = failures.len(), "queued a delivery status report to the sender");
        }
        if self
            .db
            .shred_finished_relay_message(tenant, queue_id)
            .await?
        {
            let store = Arc::clone(&self.store);
            if let Err(e) = tokio::task::spawn_blocking(move || store.delete(queue_id)).await? {
                tracing::warn!(error = %e, %queue_id, "deleting a delivered message's object failed (its key is shredded)");
            }
        }
        Ok(recorded)
    }

    /// The copies to send to one domain: the message as it is to all of `claims` when it
    /// carries no share link of this deployment; otherwise one copy per recipient, each share
    /// link in it replaced by that recipient's own (or by a dead one when they are not on the
    /// share). A recipient whose claim was lost meanwhile gets no copy.
    async fn copies<'c>(
        &self,
        claimant: &str,
        tenant: Uuid,
        queue_id: Uuid,
        dek: &Dek,
        body: Vec<u8>,
        claims: &'c [ClaimedRecipient],
    ) -> Result<Vec<(Vec<&'c ClaimedRecipient>, Vec<u8>)>, QueueError> {
        let Some(prefix) = self.link_prefix.as_deref() else {
            return Ok(vec![(claims.iter().collect(), body)]);
        };
        let tokens = find_tokens(&body, prefix);
        if tokens.is_empty() {
            return Ok(vec![(claims.iter().collect(), body)]);
        }
        let mut copies = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(relinks) = self
                .relinks(claimant, tenant, queue_id, dek, &tokens, claim)
                .await?
            else {
                continue;
            };
            let copy = rewrite(&body, prefix, &|token| match relinks.get(token) {
                Some(Relink::Own(own)) => Some(own.clone()),
                Some(Relink::Withheld) => Some(WITHHELD.to_owned()),
                Some(Relink::Untouched) | None => None,
            });
            copies.push((vec![claim], copy));
        }
        Ok(copies)
    }

    /// What `claim`'s copy carries in place of each of `tokens`: decided (and links minted)
    /// at the first attempt and kept sealed under the message's key, so retries send the
    /// same links. `None` when the claim was lost before they could be kept.
    async fn relinks(
        &self,
        claimant: &str,
        tenant: Uuid,
        queue_id: Uuid,
        dek: &Dek,
        tokens: &BTreeSet<String>,
        claim: &ClaimedRecipient,
    ) -> Result<Option<BTreeMap<String, Relink>>, QueueError> {
        let cipher = SegmentCipher::new(dek, links_object_id(queue_id, &claim.recipient))?;
        if let Some(sealed) = &claim.sealed_links {
            let len = plaintext_len_of(sealed.len() as u64)
                .ok_or(QueueError::Unacceptable("kept links are unreadable"))?;
            let json = open_object(&cipher, sealed, len)?;
            let kept: BTreeMap<String, Relink> = serde_json::from_slice(&json)
                .map_err(|_| QueueError::Unacceptable("kept links are unreadable"))?;
            return Ok(Some(kept));
        }
        let mut relinks = BTreeMap::new();
        for token in tokens {
            let relink = relink_for_recipient(
                &self.db,
                &self.master,
                tenant,
                token,
                &claim.recipient,
                queue_id,
            )
            .await?;
            relinks.insert(token.clone(), relink);
        }
        let json = serde_json::to_vec(&relinks)
            .map_err(|_| QueueError::Unacceptable("links could not be kept"))?;
        let sealed = seal_object(&cipher, &json)?;
        if !self.db.keep_relay_links(claim, claimant, &sealed).await? {
            return Ok(None);
        }
        Ok(Some(relinks))
    }

    /// `body` DKIM-signed with the tenant's key for its From domain (else the envelope
    /// sender's), with `{d, s, a}` for the proof record; unsigned when the tenant has no key
    /// for that domain.
    async fn sign(
        &self,
        tenant: Uuid,
        envelope_from: &str,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<serde_json::Value>), QueueError> {
        let domain = from_header_domain(&body).unwrap_or_else(|| domain_of(envelope_from));
        if domain.is_empty() {
            return Ok((body, None));
        }
        let Some(key) =
            super::dkim_keys::signer_for(&self.db, &self.master, tenant, &domain).await?
        else {
            return Ok((body, None));
        };
        match key.sign(&body, OffsetDateTime::now_utc().unix_timestamp()) {
            Ok(signed) => {
                let facts = serde_json::json!({
                    "d": key.domain,
                    "s": key.selector,
                    "a": key.algorithm().as_str(),
                });
                Ok((signed, Some(facts)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a relayed message was not DKIM-signed");
                Ok((body, None))
            }
        }
    }

    /// Deletes the queue rows of messages that finished more than
    /// [`crate::policy::MAX_RETENTION_DAYS`] ago (their proof records stay in the audit
    /// chain); how many went.
    ///
    /// # Errors
    /// The database failed.
    pub async fn purge_finished(&self, now: OffsetDateTime) -> Result<u64, QueueError> {
        let keep = time::Duration::days(i64::from(crate::policy::MAX_RETENTION_DAYS));
        Ok(self.db.purge_finished_relay_messages(now - keep).await?)
    }

    /// The delay before attempt `attempts + 1`: the base, doubled per attempt, at most an hour.
    fn backoff(&self, attempts: u32) -> time::Duration {
        let delay = self
            .retry_base
            .saturating_mul(1u32 << attempts.min(16))
            .min(Duration::from_secs(3600));
        time::Duration::try_from(delay).unwrap_or(time::Duration::HOUR)
    }
}

/// The id the links kept for `recipient` of message `queue_id` are sealed under (AAD): kept
/// links cannot be moved to another recipient or message.
fn links_object_id(queue_id: Uuid, recipient: &str) -> Uuid {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[
            b"ferry/v1/relay-links\0".as_slice(),
            queue_id.as_bytes().as_slice(),
            recipient.as_bytes(),
        ]
        .concat(),
    );
    let mut id = [0u8; 16];
    for (byte, from) in id.iter_mut().zip(digest.as_ref()) {
        *byte = *from;
    }
    Uuid::from_bytes(id)
}

/// The stored name of a delivery method (as the proof record spells it).
fn method_name(method: Method) -> &'static str {
    match method {
        Method::MtaSts => "mta-sts",
        Method::Webpki => "webpki",
    }
}

/// The DSN line of a recipient given up on now.
fn failure_of(recipient: &str, state: RecipientState, error: Option<&str>) -> Option<dsn::Failure> {
    let reason = error.unwrap_or("undeliverable").to_owned();
    let status = match state {
        RecipientState::Expired => "5.4.7".to_owned(),
        RecipientState::Bounced => reason
            .split_whitespace()
            .find(|w| w.starts_with("5.") && w.split('.').count() == 3)
            .unwrap_or("5.0.0")
            .to_owned(),
        RecipientState::Retry(_) | RecipientState::Delivered => return None,
    };
    Some(dsn::Failure {
        recipient: recipient.to_owned(),
        status,
        reason,
    })
}

/// The domain of the first From header's address, lower case.
fn from_header_domain(body: &[u8]) -> Option<String> {
    let value = super::headers::first(body, "from")?;
    let address = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.as_str(),
    };
    let domain = address.rsplit_once('@')?.1.trim().to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// The recipient's domain, lower case.
fn domain_of(recipient: &str) -> String {
    recipient
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain)
        .to_ascii_lowercase()
}

/// The message's Message-ID; one is added (`<queue id@hostname>`) when the header is missing.
fn with_message_id(body: Vec<u8>, hostname: &str, id: Uuid) -> (String, Vec<u8>) {
    let found = super::headers::first(&body, "message-id");
    match found {
        Some(id) if !id.is_empty() => (id, body),
        _ => {
            let id = format!("<{id}@{hostname}>");
            let mut with = format!("Message-ID: {id}\r\n").into_bytes();
            with.extend_from_slice(&body);
            (id, with)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_found_or_added() {
        let id = Uuid::nil();
        let (found, body) = with_message_id(
            b"Subject: x\r\nmessage-id:\r\n <a@b>\r\n\r\nMessage-ID: <not@header>\r\n".to_vec(),
            "relay.test",
            id,
        );
        assert_eq!(found, "<a@b>");
        assert!(body.starts_with(b"Subject"));
        let (added, body) =
            with_message_id(b"Subject: x\r\n\r\nbody\r\n".to_vec(), "relay.test", id);
        assert_eq!(added, format!("<{id}@relay.test>"));
        assert!(body.starts_with(format!("Message-ID: {added}\r\nSubject").as_bytes()));
    }

    #[test]
    fn the_from_domain_is_found_in_folded_and_bracketed_headers() {
        let body =
            b"Subject: x\r\nFrom: \"Ward, 5\"\r\n <Ward@Hospital.Test>\r\n\r\nFrom: <a@b.c>\r\n";
        assert_eq!(from_header_domain(body).as_deref(), Some("hospital.test"));
        assert_eq!(
            from_header_domain(b"From: a@x.test\r\n\r\n").as_deref(),
            Some("x.test")
        );
        assert_eq!(from_header_domain(b"Subject: none\r\n\r\n"), None);
    }

    #[test]
    fn domains_are_lower_case() {
        assert_eq!(domain_of("Bob@Example.TEST"), "example.test");
        assert_eq!(domain_of("nobody"), "");
    }
}
