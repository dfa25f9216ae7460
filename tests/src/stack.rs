//! The production path for end-to-end tests: a scratch PostgreSQL database, a real Garage
//! (S3, region eu-central-1) and one master key, shared by as many `ferry serve` instances as
//! a test starts, each with a data directory of its own (its local spool).

use std::path::PathBuf;

use anyhow::{Context, Result};
use rand::Rng;
use tempfile::TempDir;

use crate::api::base64;
use crate::garage::Garage;
use crate::postgres::ScratchDb;
use crate::server::Server;

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
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let dir = tempfile::Builder::new()
            .prefix("ferry-stack-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        Ok(S3Stack {
            garage,
            db,
            master_key: base64(&key),
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
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start_with_env(self.data_dir(name), &env)
            .with_context(|| format!("starting instance {name} on PostgreSQL + Garage"))
    }
}
