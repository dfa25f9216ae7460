//! Audit events: appending to a tenant's chain (inside the transaction of the change it
//! records, or alone), and reading a chain back in order.
//!
//! An append first bumps the tenant's row in `audit_heads`: that UPDATE takes the row's lock
//! on PostgreSQL (SQLite has one writer anyway), so appends to one chain are serialised and
//! every event links to the one before it; appends to different tenants do not wait on each
//! other.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Backend, BeginWrite as _, Db, DbError, now, on_pool, stored_time};
use crate::audit::{AuditEntry, GENESIS, StoredEvent, event_hash};

/// A connection inside a write transaction, of either backend: what an append runs on.
pub(crate) enum WriteConn<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl<'c> From<&'c mut sqlx::Transaction<'static, sqlx::Sqlite>> for WriteConn<'c> {
    fn from(tx: &'c mut sqlx::Transaction<'static, sqlx::Sqlite>) -> Self {
        WriteConn::Sqlite(tx)
    }
}

impl<'c> From<&'c mut sqlx::Transaction<'static, sqlx::Postgres>> for WriteConn<'c> {
    fn from(tx: &'c mut sqlx::Transaction<'static, sqlx::Postgres>) -> Self {
        WriteConn::Postgres(tx)
    }
}

/// Runs `$body` with `$conn` bound to the concrete connection of a [`WriteConn`], expanded
/// once per backend (like [`super::on_pool!`] for pools).
macro_rules! on_conn {
    ($write:expr, $conn:ident => $body:expr) => {
        match $write {
            $crate::db::audit::WriteConn::Sqlite($conn) => $body,
            $crate::db::audit::WriteConn::Postgres($conn) => $body,
        }
    };
}
pub(crate) use on_conn;

type RawEvent = (
    Uuid,
    i64,
    Uuid,
    OffsetDateTime,
    String,
    String,
    Option<Uuid>,
    String,
    Vec<u8>,
    Vec<u8>,
);

fn from_raw(raw: RawEvent) -> StoredEvent {
    let (tenant_id, seq, id, at, kind, actor, subject, details, prev_hash, hash) = raw;
    StoredEvent {
        tenant_id,
        seq,
        id,
        at,
        kind,
        actor,
        subject,
        details,
        prev_hash,
        hash,
    }
}

const EVENT_COLUMNS: &str =
    "tenant_id, seq, id, at, kind, actor, subject, details, prev_hash, hash";

/// Appends `entry` to its tenant's chain on `conn` (which must be inside a write
/// transaction); the event commits or rolls back with that transaction.
pub(crate) async fn append_in(conn: WriteConn<'_>, entry: &AuditEntry) -> Result<(), DbError> {
    let start = "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)
                 ON CONFLICT (tenant_id) DO NOTHING";
    let bump = "UPDATE audit_heads SET seq = seq + 1 WHERE tenant_id = $1 RETURNING seq, hash";
    let insert = format!(
        "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    let set_head = "UPDATE audit_heads SET hash = $2 WHERE tenant_id = $1";
    let details = serde_json::to_string(&entry.details)
        .map_err(|_| DbError::Corrupt("audit event details"))?;
    on_conn!(conn, conn => {
            sqlx::query(start)
                .bind(entry.tenant_id)
                .bind(GENESIS.as_slice())
                .execute(&mut *conn)
                .await?;
            let (seq, prev_hash): (i64, Vec<u8>) = sqlx::query_as(bump)
                .bind(entry.tenant_id)
                .fetch_one(&mut *conn)
                .await?;
            let mut event = StoredEvent {
                tenant_id: entry.tenant_id,
                seq,
                id: Uuid::new_v4(),
                at: now(),
                kind: entry.kind.as_str().to_owned(),
                actor: entry.actor.label(),
                subject: entry.subject,
                details,
                prev_hash,
                hash: Vec::new(),
            };
            event.hash = event_hash(&entry.key, &event).to_vec();
            sqlx::query(&insert)
                .bind(event.tenant_id)
                .bind(event.seq)
                .bind(event.id)
                .bind(event.at)
                .bind(&event.kind)
                .bind(&event.actor)
                .bind(event.subject)
                .bind(&event.details)
                .bind(&event.prev_hash)
                .bind(&event.hash)
                .execute(&mut *conn)
                .await?;
            sqlx::query(set_head)
                .bind(event.tenant_id)
                .bind(&event.hash)
                .execute(&mut *conn)
                .await?;
    });
    Ok(())
}

impl Db {
    /// Appends one event in a transaction of its own (for facts that are not a database
    /// change: a page opened, bytes served).
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            append_in((&mut tx).into(), entry).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` events of `tenant_id` after position `after_seq`, in chain order,
    /// recorded in `[since, until)` when those are given.
    pub async fn audit_events(
        &self,
        tenant_id: Uuid,
        after_seq: i64,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, DbError> {
        let window = match self.backend() {
            Backend::Postgres => "($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4)",
            Backend::Sqlite => {
                "($3 IS NULL OR julianday(at) >= julianday($3))
                 AND ($4 IS NULL OR julianday(at) < julianday($4))"
            }
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events
             WHERE tenant_id = $1 AND seq > $2 AND {window}
             ORDER BY seq LIMIT $5"
        );
        let rows: Vec<RawEvent> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(tenant_id)
            .bind(after_seq)
            .bind(since.map(stored_time))
            .bind(until.map(stored_time))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(from_raw).collect())
    }

    /// The events of `kind` about `subject` in `tenant_id`'s chain, in chain order (at most
    /// `limit`).
    pub async fn audit_events_about(
        &self,
        tenant_id: Uuid,
        subject: Uuid,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, DbError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events
             WHERE tenant_id = $1 AND subject = $2 AND kind = $3
             ORDER BY seq LIMIT $4"
        );
        let rows: Vec<RawEvent> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(tenant_id)
            .bind(subject)
            .bind(kind)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(from_raw).collect())
    }

    /// The recorded end of `tenant_id`'s chain: `(seq, hash)` of its last event, `None` if it
    /// never had one.
    pub async fn audit_head(&self, tenant_id: Uuid) -> Result<Option<(i64, Vec<u8>)>, DbError> {
        let sql = "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1";
        let row = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Every tenant with an audit chain (or events), for verifying them all.
    pub async fn audited_tenants(&self) -> Result<Vec<Uuid>, DbError> {
        let sql = "SELECT tenant_id FROM audit_heads
                   UNION SELECT DISTINCT tenant_id FROM audit_events ORDER BY 1";
        let rows: Vec<(Uuid,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
