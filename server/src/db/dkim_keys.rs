//! Tenants' DKIM keys, sealed: several per domain (one selector each), of which the newest
//! activated one signs. A new key for a domain that already signs waits until it is activated,
//! so its DNS record can be published first (rotation without a window of failing signatures).

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, found, now, on_pool, unique_as_conflict};
use crate::audit::AuditEntry;

/// A tenant's DKIM key as stored (sealed).
#[derive(Debug, Clone)]
pub struct StoredDkimKey {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// The sealed key's id (its AAD).
    pub key_id: Uuid,
    /// The sealing key, wrapped by the tenant's key.
    pub wrapped_dek: Vec<u8>,
    /// The PKCS#8 private key, sealed.
    pub sealed_key: Vec<u8>,
}

/// A key as the operator lists it (never the key itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DkimKeyRow {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it began to sign (`None`: waiting to be activated).
    pub activated_at: Option<OffsetDateTime>,
}

impl Db {
    /// Stores a new DKIM key for a domain and selector, with its event; it signs at once when
    /// no other key of the domain does, else it waits to be activated. Whether it signs now;
    /// `Conflict` when the selector exists (its record may be published: make another).
    pub async fn put_dkim_key(
        &self,
        tenant_id: Uuid,
        key: &StoredDkimKey,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let signing = "SELECT 1 FROM relay_dkim_keys
                       WHERE tenant_id = $1 AND domain = $2 AND activated_at IS NOT NULL";
        let insert = "INSERT INTO relay_dkim_keys (tenant_id, domain, selector, algorithm, key_id,
                          wrapped_dek, sealed_key, created_at, activated_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let active = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let other: Option<(i32,)> = sqlx::query_as(signing)
                .bind(tenant_id)
                .bind(&key.domain)
                .fetch_optional(&mut *tx)
                .await?;
            let at = now();
            sqlx::query(insert)
                .bind(tenant_id)
                .bind(&key.domain)
                .bind(&key.selector)
                .bind(&key.algorithm)
                .bind(key.key_id)
                .bind(&key.wrapped_dek)
                .bind(&key.sealed_key)
                .bind(at)
                .bind(other.is_none().then_some(at))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("the domain has a key with this selector"))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
            other.is_none()
        });
        Ok(active)
    }

    /// The key the tenant signs mail from `domain` with: the newest activated one.
    pub async fn dkim_key_for(
        &self,
        tenant_id: Uuid,
        domain: &str,
    ) -> Result<Option<StoredDkimKey>, DbError> {
        let sql = "SELECT domain, selector, algorithm, key_id, wrapped_dek, sealed_key
                   FROM relay_dkim_keys
                   WHERE tenant_id = $1 AND domain = $2 AND activated_at IS NOT NULL
                   ORDER BY activated_at DESC LIMIT 1";
        type Raw = (String, String, String, Uuid, Vec<u8>, Vec<u8>);
        let row: Option<Raw> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .bind(domain)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(
            |(domain, selector, algorithm, key_id, wrapped_dek, sealed_key)| StoredDkimKey {
                domain,
                selector,
                algorithm,
                key_id,
                wrapped_dek,
                sealed_key,
            },
        ))
    }

    /// The tenant's keys, by domain and age.
    pub async fn dkim_keys(&self, tenant_id: Uuid) -> Result<Vec<DkimKeyRow>, DbError> {
        let sql = "SELECT domain, selector, algorithm, created_at, activated_at
                   FROM relay_dkim_keys WHERE tenant_id = $1 ORDER BY domain, created_at";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await?))
    }

    /// Makes a key the one that signs from now on (activated now: the newest), with its event.
    /// `NotFound` when the tenant has no such key.
    pub async fn activate_dkim_key(
        &self,
        tenant_id: Uuid,
        domain: &str,
        selector: &str,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "UPDATE relay_dkim_keys SET activated_at = $4
                   WHERE tenant_id = $1 AND domain = $2 AND selector = $3";
        self.change_dkim_key(sql, tenant_id, domain, selector, Some(now()), audit)
            .await
    }

    /// Deletes a key (sealed: nothing of it is left), with its event. `NotFound` when the
    /// tenant has no such key.
    pub async fn remove_dkim_key(
        &self,
        tenant_id: Uuid,
        domain: &str,
        selector: &str,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "DELETE FROM relay_dkim_keys
                   WHERE tenant_id = $1 AND domain = $2 AND selector = $3";
        self.change_dkim_key(sql, tenant_id, domain, selector, None, audit)
            .await
    }

    /// Runs `sql` on one key (`$1`–`$3`: tenant, domain, selector; `$4`: `at`, when given)
    /// with `audit`, in one transaction; `NotFound` unless it touched a row.
    async fn change_dkim_key(
        &self,
        sql: &str,
        tenant_id: Uuid,
        domain: &str,
        selector: &str,
        at: Option<OffsetDateTime>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut query = sqlx::query(sql).bind(tenant_id).bind(domain).bind(selector);
            if let Some(at) = at {
                query = query.bind(at);
            }
            let changed = query.execute(&mut *tx).await?.rows_affected();
            found((changed == 1).then_some(()))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
