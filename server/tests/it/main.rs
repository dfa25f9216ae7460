//! The server's tests, one test binary: each module below was a binary of its own once, and
//! `harness` is what they share — a real Ferry server on a loopback port in this process
//! (`TestServer`, on SQLite or PostgreSQL, on the disk store or a bucket of a real Garage),
//! the scenario macros `on_every_backend!` and `on_both_databases!`, and helpers that speak
//! tus and the API over real HTTP. The fixtures that are not about Ferry (a scratch
//! PostgreSQL database, Garage, polling) come from `ferry-testkit`, shared with the
//! end-to-end tests in `tests/`.
//!
//! Run one suite with `cargo test -p ferry --test it -- MODULE::` (e.g. `hardening::`).

mod harness;

mod addin_manifest;
mod audit_trail;
mod db_repository;
mod download_all;
mod downloads;
mod entra_sign_in;
mod expiry;
mod hardening;
mod isolation;
mod metrics;
mod openapi;
mod policy;
mod recipient_links;
mod recipient_page;
mod relay_state;
mod retention;
mod revoke;
mod s3_store;
mod store_contract;
mod token_guessing;
mod tus_protocol;
mod upload_lease;
