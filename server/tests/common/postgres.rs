//! A throw-away PostgreSQL database per test, so tests never see each other's rows, nor those
//! of another run on the same server.
//!
//! The admin connection comes from `FERRY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If PostgreSQL cannot be reached the test fails
//! with a message saying so: a Postgres test never passes by skipping.

use anyhow::{Context, Result, bail};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

/// Where tests find PostgreSQL unless `FERRY_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database `ferry_t_<random>`, dropped (best effort) when this value is dropped.
pub struct ScratchDb {
    /// URL of the new database, for `FERRY_DATABASE_URL` or `Db::connect`.
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDb {
    /// Creates the database; fails with a clear message if PostgreSQL is unreachable.
    pub async fn create() -> Result<Self> {
        let admin_url =
            std::env::var("FERRY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "PostgreSQL tests need a server: could not connect to {admin_url} \
                 (start PostgreSQL there, or point FERRY_TEST_POSTGRES_URL at one)"
            )
        })?;
        let name = format!("ferry_t_{}", Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("creating test database {name} via {admin_url}"))?;
        admin.close().await.ok();
        let url = with_database(&admin_url, &name)?;
        Ok(ScratchDb {
            url,
            admin_url,
            name,
        })
    }
}

impl Drop for ScratchDb {
    /// Drops the database on a thread of its own: `Drop` cannot await, and the test's runtime
    /// may be a single thread that is busy running this very drop.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                admin.execute(sql.as_str()).await.ok()?;
                admin.close().await.ok()
            })
        });
        if dropper.join().ok().flatten().is_none() {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
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
