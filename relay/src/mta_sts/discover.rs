//! Which MTA-STS policy holds for a recipient domain right now (RFC 8461 §5): the TXT record's
//! `id` against the cached policy, a fetch when they differ, and the cached policy whenever a
//! fetch fails or the record is gone while the cache is still fresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::fetch::{FetchError, PolicyFetcher};
use super::{Mode, Policy, parse_policy, parse_record};
use crate::dns::Resolver;
use crate::route::StsState;

/// A policy as the cache keeps it: the document's text (re-parsed on use, so a stored row is
/// never trusted beyond what [`parse_policy`] accepts), under the `id` it was fetched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The TXT record's `id` when it was fetched.
    pub id: String,
    /// The policy document.
    pub text: String,
    /// When it was fetched.
    pub fetched_at: OffsetDateTime,
}

impl CachedPolicy {
    /// The policy, if the stored text still parses and `now` is within its `max_age`.
    pub fn fresh_policy(&self, now: OffsetDateTime) -> Option<Policy> {
        let policy = parse_policy(self.text.as_bytes()).ok()?;
        let age = (now - self.fetched_at).whole_seconds();
        (age >= 0 && (age as u64) < policy.max_age).then_some(policy)
    }

    /// Whether it is past half its `max_age`: time to refresh it even when the `id` is
    /// unchanged, so it never lapses while in use.
    fn due_for_refresh(&self, policy: &Policy, now: OffsetDateTime) -> bool {
        let age = (now - self.fetched_at).whole_seconds().max(0) as u64;
        age >= policy.max_age / 2
    }
}

/// Where policies are kept across deliveries and restarts (the database in the service; a map
/// in tests of the logic).
pub trait PolicyCache: Send + Sync {
    /// The cached policy of `domain`.
    fn get(&self, domain: &str) -> impl Future<Output = Option<CachedPolicy>> + Send;
    /// Keeps `policy` for `domain`, replacing any earlier one.
    fn put(&self, domain: &str, policy: &CachedPolicy) -> impl Future<Output = ()> + Send;
}

/// A cache in memory: for one process's tests and tools.
#[derive(Default)]
pub struct MemoryPolicyCache(Mutex<HashMap<String, CachedPolicy>>);

impl PolicyCache for MemoryPolicyCache {
    async fn get(&self, domain: &str) -> Option<CachedPolicy> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(domain)
            .cloned()
    }

    async fn put(&self, domain: &str, policy: &CachedPolicy) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(domain.to_owned(), policy.clone());
    }
}

/// What discovery found, with what to record about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The state the decision table uses.
    pub state: StsState,
    /// When the policy in force was fetched (for the proof record).
    pub fetched_at: Option<OffsetDateTime>,
    /// Why a fetch failed, when one did (reported, never weakening delivery).
    pub fetch_error: Option<String>,
}

/// Decides the MTA-STS state of `domain` at `now`.
pub async fn discover<R: Resolver, C: PolicyCache>(
    domain: &str,
    resolver: &R,
    fetcher: &PolicyFetcher,
    cache: &C,
    now: OffsetDateTime,
) -> Discovery {
    let cached = cache.get(domain).await;
    let fresh = cached
        .as_ref()
        .and_then(|c| c.fresh_policy(now).map(|p| (c.clone(), p)));
    let from_cache = |error: Option<String>| match &fresh {
        Some((c, policy)) => Discovery {
            state: state_of(&c.id, policy),
            fetched_at: Some(c.fetched_at),
            fetch_error: error,
        },
        None => Discovery {
            state: if error.is_some() {
                StsState::FetchFailed
            } else {
                StsState::NoPolicy
            },
            fetched_at: None,
            fetch_error: error,
        },
    };
    // No record (or an unusable one, or DNS could not say): a fresh cached policy still holds
    // (§5.1), else there is none.
    let record = match resolver.txt(&format!("_mta-sts.{domain}")).await {
        Ok(txt) => parse_record(&txt).ok().flatten(),
        Err(_) => None,
    };
    let Some(record) = record else {
        return from_cache(None);
    };
    if let Some((c, policy)) = &fresh
        && c.id == record.id
        && !c.due_for_refresh(policy, now)
    {
        return from_cache(None);
    }
    match fetcher.fetch(domain).await {
        Ok((policy, text)) => {
            let entry = CachedPolicy {
                id: record.id.clone(),
                text,
                fetched_at: now,
            };
            cache.put(domain, &entry).await;
            Discovery {
                state: state_of(&record.id, &policy),
                fetched_at: Some(now),
                fetch_error: None,
            }
        }
        Err(error) => from_cache(Some(describe(&error))),
    }
}

fn state_of(id: &str, policy: &Policy) -> StsState {
    if policy.mode == Mode::None {
        StsState::NoPolicy
    } else {
        StsState::Policy {
            id: id.to_owned(),
            policy: policy.clone(),
        }
    }
}

fn describe(error: &FetchError) -> String {
    error.to_string()
}
