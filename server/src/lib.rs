//! Ferry: send large files safely by e-mail.
//!
//! A map of this crate (the design is `shared/DESIGN.md`):
//! - [`http`]: the HTTP edge. One module per route group (`tus`, `files`, `shares`, `admin`,
//!   `download`, `health`); handlers parse and call the domain; `http::error` is the only
//!   place errors become responses; `http::openapi` serves the OpenAPI document generated
//!   from the handlers' annotations and says how a new endpoint joins it.
//! - Domain: [`tus`] (protocol state machine and the upload pipeline), [`shares`] (creating
//!   links), [`download`] (resolving links, streaming verified plaintext).
//! - Mechanisms: [`crypto`] (segment format v1, key hierarchy), [`hash`] (resumable BLAKE3
//!   tree), [`store`] (object storage backends), [`db`] (sqlx repositories), [`auth`]
//!   (API keys and link tokens), [`ratelimit`] (per-client budgets of failed token lookups,
//!   applied to recipient routes by `http::guard`).
//! - Wiring: [`config`] (defaults, `ferry.toml`, `FERRY_*`), [`state`], [`app`] (start-up).
//!   The `ferry` binary (`main.rs`) is the CLI around them.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod download;
pub mod hash;
pub mod http;
pub mod jobs;
pub mod policy;
pub mod ratelimit;
pub mod shares;
pub mod state;
pub mod store;
pub mod tus;
