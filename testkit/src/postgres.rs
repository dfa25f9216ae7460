//! A throw-away PostgreSQL database per test (or per group of `ferry` instances that share
//! one), so tests never see each other's rows, nor those of another run on the same server.
//!
//! The admin connection comes from `FERRY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If PostgreSQL cannot be reached the test fails
//! with a message saying so: a PostgreSQL test never passes by skipping.
//!
//! Blocking: each admin statement runs on a small runtime on a thread of its own, so creating
//! and dropping work alike from plain tests, from async tests (on any runtime flavour) and
//! from `Drop`, which cannot await.

use anyhow::{Context, Result, bail};
use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};

/// Where tests find PostgreSQL unless `FERRY_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database `ferry_t_<random>`, dropped (best effort, `WITH (FORCE)`) when this value
/// is dropped.
pub struct ScratchDb {
    url: String,
    admin_url: String,
    name: String,
}

impl ScratchDb {
    /// Creates the database; fails with a clear message if PostgreSQL is unreachable. Blocks
    /// for the one statement (a few milliseconds).
    pub fn create() -> Result<Self> {
        let admin_url = std::env::var("FERRY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into());
        let mut suffix = [0u8; 12];
        rand::rng().fill_bytes(&mut suffix);
        let name = format!(
            "ferry_t_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let sql = format!("CREATE DATABASE {name}");
        run_admin(&admin_url, &sql).with_context(|| {
            format!(
                "PostgreSQL tests need a server: could not create database {name} \
                 via {admin_url} (start PostgreSQL there, or point FERRY_TEST_POSTGRES_URL at one)"
            )
        })?;
        let url = with_database(&admin_url, &name)?;
        Ok(ScratchDb {
            url,
            admin_url,
            name,
        })
    }

    /// URL of the new database, for `FERRY_DATABASE_URL` or `Db::connect`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = run_admin(&self.admin_url, &sql) {
            eprintln!("note: could not drop test database {}: {e:#}", self.name);
        }
    }
}

/// Runs one statement on the admin connection, on a runtime of its own (on a thread of its
/// own too, so it works from inside an async test as well).
fn run_admin(admin_url: &str, sql: &str) -> Result<()> {
    let admin_url = admin_url.to_owned();
    let sql = sql.to_owned();
    std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .with_context(|| format!("connecting to {admin_url}"))?;
            admin
                .execute(sql.as_str())
                .await
                .with_context(|| format!("{sql} via {admin_url}"))?;
            admin.close().await.ok();
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the PostgreSQL admin thread panicked"))?
}

/// `url` with its database (the path) replaced by `name`, keeping user, host and parameters.
fn with_database(url: &str, name: &str) -> Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("FERRY_TEST_POSTGRES_URL {url:?} is not a postgres:// URL");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_database() -> Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x")?,
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "y")?,
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "z")?, "postgres://h:1/z");
        assert!(with_database("h:1/db", "z").is_err());
        Ok(())
    }
}
