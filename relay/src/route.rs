//! RELAY.md's decision table as a pure function: from what DNS and MTA-STS said about one
//! recipient domain, which MX hosts to try, in which order, and what each must prove — or
//! whether to hold the message or bounce it. No I/O here; the caller looks things up, then
//! connects to each [`Attempt`] in turn and skips to the next on any TLS failure (never
//! plaintext).
//!
//! DANE (RFC 7672) is the next issue: a secure usable TLSA RRset will add a requirement that
//! wins over MTA-STS per MX host, without falling back; [`Proof`] is where it goes.

use crate::mta_sts::{Mode, Policy};

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Lower is tried first.
    pub preference: u16,
    /// The host to connect to (as DNS gave it; a trailing dot is ignored).
    pub host: String,
}

/// What the MX lookup of the recipient domain answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// The domain's MX records (an empty set means none: the domain itself is the host,
    /// RFC 5321 §5.1).
    Records(Vec<Mx>),
    /// `MX 0 .`: the domain accepts no mail (RFC 7505).
    NullMx,
    /// The domain does not exist.
    NxDomain,
    /// SERVFAIL, a timeout, or a bogus DNSSEC answer: nothing can be concluded.
    TempFail(String),
}

/// What MTA-STS said about the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsState {
    /// No `_mta-sts` record, or the policy's mode is `none`.
    NoPolicy,
    /// A policy (fetched now, or cached and still valid) with its `id`.
    Policy {
        /// The `id` of the TXT record it was fetched under.
        id: String,
        /// The policy.
        policy: Policy,
    },
    /// A record announces a policy, but fetching it failed and nothing valid is cached.
    FetchFailed,
}

/// What a connection to one MX host must achieve before any mail is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// STARTTLS with a certificate valid under the WebPKI for the MX host name, which an
    /// MTA-STS policy in `enforce` mode lists (`id` recorded as proof).
    MtaSts {
        /// The policy id.
        id: String,
    },
    /// STARTTLS with a certificate valid under the WebPKI for the MX host name; the MX name
    /// itself came from unauthenticated DNS (recorded so: RELAY.md's `webpki`).
    WebPki {
        /// The MTA-STS policy id when a `testing` policy was in force (failures are reported,
        /// not blocking).
        testing_policy: Option<String>,
    },
}

/// One MX host to try, with what it must prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The host to connect to, without a trailing dot, lower case.
    pub host: String,
    /// Its MX preference (0 when the domain has no MX records and is its own host).
    pub preference: u16,
    /// What the TLS connection must establish.
    pub proof: Proof,
}

/// What to do with the recipients of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Try these hosts in order; the first that proves what it must gets the message.
    Try(Vec<Attempt>),
    /// A temporary reason: keep the message queued and retry with backoff.
    Hold(HoldReason),
    /// A permanent reason: bounce at once (5.1.x).
    Bounce(BounceReason),
}

/// Why a delivery waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// The MX lookup failed temporarily (RELAY.md: hold, never relax).
    Dns(String),
    /// An `enforce` policy lists none of the domain's MX hosts: re-check the policy id (it
    /// may have changed), then hold.
    NoMxInPolicy {
        /// The policy id that excluded them.
        id: String,
    },
}

/// Why a delivery cannot succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceReason {
    /// The domain does not exist (5.1.2).
    NoSuchDomain,
    /// The domain publishes a null MX (5.1.10).
    NullMx,
}

/// The plan for one recipient domain.
pub fn plan(domain: &str, mx: &MxAnswer, sts: &StsState) -> Plan {
    let mut hosts = match mx {
        MxAnswer::TempFail(reason) => return Plan::Hold(HoldReason::Dns(reason.clone())),
        MxAnswer::NxDomain => return Plan::Bounce(BounceReason::NoSuchDomain),
        MxAnswer::NullMx => return Plan::Bounce(BounceReason::NullMx),
        MxAnswer::Records(records) if records.is_empty() => vec![Mx {
            preference: 0,
            host: domain.to_owned(),
        }],
        MxAnswer::Records(records) => records.clone(),
    };
    // Preference order; equal preferences keep DNS's order (a stable sort).
    hosts.sort_by_key(|mx| mx.preference);
    let normalised = hosts.into_iter().map(|mx| Mx {
        preference: mx.preference,
        host: mx.host.trim_end_matches('.').to_ascii_lowercase(),
    });
    let attempts: Vec<Attempt> = match sts {
        StsState::Policy { id, policy } if policy.mode == Mode::Enforce => {
            let allowed: Vec<Attempt> = normalised
                .filter(|mx| policy.allows(&mx.host))
                .map(|mx| Attempt {
                    host: mx.host,
                    preference: mx.preference,
                    proof: Proof::MtaSts { id: id.clone() },
                })
                .collect();
            if allowed.is_empty() {
                return Plan::Hold(HoldReason::NoMxInPolicy { id: id.clone() });
            }
            allowed
        }
        StsState::Policy { id, policy } => {
            let testing_policy = (policy.mode == Mode::Testing).then(|| id.clone());
            normalised
                .map(|mx| Attempt {
                    host: mx.host,
                    preference: mx.preference,
                    proof: Proof::WebPki {
                        testing_policy: testing_policy.clone(),
                    },
                })
                .collect()
        }
        StsState::NoPolicy | StsState::FetchFailed => normalised
            .map(|mx| Attempt {
                host: mx.host,
                preference: mx.preference,
                proof: Proof::WebPki {
                    testing_policy: None,
                },
            })
            .collect(),
    };
    Plan::Try(attempts)
}

#[cfg(test)]
mod tests;
