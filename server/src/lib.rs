//! Ferry: send large files safely by e-mail.
//!
//! A map of this crate, by layer. A module may use the layers below it, never the ones above,
//! and no file imports a file that imports it back (`scripts/check-layers` checks this in the
//! suite, and that nothing under `http/` touches the database or the audit log).
//!
//! - **Edge** — [`http`]: one module per route group; handlers parse, call one domain
//!   function and map its error (`http::error` is the only place errors become responses).
//!   The `ferry` binary (`main.rs`) is the other edge: the operator's CLI.
//! - **Domain** — what users do, callable from any edge (HTTP, CLI, the add-in's and the
//!   relay's code): [`tus`] (the upload protocol: create, write, terminate, status),
//!   [`shares`] (create, state, status, revoke), [`download`] (resolve a link, open its page,
//!   serve bytes; owns the counting rule), [`admin`] (policy, live files, audit export),
//!   [`auth`] (callers, roles, the ownership rule; API keys: create, revoke, authenticate),
//!   [`objects`] (destroying a file's object, for terminate and the expiry job), [`jobs`]
//!   (the expiry pass), [`addin`] (the Outlook add-in's manifest and assets), [`relay`]
//!   (relay accounts; the relay's persistent state — the relay itself is `ferry-relay`).
//! - **Mechanisms the domain drives** — [`ingest`] (the upload pipeline: seal, hash, append,
//!   commit), [`writer_lock`] (one writer per upload: in process, and a PostgreSQL advisory
//!   lock across instances), [`audit`] (the tamper-evident chain), [`telemetry`] (metrics for
//!   `/metrics`), [`ratelimit`] (budgets of failed link lookups).
//! - **Foundations** — [`db`] (sqlx repositories), [`store`] (object storage backends),
//!   [`crypto`] (segment format v1, key hierarchy), [`hash`] (resumable BLAKE3 tree and
//!   CRC-32), [`policy`] (a tenant's policy and Ferry's retention limits), [`branding`] (a
//!   tenant's name and logo on its pages), [`i18n`] (the recipient pages' languages).
//! - **Wiring** — [`config`] (defaults, `ferry.toml`, `FERRY_*`), [`state`], [`app`]
//!   (start-up).

pub mod addin;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod branding;
pub mod config;
pub mod crypto;
pub mod db;
pub mod download;
pub mod hash;
pub mod http;
pub mod i18n;
pub mod ingest;
pub mod jobs;
pub mod objects;
pub mod policy;
pub mod ratelimit;
pub mod relay;
pub mod shares;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tus;
pub mod writer_lock;
