//! Ferry's relay: mail leaves only over authenticated TLS, each delivery recorded with how it
//! was protected (the policy is `RELAY.md`). Built in parts; so far the policy without I/O:
//! `mta_sts` (the DNS record, the policy document, which MX hosts it allows) and `route`
//! (the decision table: which MX hosts to try, in which order, proving what — or hold, or
//! bounce). Lookups, fetching, the SMTP sides, the queue and the proof records come next
//! (issue 16).

pub mod mta_sts;
pub mod route;
