//! The production path for end-to-end tests: a scratch PostgreSQL database, a real Garage
//! (S3, region eu-central-1) and one master key, shared by as many `ferry serve` instances as
//! a test starts, each with a data directory of its own (its local spool).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ferry_testkit::{Garage, ScratchDb};
use rand::Rng;
use tempfile::TempDir;

use crate::api::base64;
use crate::files::{SourceFile, random_file};
use crate::server::Server;

/// A fresh random master key, as `FERRY_MASTER_KEY` takes it (32 bytes, base64).
pub fn new_master_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64(&key)
}

/// PostgreSQL + Garage + a master key, for instances of `ferry serve`.
///
/// Declare it before the servers it starts, so they are dropped (killed) first.
pub struct S3Stack {
    /// The Garage the instances store objects in (its bucket `ferry-test`).
    pub garage: Garage,
    /// The database the instances share.
    pub db: ScratchDb,
    master_key: String,
    dir: TempDir,
}

impl S3Stack {
    /// Start Garage and create the database.
    pub fn start() -> Result<Self> {
        let garage = Garage::start().context("starting Garage")?;
        let db = ScratchDb::create()?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-stack-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        Ok(S3Stack {
            garage,
            db,
            master_key: new_master_key(),
            dir,
        })
    }

    /// The variables every instance runs with: `FERRY_DATABASE_URL`, `FERRY_STORE` (the
    /// bucket `ferry-test`), `FERRY_MASTER_KEY` and the S3 credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .garage
            .env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("FERRY_DATABASE_URL".into(), self.db.url().to_owned()));
        env.push(("FERRY_STORE".into(), self.garage.store_url()));
        env.push(("FERRY_MASTER_KEY".into(), self.master_key.clone()));
        env
    }

    /// A scratch directory for source files and downloads.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The data directory of instance `name` (created on start).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("data-{name}"))
    }

    /// Start instance `name` of `ferry serve` on this stack.
    pub fn start_instance(&self, name: &str) -> Result<Server> {
        self.start_instance_with(name, &[])
    }

    /// Start instance `name` of `ferry serve` on this stack with `extra` variables besides
    /// the stack's (e.g. a longer `FERRY_STALL_TIMEOUT`).
    pub fn start_instance_with(&self, name: &str, extra: &[(&str, &str)]) -> Result<Server> {
        let env = self.env();
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        Server::start_with_env(self.data_dir(name), &env)
            .with_context(|| format!("starting instance {name} on PostgreSQL + Garage"))
    }

    /// A random source file of `size` bytes in the stack's directory; prints its size, seed
    /// and BLAKE3, so that a failure can be reproduced.
    pub fn source_file(&self, name: &str, size: u64) -> Result<SourceFile> {
        let source = random_file(self.dir(), name, size)?;
        eprintln!(
            "source: {size} B, rng seed {}, blake3 {}",
            source.seed, source.blake3
        );
        Ok(source)
    }

    /// Passes `result` through; if it is an error, first prints the output tail of each of
    /// `instances` (named) and of Garage, which usually explain it.
    pub fn explain<T>(&self, result: Result<T>, instances: &[(&str, &Server)]) -> Result<T> {
        if result.is_err() {
            for (name, server) in instances {
                eprintln!("instance {name}:\n{}", server.log_tail());
            }
            eprintln!("{}", self.garage.log_tail());
        }
        result
    }
}
