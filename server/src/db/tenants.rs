//! Tenants and their API keys.

use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, found, now, on_pool, unique_as_conflict};
use crate::audit::AuditEntry;
use crate::auth::role::Role;

/// An API key as stored: enough to verify a presented secret and to know its tenant and role.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// Key id, recorded as the owner of what it creates.
    pub id: Uuid,
    /// Tenant the key acts for.
    pub tenant_id: Uuid,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
}

/// A newly created tenant.
#[derive(Debug, Clone)]
pub struct TenantRow {
    /// Tenant id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
}

/// A tenant's branding as stored, with its name to fall back on.
#[derive(Debug, Clone)]
pub struct StoredBranding {
    /// The tenant's unique name.
    pub name: String,
    /// The display name its admins set, if any.
    pub display_name: Option<String>,
    /// The logo and its content type, if any.
    pub logo: Option<(String, Vec<u8>)>,
}

impl Db {
    /// Tenant `id`'s branding; `NotFound` if there is no such tenant.
    pub async fn branding(&self, id: Uuid) -> Result<StoredBranding, DbError> {
        let sql = "SELECT name, display_name, logo_type, logo FROM tenants WHERE id = $1";
        type Row = (String, Option<String>, Option<String>, Option<Vec<u8>>);
        let row: Option<Row> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        let (name, display_name, logo_type, logo) = found(row)?;
        Ok(StoredBranding {
            name,
            display_name,
            logo: logo_type.zip(logo),
        })
    }

    /// Replaces tenant `id`'s display name and logo (already validated), with its audit event.
    pub async fn set_branding(
        &self,
        id: Uuid,
        display_name: Option<&str>,
        logo: Option<(&str, &[u8])>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "UPDATE tenants SET display_name = $1, logo_type = $2, logo = $3 WHERE id = $4";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(sql)
                .bind(display_name)
                .bind(logo.map(|(t, _)| t))
                .bind(logo.map(|(_, b)| b))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 0 {
                return Err(DbError::NotFound);
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Creates a tenant; `Conflict` if the name is taken.
    pub async fn create_tenant(&self, name: &str) -> Result<TenantRow, DbError> {
        let id = Uuid::new_v4();
        let sql = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
        let inserted = on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(now())
            .execute(pool)
            .await
            .map(drop));
        inserted.map_err(unique_as_conflict("tenant name taken"))?;
        Ok(TenantRow {
            id,
            name: name.to_owned(),
        })
    }

    /// Looks a tenant up by name (for the CLI).
    pub async fn tenant_by_name(&self, name: &str) -> Result<TenantRow, DbError> {
        let sql = "SELECT id, name FROM tenants WHERE name = $1";
        let row: Option<(Uuid, String)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(pool)
            .await?);
        let (id, name) = found(row)?;
        Ok(TenantRow { id, name })
    }

    /// Stores new API key `id` for `tenant_id` (and the principal of the same id that owns
    /// what it creates) with its audit event; `Conflict` if the id or selector is taken.
    pub async fn insert_api_key(
        &self,
        id: Uuid,
        tenant_id: Uuid,
        role: Role,
        selector: &str,
        secret_hash: &[u8],
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO api_keys (id, tenant_id, role, selector, secret_hash, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let principal = "INSERT INTO principals (id, tenant_id, kind, created_at)
                         VALUES ($1, $2, 'api_key', $3)";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(principal)
                .bind(id)
                .bind(tenant_id)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("API key id or selector taken"))?;
            sqlx::query(sql)
                .bind(id)
                .bind(tenant_id)
                .bind(role.as_str())
                .bind(selector)
                .bind(secret_hash)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("API key id or selector taken"))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live (not revoked) key with this selector; the caller verifies the secret.
    pub async fn api_key_by_selector(&self, selector: &str) -> Result<ApiKeyRow, DbError> {
        let sql = "SELECT id, tenant_id, role, secret_hash FROM api_keys
                   WHERE selector = $1 AND revoked_at IS NULL";
        let row: Option<(Uuid, Uuid, String, Vec<u8>)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(selector)
            .fetch_optional(pool)
            .await?);
        let (id, tenant_id, role, secret_hash) = found(row)?;
        Ok(ApiKeyRow {
            id,
            tenant_id,
            role: Role::parse(&role),
            secret_hash,
        })
    }

    /// The tenant of API key `id`, revoked or not (for the CLI).
    pub async fn api_key_tenant(&self, id: Uuid) -> Result<Uuid, DbError> {
        let sql = "SELECT tenant_id FROM api_keys WHERE id = $1";
        let row: Option<(Uuid,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        found(row).map(|(tenant,)| tenant)
    }

    /// Revokes API key `id` with its audit event: every request with it is refused from the
    /// next lookup on (keys are not cached). `false` if it was already revoked or does not
    /// exist (nothing recorded); the CLI looks the key up first ([`Db::api_key_tenant`]).
    pub async fn revoke_api_key(&self, id: Uuid, audit: &AuditEntry) -> Result<bool, DbError> {
        let sql = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
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

    /// The master key's check value as stored, if one is.
    pub async fn master_key_check(&self) -> Result<Option<Vec<u8>>, DbError> {
        let sql = "SELECT kcv FROM master_key_check WHERE id = 1";
        let row: Option<(Vec<u8>,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(kcv,)| kcv))
    }

    /// Stores the master key's check value unless one is stored already (two instances
    /// starting together store one); returns the value stored.
    pub async fn remember_master_key_check(&self, kcv: &[u8]) -> Result<Vec<u8>, DbError> {
        let sql = "INSERT INTO master_key_check (id, kcv) VALUES (1, $1) ON CONFLICT DO NOTHING";
        on_pool!(self, pool => sqlx::query(sql).bind(kcv).execute(pool).await.map(drop))?;
        self.master_key_check().await?.ok_or(DbError::NotFound)
    }

    /// Any one wrapped data key with its tenant and file, to test a master key against a
    /// database that has no check value yet (made before check values existed).
    pub async fn any_wrapped_key(&self) -> Result<Option<(Uuid, Uuid, Vec<u8>)>, DbError> {
        let sql = "SELECT tenant_id, upload_id, wrapped_dek FROM file_keys LIMIT 1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_optional(pool).await?))
    }
}
