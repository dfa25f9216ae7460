//! The lookups delivery needs, behind an interface: the decision table only holds when DNS
//! failures are told apart from answers (a SERVFAIL must hold the message, never relax it),
//! and tests point every lookup at a server of their own. [`HickoryResolver`] is the real one;
//! DANE (next issue) adds a validated TLSA lookup here.

mod hickory;

use std::future::Future;
use std::net::IpAddr;

pub use hickory::HickoryResolver;

use crate::route::MxAnswer;

/// A lookup that concluded nothing (SERVFAIL, REFUSED, a timeout, no server reachable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup of {name} failed: {reason}")]
pub struct DnsTempFail {
    /// The name looked up.
    pub name: String,
    /// What went wrong, for the proof record and the DSN.
    pub reason: String,
}

/// The DNS lookups of one delivery. Answers that say "nothing there" (NXDOMAIN, no records of
/// the type) are answers, not errors: only [`DnsTempFail`] means "try again later".
pub trait Resolver: Send + Sync + 'static {
    /// The recipient domain's MX records, null MX, NXDOMAIN, or a temporary failure.
    fn mx(&self, domain: &str) -> impl Future<Output = MxAnswer> + Send;

    /// The TXT records at `name`, each record's strings joined; empty when there are none or
    /// the name does not exist.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsTempFail>> + Send;

    /// The host's IPv4 and IPv6 addresses; empty when it has none or does not exist.
    fn addresses(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, DnsTempFail>> + Send;
}
