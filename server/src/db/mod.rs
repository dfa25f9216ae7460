//! The database: connection, migrations, and one repository module per table group.
//!
//! Repositories take a tenant id on every query that touches tenant data, so isolation does
//! not depend on a handler remembering a `WHERE`. Multi-row changes run in one transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub mod shares;
pub mod tenants;
pub mod uploads;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row asked for does not exist (or belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the string names the rule.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The driver failed (connection, I/O, SQL).
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations failed at start-up.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database this build does not support yet.
    #[error("unsupported database URL {0:?} (this build supports sqlite://)")]
    Unsupported(String),
}

/// Maps a missing row to [`DbError::NotFound`], the single place where that translation lives.
pub(crate) fn found<T>(row: Option<T>) -> Result<T, DbError> {
    row.ok_or(DbError::NotFound)
}

/// A connection pool with the schema applied.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        if !url.starts_with("sqlite:") {
            return Err(DbError::Unsupported(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against process crashes (SIGKILL); FULL adds power-loss
            // durability of the last commits, which an acknowledged tus offset needs.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Db { pool })
    }

    /// The pool, for repositories.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// True if the error is a violation of a UNIQUE constraint.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
