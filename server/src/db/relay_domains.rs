//! The domains each tenant's mail server sends from through the relay. One tenant per
//! domain: whoever registered it first keeps it until it is removed.

use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, on_pool, unique_as_conflict};
use crate::audit::AuditEntry;

impl Db {
    /// Registers `domain` (lower case, validated by the caller) for `tenant_id`, with its
    /// audit event. `Ok(false)` when the tenant already had it (nothing recorded); a
    /// `Conflict` when another tenant has it.
    pub async fn add_relay_domain(
        &self,
        tenant_id: Uuid,
        domain: &str,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let owner = "SELECT tenant_id FROM relay_domains WHERE domain = $1";
        let insert =
            "INSERT INTO relay_domains (domain, tenant_id, created_at) VALUES ($1, $2, $3)";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<(Uuid,)> = sqlx::query_as(owner)
                .bind(domain)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some((owner,)) if owner == tenant_id => return Ok(false),
                Some(_) => return Err(DbError::Conflict("the domain belongs to another tenant")),
                None => {}
            }
            sqlx::query(insert)
                .bind(domain)
                .bind(tenant_id)
                .bind(super::now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("the domain belongs to another tenant"))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Removes `domain` from `tenant_id`, with its audit event; `NotFound` when the tenant
    /// does not have it.
    pub async fn remove_relay_domain(
        &self,
        tenant_id: Uuid,
        domain: &str,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "DELETE FROM relay_domains WHERE domain = $1 AND tenant_id = $2";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query(sql)
                .bind(domain)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed == 0 {
                return Err(DbError::NotFound);
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The domains of `tenant_id`, sorted.
    pub async fn relay_domains(&self, tenant_id: Uuid) -> Result<Vec<String>, DbError> {
        let sql = "SELECT domain FROM relay_domains WHERE tenant_id = $1 ORDER BY domain";
        let rows: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(domain,)| domain).collect())
    }

    /// The tenant `domain` belongs to, if any.
    pub async fn relay_domain_owner(&self, domain: &str) -> Result<Option<Uuid>, DbError> {
        let sql = "SELECT tenant_id FROM relay_domains WHERE domain = $1";
        let row: Option<(Uuid,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(domain)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(tenant,)| tenant))
    }
}
