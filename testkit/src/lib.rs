//! Fixtures shared by the server's tests (`server/tests/it`) and the end-to-end tests
//! (`tests/`, crate `ferry-e2e`). Nothing here knows Ferry: it starts and cleans up what tests
//! run against, and waits for things to happen.
//!
//! - [`ScratchDb`]: a throw-away PostgreSQL database, dropped with the value;
//! - [`Garage`]: a real single-node Garage (S3) as a child process, never outliving the test;
//! - [`ChildGuard`]: a child process that is killed and reaped when it goes out of scope;
//! - [`eventually`] / [`eventually_async`]: poll until a check passes, instead of hand-written
//!   polling loops;
//! - [`entra`]: Entra ID's token signing and JWKS endpoint, played on 127.0.0.1;
//! - the relay's test bed: [`dns`] (a DNS server on loopback whose answers the test sets),
//!   [`ca`] (a test CA and the broken certificates an MX may present), [`postfix`] (a real
//!   Postfix MX on a loopback address), [`https`] (MTA-STS policies over HTTPS), [`capture`]
//!   (what crossed the wire to an MX, captured with tcpdump).

pub mod ca;
pub mod capture;
mod child;
pub mod dns;
pub mod entra;
mod eventually;
mod garage;
pub mod https;
pub mod postfix;
mod postgres;

pub use child::ChildGuard;
pub use eventually::{eventually, eventually_async};
pub use garage::{GARAGE_REGION, GARAGE_VERSION, Garage, garage_bin};
pub use postgres::{DEFAULT_POSTGRES_ADMIN_URL, ScratchDb};
