//! Ferry's relay: mail leaves only over authenticated TLS, each delivery recorded with how it
//! was protected (the policy is `RELAY.md`). Built in parts. So far the outbound side:
//! `mta_sts` (the DNS record, the policy document, fetching it, which policy holds),
//! `route` (the decision table as a pure function), `dns` (the lookups, behind an
//! interface), `tls` (trust roots, certificate facts), `smtp` (replies and the client session
//! that refuses plaintext) and `deliver` (one message to one domain, with a proof record per
//! recipient per attempt). Inbound, the queue, links, DKIM and the audit records come next
//! (issue 16).

pub mod deliver;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod mta_sts;
pub mod route;
pub mod smtp;
pub mod tls;
