//! A per-client budget of failed link-token lookups, so nobody can guess tokens (or make the
//! database look them up) at speed: a token bucket in its GCRA form, one per client address.
//!
//! Each client may fail `burst` lookups at once; the budget then refills at `per_hour`
//! failures an hour. A bucket is one instant — when it will be full again — so an idle
//! client costs nothing and a full bucket needs no entry at all. Clients are keyed by IPv4
//! address or IPv6 /64 (one subscriber usually holds a whole /64). The number of tracked
//! clients is capped; past the cap, full buckets are forgotten first, then the ones closest
//! to full. Budgets live in this process only: several instances each keep their own.
//!
//! A request *reserves* one failure before its lookup ([`FailureBudget::spend`]) and gives it
//! back if the lookup succeeded ([`FailureBudget::refund`]), so concurrent guesses can never
//! overdraw the budget.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed lookups a client may make at once (`FERRY_TOKEN_FAILURE_BURST`): far beyond any
/// recipient's typing mistakes, far below what guessing needs.
pub const DEFAULT_BURST: u32 = 1_000;

/// Failed lookups a client regains per hour (`FERRY_TOKEN_FAILURES_PER_HOUR`).
pub const DEFAULT_PER_HOUR: u32 = 1_000;

/// Clients tracked at most, so that memory stays bounded (about 5 MB) whatever the number of
/// addresses an attacker uses.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// A client has no failures left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed link lookups; one more is allowed in {} s", self.retry_after_secs())]
pub struct BudgetSpent {
    /// How long until one more failure fits.
    pub retry_after: Duration,
}

impl BudgetSpent {
    /// The wait in whole seconds, rounded up and at least 1, as `Retry-After` wants it.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        };
        secs.max(1)
    }
}

/// The budget key of a client address: an IPv4 address, or the /64 of an IPv6 address (an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key `ip` is budgeted under.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => ClientKey(IpAddr::V6(Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            ))),
        }
    }
}

/// The budgets of all clients of this process.
#[derive(Debug)]
pub struct FailureBudget {
    /// Time to regain one failure.
    interval: Duration,
    /// `burst × interval`: the most debt a client may carry.
    capacity: Duration,
    max_clients: usize,
    /// For each client in debt, when its bucket is full again.
    full_at: Mutex<HashMap<ClientKey, Instant>>,
}

impl FailureBudget {
    /// Budgets of `burst` failures regaining `per_hour` an hour, for at most `max_clients`
    /// clients at a time. Zeros are taken as 1.
    pub fn new(burst: u32, per_hour: u32, max_clients: usize) -> Self {
        let interval = Duration::from_secs(3600) / per_hour.max(1);
        FailureBudget {
            interval,
            capacity: interval * burst.max(1),
            max_clients: max_clients.max(1),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one failed lookup for `ip` before its lookup runs; refuses if none is left.
    ///
    /// # Errors
    /// [`BudgetSpent`] with the time until one more failure fits.
    pub fn spend(&self, ip: IpAddr) -> Result<(), BudgetSpent> {
        self.spend_at(ClientKey::of(ip), Instant::now())
    }

    /// Gives back the failure [`FailureBudget::spend`] reserved: the lookup succeeded.
    pub fn refund(&self, ip: IpAddr) {
        self.refund_at(ClientKey::of(ip), Instant::now());
    }

    fn spend_at(&self, key: ClientKey, now: Instant) -> Result<(), BudgetSpent> {
        // A poisoned lock only means another request panicked mid-update; the map is still
        // a valid map of instants.
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let debt = full_at
            .get(&key)
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        if debt + self.interval > self.capacity {
            return Err(BudgetSpent {
                retry_after: debt + self.interval - self.capacity,
            });
        }
        if !full_at.contains_key(&key) && full_at.len() >= self.max_clients {
            make_room(&mut full_at, now, self.max_clients);
        }
        full_at.insert(key, now + debt + self.interval);
        Ok(())
    }

    fn refund_at(&self, key: ClientKey, now: Instant) {
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = full_at.get_mut(&key) {
            match at.checked_sub(self.interval) {
                Some(earlier) if earlier > now => *at = earlier,
                _ => {
                    full_at.remove(&key);
                }
            }
        }
    }
}

/// Frees at least one slot of a full map: forgets every bucket that is full again (it holds
/// nothing to remember); if all are still in debt, forgets the eighth closest to full, so the
/// O(n) sweep runs once per many new clients rather than for each.
fn make_room(full_at: &mut HashMap<ClientKey, Instant>, now: Instant, max_clients: usize) {
    full_at.retain(|_, at| *at > now);
    if full_at.len() < max_clients {
        return;
    }
    let count = (full_at.len() + 1 - max_clients)
        .max(max_clients / 8)
        .max(1);
    let mut instants: Vec<Instant> = full_at.values().copied().collect();
    let index = count.min(instants.len()) - 1;
    let (_, threshold, _) = instants.select_nth_unstable(index);
    let threshold = *threshold;
    full_at.retain(|_, at| *at > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    impl FailureBudget {
        /// Clients currently tracked (in debt, or not yet swept).
        fn tracked(&self) -> usize {
            self.full_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        }
    }

    fn key(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_it_refills() {
        // 10 failures at once, one more every 6 minutes.
        let budget = FailureBudget::new(10, 10, 100);
        let client = key("192.0.2.1");
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(budget.spend_at(client, t0), Ok(()), "failure {i}");
        }
        let spent = budget.spend_at(client, t0);
        assert_eq!(
            spent,
            Err(BudgetSpent {
                retry_after: Duration::from_secs(360)
            })
        );
        assert_eq!(spent.err().map(|s| s.retry_after_secs()), Some(360));

        // Just before one failure has refilled: still refused, with the rest of the wait.
        let almost = t0 + Duration::from_secs(359);
        assert_eq!(
            budget.spend_at(client, almost).err().map(|s| s.retry_after),
            Some(Duration::from_secs(1))
        );
        // After one interval exactly one more fits.
        let later = t0 + Duration::from_secs(360);
        assert_eq!(budget.spend_at(client, later), Ok(()));
        assert!(budget.spend_at(client, later).is_err());
        // After a full hour (plus the one spent late) the whole burst is back.
        let refilled = later + Duration::from_secs(3600);
        for i in 0..10 {
            assert_eq!(budget.spend_at(client, refilled), Ok(()), "refilled {i}");
        }
        assert!(budget.spend_at(client, refilled).is_err());
    }

    #[test]
    fn refunds_keep_successful_lookups_free_and_other_clients_are_apart() {
        let budget = FailureBudget::new(3, 1, 100);
        let client = key("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(budget.spend_at(client, t0), Ok(()));
            budget.refund_at(client, t0);
        }
        assert_eq!(budget.tracked(), 0, "a full bucket needs no entry");
        for _ in 0..3 {
            assert_eq!(budget.spend_at(client, t0), Ok(()));
        }
        assert!(budget.spend_at(client, t0).is_err());
        assert_eq!(budget.spend_at(key("192.0.2.2"), t0), Ok(()));
    }

    #[test]
    fn an_ipv6_slash_64_shares_one_bucket() {
        let budget = FailureBudget::new(2, 1, 100);
        let t0 = Instant::now();
        let a = key("2001:db8:1:2:aaaa::1");
        let b = key("2001:db8:1:2:ffff:ffff:ffff:ffff");
        assert_eq!(a, b);
        assert_eq!(budget.spend_at(a, t0), Ok(()));
        assert_eq!(budget.spend_at(b, t0), Ok(()));
        assert!(budget.spend_at(key("2001:db8:1:2::7"), t0).is_err());
        // The next /64 has a budget of its own.
        assert_eq!(budget.spend_at(key("2001:db8:1:3::1"), t0), Ok(()));
        // IPv4-mapped addresses are their IPv4 address; IPv4 is keyed whole.
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn tracked_clients_are_capped_forgetting_full_buckets_first() {
        let budget = FailureBudget::new(2, 3600, 10);
        let t0 = Instant::now();
        // Ten clients in debt of one failure (full again one second later)…
        for i in 0..10 {
            assert_eq!(budget.spend_at(key(&format!("192.0.2.{i}")), t0), Ok(()));
        }
        // …and one of them spent out (full again two seconds later).
        assert_eq!(budget.spend_at(key("192.0.2.0"), t0), Ok(()));
        assert_eq!(budget.tracked(), 10);

        // A newcomer while all are in debt: the ones closest to full are forgotten, the
        // spent-out client is not.
        assert_eq!(budget.spend_at(key("198.51.100.1"), t0), Ok(()));
        assert!(budget.tracked() <= 10);
        assert!(budget.spend_at(key("192.0.2.0"), t0).is_err());

        // Once the one-failure buckets have refilled, a newcomer sweeps them all away.
        let later = t0 + Duration::from_millis(1500);
        for i in 0..20 {
            assert_eq!(
                budget.spend_at(key(&format!("203.0.113.{i}")), later),
                Ok(())
            );
            assert!(budget.tracked() <= 10);
        }
        assert!(
            budget.tracked() <= 10,
            "never more than the cap: {}",
            budget.tracked()
        );
    }
}
