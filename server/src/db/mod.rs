//! The database: connection, migrations, and one repository module per table group.
//!
//! Two backends, one behaviour: SQLite (the default, one machine) and PostgreSQL (several
//! instances). The URL's scheme picks one; both get the same schema from their own migration
//! folder (`migrations/sqlite`, `migrations/postgres`) at start-up. Repositories write each
//! query once — `$1, $2…` placeholders and `ON CONFLICT` work on both — and run it through
//! [`on_pool!`], which expands the same body for each concrete pool, so every column decodes
//! with that driver's native types (sqlx's `Any` driver cannot decode `Uuid` or times).
//!
//! Repositories take a tenant id on every query that touches tenant data, so isolation does
//! not depend on a handler remembering a `WHERE`. Multi-row changes run in one transaction.
//! `tests/db_repository.rs` runs one suite against both backends.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _};
use time::OffsetDateTime;

pub mod audit;
pub mod dkim_keys;
pub mod expiry;
pub mod people;
pub mod policy;
pub mod relay;
pub mod relay_domains;
pub mod relay_queue;
pub mod share_links;
pub mod share_status;
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
    /// A stored value cannot be read back (names the value): the row was altered by hand.
    #[error("stored {0} is unreadable")]
    Corrupt(&'static str),
    /// The URL names a database this build does not support; holds only the URL's scheme,
    /// since the rest may carry a password.
    #[error("unsupported database URL scheme {0:?} (use sqlite:// or postgres://)")]
    Unsupported(String),
}

/// Maps a missing row to [`DbError::NotFound`], the single place where that translation lives.
pub(crate) fn found<T>(row: Option<T>) -> Result<T, DbError> {
    row.ok_or(DbError::NotFound)
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (`sqlite:`), for a single machine.
    Sqlite,
    /// PostgreSQL (`postgres:` or `postgresql:`), for several instances.
    Postgres,
}

impl Backend {
    /// The backend a database URL selects, by its scheme; `Unsupported` for any other.
    pub fn of_url(url: &str) -> Result<Backend, DbError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(DbError::Unsupported(scheme.to_owned())),
        }
    }
}

/// The connection pool of one backend. Repositories reach it through [`on_pool!`].
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool (`&SqlitePool` or `&PgPool`) of `$db`.
///
/// The body is expanded once per backend, so it is type-checked against both drivers; it may
/// use `.await` and `?` as if written in place, and must evaluate to the same type in both
/// (map driver-specific results such as `rows_affected()` inside it).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Starting a transaction that will write. SQLite's default (deferred) transaction that reads
/// first and writes later fails at once with `SQLITE_BUSY` when another connection wrote in
/// between (WAL cannot upgrade a stale read snapshot, and the busy timeout does not apply);
/// `BEGIN IMMEDIATE` takes the write lock up front and waits for it instead. PostgreSQL's row
/// locks need nothing special.
pub(crate) trait BeginWrite {
    /// The backend.
    type Database: sqlx::Database;
    /// Begins a transaction that holds the right to write from its first statement.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Database = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// A connection pool with the schema applied.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
}

impl Db {
    /// Opens the database at `url` and applies pending migrations. `sqlite:` URLs create the
    /// file if needed; `postgres:`/`postgresql:` URLs need an existing database. Any other
    /// scheme is `Unsupported`.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = match Backend::of_url(url)? {
            Backend::Sqlite => Pool::Sqlite(connect_sqlite(url).await?),
            Backend::Postgres => Pool::Postgres(connect_postgres(url).await?),
        };
        Ok(Db { pool })
    }

    /// Which backend this handle uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool, for repositories (through [`on_pool!`]).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Pushes a crypto-shred (a deleted wrapped key) out of places it would linger. On
    /// SQLite, `secure_delete` zeroes the row in the database file, but the WAL still holds
    /// the pages written before: a `TRUNCATE` checkpoint copies them back and empties it
    /// (best effort: a busy reader can keep the WAL until the next checkpoint). On
    /// PostgreSQL nothing can be done from here (DESIGN.md, "What shredding guarantees").
    pub(crate) async fn flush_shredded(&self) {
        if let Pool::Sqlite(pool) = &self.pool
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await
        {
            tracing::warn!(error = %e, "checkpoint after shredding a key failed; the next one will do");
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    /// Closes every connection of the pool and waits until they are closed (for tests that
    /// drop their database afterwards, and for orderly shutdown).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

async fn connect_sqlite(url: &str) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable against process crashes (SIGKILL); FULL adds power-loss
        // durability of the last commits, which an acknowledged tus offset needs.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // A deleted row's bytes are overwritten, not left in a free page: crypto-shredding
        // deletes wrapped keys, which must not linger in the file (see `flush_shredded`).
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_secs(10));
    migrate_sqlite(&options).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies the SQLite migrations on a connection of its own with foreign keys off, as SQLite
/// prescribes for rebuilding a table (0007 rebuilds `uploads` and `shares`: SQLite cannot
/// change a foreign key in place, and dropping a referenced table with keys on fails), then,
/// when a migration was applied, checks every foreign key before any request can run.
async fn migrate_sqlite(options: &SqliteConnectOptions) -> Result<(), DbError> {
    const APPLIED: &str = "SELECT COUNT(*) FROM _sqlx_migrations";
    let mut conn = options.clone().foreign_keys(false).connect().await?;
    // A new database has no bookkeeping table yet: nothing applied.
    let before: i64 = sqlx::query_scalar(APPLIED)
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0);
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut conn)
        .await?;
    let after: i64 = sqlx::query_scalar(APPLIED).fetch_one(&mut conn).await?;
    // The check reads every row; it runs only when a migration was applied just now.
    let broken: Vec<(String,)> = if after > before {
        sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await?
    } else {
        Vec::new()
    };
    conn.close().await?;
    if broken.is_empty() {
        Ok(())
    } else {
        Err(DbError::Corrupt(
            "foreign keys (rows that reference nothing)",
        ))
    }
}

async fn connect_postgres(url: &str) -> Result<PgPool, DbError> {
    // PostgreSQL's defaults already give what an acknowledged offset needs (synchronous_commit
    // on: a commit returns once its WAL is flushed) and enforce foreign keys.
    let options = PgConnectOptions::from_str(url)?.application_name("ferry");
    let pool = PgPoolOptions::new()
        // Writers do not serialise on one file as in SQLite, so more connections pay off.
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    // sqlx takes an advisory lock while migrating, so instances starting together are safe.
    sqlx::migrate!("../migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// Maps a UNIQUE violation (SQLite and PostgreSQL alike) to `Conflict(what)`, anything else
/// to a driver error: the one place that translation lives.
pub(crate) fn unique_as_conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |err| match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict(what),
        other => other.into(),
    }
}

/// An update guarded by the offset it started from changed exactly one row, or the upload
/// moved (or is no longer uploading) and nothing was written.
pub(crate) fn guarded_update(rows_affected: u64) -> Result<(), DbError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(DbError::Conflict("upload offset moved"))
    }
}

/// `t` cut to whole microseconds, PostgreSQL's `TIMESTAMPTZ` resolution. Every time is stored
/// through this, so a value reads back the same on both backends.
pub(crate) fn stored_time(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// SQL that is true when time column `column` is before time parameter `param`. SQLite keeps
/// times as RFC 3339 text, which does not sort as time, so it compares through `julianday`.
pub(crate) fn earlier(backend: Backend, column: &str, param: &str) -> String {
    match backend {
        Backend::Postgres => format!("{column} < {param}"),
        Backend::Sqlite => format!("julianday({column}) < julianday({param})"),
    }
}

/// SQL that is true when time column `column` is at or before time parameter `param` (see
/// [`earlier`]).
pub(crate) fn at_or_before(backend: Backend, column: &str, param: &str) -> String {
    match backend {
        Backend::Postgres => format!("{column} <= {param}"),
        Backend::Sqlite => format!("julianday({column}) <= julianday({param})"),
    }
}

/// The current time as stored.
pub(crate) fn now() -> OffsetDateTime {
    stored_time(OffsetDateTime::now_utc())
}
