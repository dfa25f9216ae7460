//! Delivery of one message to the recipients at one domain: DNS and MTA-STS feed the decision
//! table ([`route::plan`]), each planned MX is tried address by address until one accepts the
//! message over verified TLS, and every attempt leaves a [`ProofRecord`] per recipient — the
//! record RELAY.md lists, minus what the queue adds (tenant, DKIM).

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::dns::Resolver;
use crate::mta_sts::Mode;
use crate::mta_sts::discover::{PolicyCache, discover};
use crate::mta_sts::fetch::PolicyFetcher;
use crate::route::{self, Attempt, BounceReason, HoldReason, Plan, Proof, StsState};
use crate::smtp::client::{self, AttemptError, Envelope, Timeouts, TlsFacts};
use crate::smtp::reply::Reply;
use crate::tls::sha256_hex;

/// Everything delivery needs that does not change per message.
pub struct Outbound<R, C> {
    /// Every lookup goes here.
    pub resolver: Arc<R>,
    /// MTA-STS policies.
    pub fetcher: PolicyFetcher,
    /// Policies kept across deliveries and restarts.
    pub cache: Arc<C>,
    /// The roots MX certificates must chain to.
    pub tls: Arc<rustls::ClientConfig>,
    /// The port every MX listens on (25; `FERRY_RELAY_MX_PORT` is a test knob).
    pub mx_port: u16,
    /// This relay's name in EHLO.
    pub helo_name: String,
    /// Step timeouts.
    pub timeouts: Timeouts,
}

/// One message for the recipients at one domain, as it will be sent.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The queue's id for it.
    pub queue_id: &'a str,
    /// Its `Message-ID`.
    pub message_id: &'a str,
    /// `MAIL FROM`.
    pub from: &'a str,
    /// `RCPT TO`, all at `domain`.
    pub recipients: &'a [String],
    /// The exact bytes: CRLF line ends, signed, not dot-stuffed.
    pub body: &'a [u8],
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum RecipientStatus {
    /// The MX accepted it over verified TLS.
    Delivered,
    /// Not now: retry with backoff until the hold window ends.
    Deferred(String),
    /// Never: DSN at once.
    Bounced(String),
}

/// How a connection was (to be) protected, RELAY.md's `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// MTA-STS `enforce`: the MX name is authenticated by the policy.
    MtaSts,
    /// STARTTLS with a WebPKI certificate for an MX name from unauthenticated DNS.
    Webpki,
}

/// The MTA-STS facts of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyFacts {
    /// The policy id.
    pub id: String,
    /// `enforce` or `testing`.
    pub mode: String,
    /// When it was fetched, RFC 3339.
    pub fetched_at: Option<String>,
}

/// One recipient, one attempt: the proof of how (or why not) the message left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofRecord {
    /// The queue id.
    pub queue_id: String,
    /// The `Message-ID`.
    pub message_id: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipient.
    pub envelope_to: String,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// End, RFC 3339 UTC.
    pub ended: String,
    /// The MX host tried (none when DNS held or bounced the message).
    pub mx_host: Option<String>,
    /// Its preference.
    pub preference: Option<u16>,
    /// The address connected to.
    pub address: Option<String>,
    /// How the connection had to be protected.
    pub method: Option<Method>,
    /// What TLS established (none when the session ended before).
    pub tls: Option<TlsFacts>,
    /// The MTA-STS policy in force.
    pub mta_sts: Option<PolicyFacts>,
    /// Why a policy could not be fetched (reported; never weakens delivery).
    pub mta_sts_fetch_error: Option<String>,
    /// SHA-256 of the bytes sent (hex).
    pub sha256: String,
    /// The outcome for this recipient after this attempt.
    pub outcome: RecipientStatus,
    /// The remote's last relevant reply (`RCPT` if refused there, else the one after DATA).
    pub reply: Option<Reply>,
}

impl<R: Resolver, C: PolicyCache> Outbound<R, C> {
    /// Delivers `message` to its recipients at `domain`; one proof record per recipient per
    /// attempt, in order. Recipients not delivered or bounced come back deferred.
    pub async fn deliver(&self, domain: &str, message: &Message<'_>) -> Vec<ProofRecord> {
        let started = OffsetDateTime::now_utc();
        let sha256 = sha256_hex(message.body);
        let discovery = discover(
            domain,
            self.resolver.as_ref(),
            &self.fetcher,
            self.cache.as_ref(),
            started,
        )
        .await;
        let mta_sts = match &discovery.state {
            StsState::Policy { id, policy } => Some(PolicyFacts {
                id: id.clone(),
                mode: match policy.mode {
                    Mode::Enforce => "enforce",
                    Mode::Testing => "testing",
                    Mode::None => "none",
                }
                .to_owned(),
                fetched_at: discovery.fetched_at.map(rfc3339),
            }),
            _ => None,
        };
        let record = |recipient: &str,
                      started: OffsetDateTime,
                      target: Option<(&Attempt, SocketAddr)>,
                      tls: Option<TlsFacts>,
                      outcome: RecipientStatus,
                      reply: Option<Reply>| ProofRecord {
            queue_id: message.queue_id.to_owned(),
            message_id: message.message_id.to_owned(),
            envelope_from: message.from.to_owned(),
            envelope_to: recipient.to_owned(),
            started: rfc3339(started),
            ended: rfc3339(OffsetDateTime::now_utc()),
            mx_host: target.map(|(a, _)| a.host.clone()),
            preference: target.map(|(a, _)| a.preference),
            address: target.map(|(_, addr)| addr.to_string()),
            method: target.map(|(a, _)| method_of(&a.proof)),
            tls,
            mta_sts: mta_sts.clone(),
            mta_sts_fetch_error: discovery.fetch_error.clone(),
            sha256: sha256.clone(),
            outcome: bounded_outcome(outcome),
            reply: reply.map(bounded_reply),
        };

        // Every recipient with the same outcome and no connection made.
        let unconnected = |outcome: &dyn Fn() -> RecipientStatus| -> Vec<ProofRecord> {
            message
                .recipients
                .iter()
                .map(|r| record(r, started, None, None, outcome(), None))
                .collect()
        };
        let mx = self.resolver.mx(domain).await;
        let attempts = match route::plan(domain, &mx, &discovery.state) {
            Plan::Try(attempts) => attempts,
            Plan::Hold(reason) => {
                let why = hold_text(&reason);
                return unconnected(&|| RecipientStatus::Deferred(why.clone()));
            }
            Plan::Bounce(reason) => {
                let why = bounce_text(reason);
                return unconnected(&|| RecipientStatus::Bounced(why.clone()));
            }
        };

        let mut records = Vec::new();
        let mut last_failure = String::from("no MX host could be reached");
        for attempt in &attempts {
            let addresses = match self.resolver.addresses(&attempt.host).await {
                Ok(found) if !found.is_empty() => found,
                Ok(_) => {
                    last_failure = format!("{} has no address", attempt.host);
                    continue;
                }
                Err(e) => {
                    last_failure = e.to_string();
                    continue;
                }
            };
            for ip in addresses {
                let addr = SocketAddr::new(ip, self.mx_port);
                let tried = OffsetDateTime::now_utc();
                let envelope = Envelope {
                    from: message.from,
                    recipients: message.recipients,
                };
                let result = client::deliver(
                    addr,
                    &attempt.host,
                    &self.helo_name,
                    Arc::clone(&self.tls),
                    &envelope,
                    message.body,
                    &self.timeouts,
                )
                .await;
                match result {
                    Ok(session) => {
                        for rcpt in &session.recipients {
                            let delivered = rcpt.reply.is_positive()
                                && session.data_reply.as_ref().is_some_and(Reply::is_positive);
                            let (outcome, reply) = if delivered {
                                (RecipientStatus::Delivered, session.data_reply.clone())
                            } else if !rcpt.reply.is_positive() {
                                let status = if rcpt.reply.is_permanent() {
                                    RecipientStatus::Bounced(rcpt.reply.to_string())
                                } else {
                                    RecipientStatus::Deferred(rcpt.reply.to_string())
                                };
                                (status, Some(rcpt.reply.clone()))
                            } else {
                                let data = session.data_reply.clone();
                                let text = data
                                    .as_ref()
                                    .map_or_else(|| "no reply".to_owned(), ToString::to_string);
                                let status = if data.as_ref().is_some_and(Reply::is_permanent) {
                                    RecipientStatus::Bounced(text)
                                } else {
                                    RecipientStatus::Deferred(text)
                                };
                                (status, data)
                            };
                            records.push(record(
                                &rcpt.recipient,
                                tried,
                                Some((attempt, addr)),
                                Some(session.tls.clone()),
                                outcome,
                                reply,
                            ));
                        }
                        return records;
                    }
                    Err(error) => {
                        let text = error.to_string();
                        let permanent = error.is_permanent();
                        let reply = match &error {
                            AttemptError::Refused { reply, .. }
                            | AttemptError::StartTlsRefused(reply) => Some(reply.clone()),
                            _ => None,
                        };
                        for r in message.recipients {
                            let outcome = if permanent {
                                RecipientStatus::Bounced(text.clone())
                            } else {
                                RecipientStatus::Deferred(text.clone())
                            };
                            records.push(record(
                                r,
                                tried,
                                Some((attempt, addr)),
                                None,
                                outcome,
                                reply.clone(),
                            ));
                        }
                        if permanent {
                            return records;
                        }
                        last_failure = text;
                    }
                }
            }
        }
        if records.is_empty() {
            // No MX had an address: one record per recipient says so.
            return unconnected(&|| RecipientStatus::Deferred(last_failure.clone()));
        }
        records
    }
}

/// Most characters of a peer's text kept in a proof record: a remote MX decides what it
/// replies, and the audit chain must not grow by what it likes.
const MAX_RECORDED_TEXT: usize = 1000;
/// Most reply lines kept in a proof record.
const MAX_RECORDED_LINES: usize = 8;

fn bounded_text(text: String) -> String {
    if text.chars().count() <= MAX_RECORDED_TEXT {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_RECORDED_TEXT).collect();
    cut.push('…');
    cut
}

fn bounded_outcome(outcome: RecipientStatus) -> RecipientStatus {
    match outcome {
        RecipientStatus::Delivered => RecipientStatus::Delivered,
        RecipientStatus::Deferred(why) => RecipientStatus::Deferred(bounded_text(why)),
        RecipientStatus::Bounced(why) => RecipientStatus::Bounced(bounded_text(why)),
    }
}

fn bounded_reply(reply: Reply) -> Reply {
    Reply {
        code: reply.code,
        lines: reply
            .lines
            .into_iter()
            .take(MAX_RECORDED_LINES)
            .map(|line| bounded_text(line).chars().take(200).collect())
            .collect(),
    }
}

fn method_of(proof: &Proof) -> Method {
    match proof {
        Proof::MtaSts { .. } => Method::MtaSts,
        Proof::WebPki { .. } => Method::Webpki,
    }
}

fn hold_text(reason: &HoldReason) -> String {
    match reason {
        HoldReason::Dns(why) => format!("the MX lookup failed ({why}); held, not relaxed"),
        HoldReason::NoMxInPolicy { id } => {
            format!("the MTA-STS policy {id} (enforce) lists none of the domain's MX hosts")
        }
    }
}

fn bounce_text(reason: BounceReason) -> String {
    match reason {
        BounceReason::NoSuchDomain => "5.1.2 the recipient's domain does not exist".to_owned(),
        BounceReason::NullMx => {
            "5.1.10 the recipient's domain accepts no mail (null MX)".to_owned()
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_peer_says_is_recorded_within_bounds() {
        let reply = bounded_reply(Reply {
            code: 550,
            lines: vec!["x".repeat(5000); 64],
        });
        assert_eq!(reply.lines.len(), MAX_RECORDED_LINES);
        assert!(reply.lines.iter().all(|l| l.chars().count() <= 200));
        let RecipientStatus::Bounced(why) =
            bounded_outcome(RecipientStatus::Bounced("y".repeat(9000)))
        else {
            unreachable!("a bounce stays a bounce")
        };
        assert_eq!(why.chars().count(), MAX_RECORDED_TEXT + 1);
    }
}
