//! The relay's outbound side against real peers: Postfix MX instances on loopback addresses
//! with certificates from a test CA, an HTTPS server for MTA-STS policies, and a DNS server on
//! loopback that the relay asks for everything — with the relay's real resolver, TLS, policy
//! fetcher and SMTP client.

mod bed;
mod delivery;
mod mta_sts;
