//! `smtp_load`: what `bench-relay` needs in Rust to measure an SMTP relay (Ferry's or
//! Postfix) end to end: a submitter in front of it and an MX behind it, in one process, so the
//! time a message is accepted and the time it arrives are read from the same clock.
//!
//! - [`cli`]: the options of `smtp_load certs|dns|free-port|run|table`;
//! - [`bed`]: the test bed around the relays (certificates from the testkit's CA, the
//!   testkit's DNS server, a port free on several loopback addresses);
//! - [`run`]: one timed run, on `submit` (the tenant's mail server: STARTTLS, AUTH PLAIN,
//!   one message after the other per connection), `sink` (the recipient's MX: STARTTLS
//!   required, the arrival of each message by its `X-Bench-Id`), `message` (the messages),
//!   `proc_tree` (the relay's processes' memory and CPU) and `wire`/`tls` (SMTP lines and
//!   rustls set-up shared by both ends);
//! - [`table`]: the JSON lines of many runs as the Markdown table of `load/README.md`.

pub mod bed;
pub mod cli;
mod message;
mod proc_tree;
pub mod run;
mod sink;
mod submit;
pub mod table;
mod tls;
mod wire;
