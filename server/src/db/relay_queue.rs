//! The relay's queue: messages (sealed body in the store, key wrapped here) and one row per
//! recipient with its state and claim. Claims work as the expiry job's do (db/expiry.rs):
//! one statement, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances sharing the database
//! never take the same recipient at once; a claim that runs out (its instance died) is taken
//! again.

use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::append_in;
use super::{
    Backend, BeginWrite as _, Db, DbError, at_or_before, earlier, found, on_pool, stored_time,
};
use crate::audit::AuditEntry;

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewRelayMessage<'a> {
    /// Queue id (also the store object's id).
    pub id: Uuid,
    /// Whose.
    pub tenant_id: Uuid,
    /// The Message-ID header.
    pub message_id: &'a str,
    /// MAIL FROM.
    pub envelope_from: &'a str,
    /// Plaintext bytes.
    pub size: u64,
    /// The body's key, wrapped by the tenant's key.
    pub wrapped_dek: &'a [u8],
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// When undeliverable recipients stop being retried.
    pub hold_until: OffsetDateTime,
    /// (recipient, its domain), in order.
    pub recipients: &'a [(String, String)],
}

/// A queued message.
#[derive(Debug, Clone)]
pub struct RelayMessageRow {
    /// The Message-ID header.
    pub message_id: String,
    /// MAIL FROM.
    pub envelope_from: String,
    /// Plaintext bytes.
    pub size: u64,
    /// `None` once shredded.
    pub wrapped_dek: Option<Vec<u8>>,
    /// When undeliverable recipients stop being retried.
    pub hold_until: OffsetDateTime,
    /// When it arrived.
    pub received_at: OffsetDateTime,
}

/// A recipient an instance has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRecipient {
    /// The message.
    pub queue_id: Uuid,
    /// Whose.
    pub tenant_id: Uuid,
    /// The address.
    pub recipient: String,
    /// Its domain (recipients of one message and domain go in one session).
    pub domain: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The links this recipient's copy carries, sealed under the message's key; `None`
    /// until the first attempt minted them.
    pub sealed_links: Option<Vec<u8>>,
}

/// The queue's numbers for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct RelayQueueStats {
    /// Recipients waiting.
    pub queued: u64,
    /// When the oldest waiting recipient's message arrived.
    pub oldest_received: Option<OffsetDateTime>,
    /// (status, method or "", count) of finished recipients.
    pub finished: Vec<(String, String, u64)>,
}

/// Where a recipient stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Try again at this time.
    Retry(OffsetDateTime),
    /// Delivered.
    Delivered,
    /// Refused for good.
    Bounced,
    /// The hold window ended undelivered.
    Expired,
}

impl Db {
    /// Queues a message and those recipients not already queued under its Message-ID for this
    /// tenant (a client resubmitting after a lost 250), with `audit`, in one transaction.
    /// Returns how many recipients were new; with none, nothing is stored.
    pub async fn enqueue_relay_message(
        &self,
        message: &NewRelayMessage<'_>,
        audit: &AuditEntry,
    ) -> Result<usize, DbError> {
        let insert_message = "INSERT INTO relay_messages (id, tenant_id, message_id,
                                  envelope_from, size, wrapped_dek, received_at, hold_until)
                              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let insert_recipient = "INSERT INTO relay_recipients (queue_id, tenant_id, message_id,
                                    recipient, domain, status, next_attempt_at)
                                VALUES ($1, $2, $3, $4, $5, 'queued', $6)
                                ON CONFLICT (tenant_id, message_id, recipient) DO NOTHING";
        let size = i64::try_from(message.size).map_err(|_| DbError::Corrupt("message size"))?;
        let added = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(insert_message)
                .bind(message.id)
                .bind(message.tenant_id)
                .bind(message.message_id)
                .bind(message.envelope_from)
                .bind(size)
                .bind(message.wrapped_dek)
                .bind(stored_time(message.received_at))
                .bind(stored_time(message.hold_until))
                .execute(&mut *tx)
                .await?;
            let mut added = 0;
            for (recipient, domain) in message.recipients {
                added += sqlx::query(insert_recipient)
                    .bind(message.id)
                    .bind(message.tenant_id)
                    .bind(message.message_id)
                    .bind(recipient)
                    .bind(domain)
                    .bind(stored_time(message.received_at))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
            }
            if added > 0 {
                append_in((&mut tx).into(), audit).await?;
                tx.commit().await?;
            }
            added
        });
        Ok(added)
    }

    /// Claims up to `limit` queued recipients due at `now` for `claimant` until `until`;
    /// recipients another instance holds are skipped, never waited for.
    pub async fn claim_relay_work(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        claimant: &str,
        limit: u32,
    ) -> Result<Vec<ClaimedRecipient>, DbError> {
        let backend = self.backend();
        let lock = match backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE relay_recipients SET claimed_until = $3, claimed_by = $4
             WHERE (queue_id, recipient) IN (
                 SELECT queue_id, recipient FROM relay_recipients
                 WHERE status = 'queued' AND {due}
                   AND (claimed_until IS NULL OR {unclaimed})
                 ORDER BY next_attempt_at LIMIT $2 {lock})
             RETURNING queue_id, tenant_id, recipient, domain, attempts, links",
            due = at_or_before(backend, "next_attempt_at", "$1"),
            unclaimed = earlier(backend, "claimed_until", "$1"),
        );
        type Raw = (Uuid, Uuid, String, String, i64, Option<Vec<u8>>);
        let rows: Vec<Raw> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query_as(&sql)
                .bind(stored_time(now))
                .bind(i64::from(limit))
                .bind(stored_time(until))
                .bind(claimant)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .map(
                |(queue_id, tenant_id, recipient, domain, attempts, sealed_links)| {
                    ClaimedRecipient {
                        queue_id,
                        tenant_id,
                        recipient,
                        domain,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        sealed_links,
                    }
                },
            )
            .collect())
    }

    /// A queued message of `tenant_id`.
    pub async fn relay_message(
        &self,
        tenant_id: Uuid,
        queue_id: Uuid,
    ) -> Result<RelayMessageRow, DbError> {
        let sql = "SELECT message_id, envelope_from, size, wrapped_dek, hold_until, received_at
                   FROM relay_messages WHERE tenant_id = $1 AND id = $2";
        type Raw = (
            String,
            String,
            i64,
            Option<Vec<u8>>,
            OffsetDateTime,
            OffsetDateTime,
        );
        let row: Option<Raw> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .bind(queue_id)
            .fetch_optional(pool)
            .await?);
        let (message_id, envelope_from, size, wrapped_dek, hold_until, received_at) = found(row)?;
        Ok(RelayMessageRow {
            message_id,
            envelope_from,
            size: u64::try_from(size).map_err(|_| DbError::Corrupt("message size"))?,
            wrapped_dek,
            hold_until,
            received_at,
        })
    }

    /// Records one recipient's attempt: its new state, the error if any, and the proof
    /// records in `audit` (appended in the same transaction). Only the claimant's claim is
    /// updated; `false` when it no longer holds it (it ran out and another took it).
    pub async fn record_relay_attempt(
        &self,
        claim: &ClaimedRecipient,
        claimant: &str,
        state: RecipientState,
        error: Option<&str>,
        method: Option<&str>,
        audit: &[AuditEntry],
    ) -> Result<bool, DbError> {
        let now = super::now();
        let (status, next) = match state {
            RecipientState::Retry(at) => ("queued", stored_time(at)),
            RecipientState::Delivered => ("delivered", now),
            RecipientState::Bounced => ("bounced", now),
            RecipientState::Expired => ("expired", now),
        };
        let done_at = (status != "queued").then_some(now);
        let sql = "UPDATE relay_recipients SET status = $1, next_attempt_at = $2,
                       attempts = attempts + 1, last_error = $3, done_at = $4,
                       claimed_until = NULL, claimed_by = NULL, method = $9,
                       links = CASE WHEN $1 = 'queued' THEN links ELSE NULL END
                   WHERE tenant_id = $5 AND queue_id = $6 AND recipient = $7
                     AND claimed_by = $8 AND status = 'queued'";
        let recorded = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(sql)
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(done_at)
                .bind(claim.tenant_id)
                .bind(claim.queue_id)
                .bind(&claim.recipient)
                .bind(claimant)
                .bind(method)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 1 {
                for entry in audit {
                    append_in((&mut tx).into(), entry).await?;
                }
                tx.commit().await?;
            }
            done == 1
        });
        Ok(recorded)
    }

    /// Keeps the links minted for a claimed recipient's copy (sealed), so every retry sends
    /// the same ones; `false` when `claimant` no longer holds the claim (then they are not
    /// kept, and the copy is not sent).
    pub async fn keep_relay_links(
        &self,
        claim: &ClaimedRecipient,
        claimant: &str,
        sealed: &[u8],
    ) -> Result<bool, DbError> {
        let sql = "UPDATE relay_recipients SET links = $1
                   WHERE tenant_id = $2 AND queue_id = $3 AND recipient = $4
                     AND claimed_by = $5 AND status = 'queued'";
        let kept = on_pool!(self, pool => sqlx::query(sql)
            .bind(sealed)
            .bind(claim.tenant_id)
            .bind(claim.queue_id)
            .bind(&claim.recipient)
            .bind(claimant)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(kept == 1)
    }

    /// Shreds the message's key once no recipient is left queued; `true` if it did now.
    pub async fn shred_finished_relay_message(
        &self,
        tenant_id: Uuid,
        queue_id: Uuid,
    ) -> Result<bool, DbError> {
        let sql = "UPDATE relay_messages SET wrapped_dek = NULL
                   WHERE tenant_id = $1 AND id = $2 AND wrapped_dek IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM relay_recipients
                                     WHERE queue_id = $2 AND status = 'queued')";
        let done = on_pool!(self, pool => sqlx::query(sql)
            .bind(tenant_id)
            .bind(queue_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Deletes the rows of messages finished (key shredded) that arrived before `before`: the
    /// proof records stay in the audit chain; envelopes and states do not stay forever. How
    /// many messages went.
    pub async fn purge_finished_relay_messages(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, DbError> {
        let backend = self.backend();
        let old = format!(
            "wrapped_dek IS NULL AND {}",
            earlier(backend, "received_at", "$1")
        );
        let recipients = format!(
            "DELETE FROM relay_recipients WHERE queue_id IN (SELECT id FROM relay_messages WHERE {old})"
        );
        let messages = format!("DELETE FROM relay_messages WHERE {old}");
        let purged = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(&recipients)
                .bind(stored_time(before))
                .execute(&mut *tx)
                .await?;
            let purged = sqlx::query(&messages)
                .bind(stored_time(before))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            purged
        });
        Ok(purged)
    }

    /// The queue ids under which `tenant_id` relayed a message with this Message-ID (one,
    /// or more when a client resubmitted it to new recipients).
    pub async fn relay_queue_ids(
        &self,
        tenant_id: Uuid,
        message_id: &str,
    ) -> Result<Vec<Uuid>, DbError> {
        let sql = "SELECT id FROM relay_messages WHERE tenant_id = $1 AND message_id = $2
                   ORDER BY received_at";
        let rows: Vec<(Uuid,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .bind(message_id)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The queue at a glance, over every tenant (for `/metrics`: no tenant in it): recipients
    /// queued, when the oldest of them arrived, and the count per final state and method.
    pub async fn relay_queue_stats(&self) -> Result<RelayQueueStats, DbError> {
        let queued = "SELECT COUNT(*), MIN(m.received_at) FROM relay_recipients r
                      JOIN relay_messages m ON m.id = r.queue_id WHERE r.status = 'queued'";
        let done = "SELECT status, COALESCE(method, ''), COUNT(*) FROM relay_recipients
                    WHERE status <> 'queued' GROUP BY status, method ORDER BY 1, 2";
        let (depth, oldest, by_outcome) = on_pool!(self, pool => {
            let (depth, oldest): (i64, Option<OffsetDateTime>) =
                sqlx::query_as(queued).fetch_one(pool).await?;
            let rows: Vec<(String, String, i64)> = sqlx::query_as(done).fetch_all(pool).await?;
            (depth, oldest, rows)
        });
        Ok(RelayQueueStats {
            queued: u64::try_from(depth).unwrap_or(0),
            oldest_received: oldest,
            finished: by_outcome
                .into_iter()
                .map(|(s, m, n)| (s, m, u64::try_from(n).unwrap_or(0)))
                .collect(),
        })
    }

    /// The recipients of a message and their states, for status and tests.
    pub async fn relay_recipients(
        &self,
        tenant_id: Uuid,
        queue_id: Uuid,
    ) -> Result<Vec<(String, String, u32)>, DbError> {
        let sql = "SELECT recipient, status, attempts FROM relay_recipients
                   WHERE tenant_id = $1 AND queue_id = $2 ORDER BY recipient";
        let rows: Vec<(String, String, i64)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .bind(queue_id)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(r, s, a)| (r, s, u32::try_from(a).unwrap_or(u32::MAX)))
            .collect())
    }
}
