//! Ferry's relay: mail leaves only over authenticated TLS, each delivery recorded with how it
//! was protected (the policy is `RELAY.md`). `mta_sts` (the DNS record, the policy document,
//! fetching it, which policy holds), `route` (the decision table as a pure function), `dns`
//! (the lookups, behind an interface), `tls` (trust roots, certificate facts, the inbound
//! certificate), `smtp` (replies, the client session that refuses plaintext, the inbound
//! server), `deliver` (one message to one domain, with a proof record per recipient per
//! attempt), `dkim` (signing), `dsn` (delivery status reports) and `links` (share links found
//! and rewritten per recipient). The queue, accounts and audit records live in the service
//! (`server/src/relay/`), on its database and store.

pub mod deliver;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod links;
pub mod mta_sts;
pub mod route;
pub mod smtp;
pub mod tls;
