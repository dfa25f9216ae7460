//! Tenant policies: one row per tenant that changed the defaults.

use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, now, on_pool};
use crate::audit::AuditEntry;
use crate::policy::Policy;

type RawPolicy = (
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

impl Db {
    /// The tenant's policy; the defaults if its admins never set one.
    pub async fn policy(&self, tenant_id: Uuid) -> Result<Policy, DbError> {
        let sql = "SELECT default_days, max_days, max_upload_bytes, allowed_recipient_domains,
                       max_downloads_per_file, relay_hold_hours
                   FROM tenant_policies WHERE tenant_id = $1";
        let row: Option<RawPolicy> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        let Some((default_days, max_days, max_upload_bytes, domains, max_downloads, hold)) = row
        else {
            return Ok(Policy::default());
        };
        let days = |d: i64| u32::try_from(d).map_err(|_| DbError::Corrupt("policy days"));
        Ok(Policy {
            default_days: days(default_days)?,
            max_days: days(max_days)?,
            max_upload_bytes: max_upload_bytes.and_then(|b| u64::try_from(b).ok()),
            allowed_recipient_domains: domains
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| DbError::Corrupt("policy domains"))?,
            max_downloads_per_file: max_downloads
                .map(|n| u32::try_from(n).map_err(|_| DbError::Corrupt("policy download limit")))
                .transpose()?,
            relay_hold_hours: hold
                .map(|n| u32::try_from(n).map_err(|_| DbError::Corrupt("policy relay hold")))
                .transpose()?,
        })
    }

    /// Replaces the tenant's policy (already validated), with its audit event.
    pub async fn set_policy(
        &self,
        tenant_id: Uuid,
        policy: &Policy,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO tenant_policies (tenant_id, default_days, max_days,
                       max_upload_bytes, allowed_recipient_domains, updated_at,
                       max_downloads_per_file, relay_hold_hours)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (tenant_id) DO UPDATE SET default_days = $2, max_days = $3,
                       max_upload_bytes = $4, allowed_recipient_domains = $5, updated_at = $6,
                       max_downloads_per_file = $7, relay_hold_hours = $8";
        let domains = policy
            .allowed_recipient_domains
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| DbError::Corrupt("policy domains"))?;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql)
                .bind(tenant_id)
                .bind(i64::from(policy.default_days))
                .bind(i64::from(policy.max_days))
                .bind(policy.max_upload_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
                .bind(domains)
                .bind(now())
                .bind(policy.max_downloads_per_file.map(i64::from))
                .bind(policy.relay_hold_hours.map(i64::from))
                .execute(&mut *tx)
                .await?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
