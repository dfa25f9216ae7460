//! Harness for Ferry's end-to-end tests.
//!
//! The tests in `tests/tests/` drive the real `ferry` binary as a child process (no in-process
//! shortcuts), create tenants through its CLI, upload with real tus clients (tus-js-client,
//! tuspy, or raw HTTP), and check what recipients download against an independent BLAKE3 of
//! the source. Everything here returns errors with enough context (status, body, server log)
//! to tell what went wrong; nothing panics on a network result.
//!
//! Finding the binary: `FERRY_BIN` if set, else `ferry` next to the test executable's
//! `target/<profile>/` directory (the test script runs `cargo build -p ferry` first).
//!
//! Modules, all re-exported here:
//! - `cli`: finding the `ferry` binary, creating tenants and API keys through its CLI, and
//!   running its other one-shot commands ([`run_ferry`]);
//! - `server`: the running `ferry serve` child process ([`Server`]);
//! - `api`: HTTP access to a server ([`Api`], [`http_client`], tus helpers);
//! - `files`: random source files, BLAKE3, and recipient downloads;
//! - `clients`: the real tus clients ([`TusClient`], [`run_client`], [`spawn_client`]) and
//!   where the test tools live ([`python`], [`schemathesis`]);
//! - `browser`: a recipient in headless Chromium ([`open_share_in_browser`]);
//! - `s3`: an S3 client on a Garage, built by Ferry's own client builder ([`s3_client`]);
//! - `stack`: PostgreSQL + Garage + one master key for several instances ([`S3Stack`]), and
//!   fresh master keys ([`new_master_key`]);
//! - `tus`: raw streamed PATCHes a test can pause or cut at a chosen byte
//!   ([`start_patch`], [`patch_expect_204`]).
//!
//! The fixtures that are not about Ferry (a real Garage, a scratch PostgreSQL database, the
//! child-process guard, polling) come from `ferry-testkit`, shared with the server's own
//! tests, and are re-exported here.

mod api;
mod browser;
mod cli;
mod clients;
mod files;
mod s3;
mod server;
mod stack;
mod tus;

pub use api::{
    Api, FileInfo, Share, ShareFile, TUS_VERSION, TusHead, base64, file_id_from_url, http_client,
};
pub use browser::{
    BrowserDownload, BrowserVisit, ConsoleMessage, browser_dir, chromium, open_share_in_browser,
};
pub use cli::{
    ApiKey, CliRun, Tenant, create_api_key, create_tenant, create_tenant_with_env, ferry_bin,
    run_ferry,
};
pub use clients::{
    ClientUpload, RunningClient, TusClient, clients_dir, ensure_client_tools, python, run_client,
    schemathesis, spawn_client,
};
pub use ferry_testkit::{
    ChildGuard, DEFAULT_POSTGRES_ADMIN_URL, GARAGE_REGION, GARAGE_VERSION, Garage, ScratchDb,
    eventually, garage_bin,
};
pub use files::{
    Download, SourceFile, blake3_file, download_and_compare, download_bytes, download_to_file,
    files_under, random_file,
};
pub use s3::s3_client;
pub use server::{Refusal, Server, serve_refusal};
pub use stack::{S3Stack, new_master_key};
pub use tus::{PatchOutcome, StreamingPatch, patch_expect_204, start_patch, wait_for_offset};
