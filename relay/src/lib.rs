//! Ferry's relay: mail leaves only over authenticated TLS, each delivery recorded with how it
//! was protected (the policy is `RELAY.md`). Built in parts; so far the MTA-STS policy
//! itself (`mta_sts`): the DNS record, the policy document, and which MX hosts it allows.
//! Fetching, the SMTP sides, the queue and the proof records come next (issue 16).

pub mod mta_sts;
