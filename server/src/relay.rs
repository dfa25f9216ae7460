//! The relay's side of the service (the relay itself is the `ferry-relay` crate): the
//! accounts tenants' mail servers authenticate with, and where the relay keeps what must
//! outlive a restart (MTA-STS policies now; the queue next).

pub mod accounts;
pub mod policy_cache;
