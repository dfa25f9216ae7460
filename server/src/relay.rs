//! The relay's side of the service (the relay itself is the `ferry-relay` crate): the
//! accounts tenants' mail servers authenticate with, and where the relay keeps what must
//! outlive a restart: the queue and the MTA-STS policies.

pub mod accounts;
pub mod config;
pub mod gate;
pub mod policy_cache;
pub mod queue;
pub mod service;
