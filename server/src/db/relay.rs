//! The relay's tables: SMTP AUTH accounts of tenants' mail servers, and MTA-STS policies by
//! recipient domain.

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, found, now, on_pool, unique_as_conflict};
use crate::audit::AuditEntry;

/// A live relay account as the database has it.
#[derive(Debug, Clone)]
pub struct RelayAccountRow {
    /// Its id.
    pub id: Uuid,
    /// The tenant it relays for.
    pub tenant_id: Uuid,
    /// SHA-256 of the password.
    pub secret_hash: Vec<u8>,
}

/// A cached MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStsPolicy {
    /// The TXT record's id it was fetched under.
    pub policy_id: String,
    /// The policy document.
    pub policy: String,
    /// When it was fetched.
    pub fetched_at: OffsetDateTime,
}

impl Db {
    /// Records a new relay account with its audit event.
    pub async fn insert_relay_account(
        &self,
        id: Uuid,
        tenant_id: Uuid,
        selector: &str,
        secret_hash: &[u8],
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO relay_accounts (id, tenant_id, selector, secret_hash, created_at)
                   VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql)
                .bind(id)
                .bind(tenant_id)
                .bind(selector)
                .bind(secret_hash)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("relay account selector taken"))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live (not revoked) account with this selector; the caller verifies the password.
    pub async fn relay_account_by_selector(
        &self,
        selector: &str,
    ) -> Result<RelayAccountRow, DbError> {
        let sql = "SELECT id, tenant_id, secret_hash FROM relay_accounts
                   WHERE selector = $1 AND revoked_at IS NULL";
        let row: Option<(Uuid, Uuid, Vec<u8>)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(selector)
            .fetch_optional(pool)
            .await?);
        found(row).map(|(id, tenant_id, secret_hash)| RelayAccountRow {
            id,
            tenant_id,
            secret_hash,
        })
    }

    /// The id and tenant of the account with this selector, revoked or not.
    pub async fn relay_account_id(&self, selector: &str) -> Result<(Uuid, Uuid), DbError> {
        let sql = "SELECT id, tenant_id FROM relay_accounts WHERE selector = $1";
        let row: Option<(Uuid, Uuid)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(selector)
            .fetch_optional(pool)
            .await?);
        found(row)
    }

    /// Revokes account `id` with its audit event; `false` if it already was.
    pub async fn revoke_relay_account(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let sql = "UPDATE relay_accounts SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
        let revoked = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(sql)
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 1 {
                append_in((&mut tx).into(), audit).await?;
                tx.commit().await?;
            }
            done == 1
        });
        Ok(revoked)
    }

    /// The cached MTA-STS policy of `domain`.
    pub async fn sts_policy(&self, domain: &str) -> Result<Option<StoredStsPolicy>, DbError> {
        let sql = "SELECT policy_id, policy, fetched_at FROM relay_mta_sts_policies
                   WHERE domain = $1";
        let row: Option<(String, String, OffsetDateTime)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(domain)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(policy_id, policy, fetched_at)| StoredStsPolicy {
            policy_id,
            policy,
            fetched_at,
        }))
    }

    /// Keeps `policy` as the cached MTA-STS policy of `domain`, replacing the one before.
    pub async fn put_sts_policy(
        &self,
        domain: &str,
        policy: &StoredStsPolicy,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO relay_mta_sts_policies (domain, policy_id, policy, fetched_at)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (domain) DO UPDATE SET policy_id = $2, policy = $3,
                       fetched_at = $4";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(domain)
            .bind(&policy.policy_id)
            .bind(&policy.policy)
            .bind(super::stored_time(policy.fetched_at))
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }
}
