//! People signed in through Entra ID (principals of kind `entra_user`), and the links that say
//! which Ferry tenant a Microsoft 365 tenant's people sign in to.

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, found, now, on_pool};
use crate::audit::AuditEntry;

/// A Microsoft 365 tenant linked to a Ferry tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraLink {
    /// The Microsoft 365 tenant (`tid` in its people's tokens).
    pub entra_tenant_id: Uuid,
    /// When it was linked.
    pub linked_at: OffsetDateTime,
}

/// A person as stored: the principal id that owns what they create, and the address last
/// seen in their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// Principal id (owner of uploads and shares, `person:<id>` in the audit log).
    pub id: Uuid,
    /// Sign-in address, if the token carried one.
    pub address: Option<String>,
}

/// A person seen for the first time.
#[derive(Debug, Clone)]
pub struct NewPerson<'a> {
    /// The principal id to give them.
    pub id: Uuid,
    /// The Ferry tenant their Microsoft 365 tenant is linked to.
    pub tenant_id: Uuid,
    /// Their Microsoft 365 tenant (`tid`).
    pub entra_tenant_id: Uuid,
    /// Their object id there (`oid`).
    pub entra_object_id: Uuid,
    /// Their sign-in address.
    pub address: Option<&'a str>,
}

impl Db {
    /// Links Microsoft 365 tenant `entra_tenant` to `tenant`, with its audit event. `true` if
    /// it is linked now, `false` if it already was (nothing recorded); `Conflict` if it is
    /// linked to another Ferry tenant (unlink it there first: a tenant's people never move
    /// silently).
    pub async fn link_entra(
        &self,
        entra_tenant: Uuid,
        tenant: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let insert = "INSERT INTO entra_links (entra_tenant_id, tenant_id, linked_at)
                      VALUES ($1, $2, $3) ON CONFLICT (entra_tenant_id) DO NOTHING";
        let holder = "SELECT tenant_id FROM entra_links WHERE entra_tenant_id = $1";
        let linked = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(insert)
                .bind(entra_tenant)
                .bind(tenant)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 1 {
                append_in((&mut tx).into(), audit).await?;
                tx.commit().await?;
                true
            } else {
                let (holder,): (Uuid,) = found(
                    sqlx::query_as(holder)
                        .bind(entra_tenant)
                        .fetch_optional(&mut *tx)
                        .await?,
                )?;
                if holder != tenant {
                    return Err(DbError::Conflict(
                        "this Microsoft 365 tenant is linked to another Ferry tenant",
                    ));
                }
                false
            }
        });
        Ok(linked)
    }

    /// Unlinks `entra_tenant` from `tenant` with its audit event: its people's tokens are
    /// refused from the next request on. `false` if it was not linked to `tenant`.
    pub async fn unlink_entra(
        &self,
        entra_tenant: Uuid,
        tenant: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let sql = "DELETE FROM entra_links WHERE entra_tenant_id = $1 AND tenant_id = $2";
        let unlinked = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(sql)
                .bind(entra_tenant)
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 1 {
                append_in((&mut tx).into(), audit).await?;
                tx.commit().await?;
            }
            done == 1
        });
        Ok(unlinked)
    }

    /// The Microsoft 365 tenants linked to `tenant`, oldest link first.
    pub async fn entra_links(&self, tenant: Uuid) -> Result<Vec<EntraLink>, DbError> {
        let sql = "SELECT entra_tenant_id, linked_at FROM entra_links WHERE tenant_id = $1
                   ORDER BY linked_at, entra_tenant_id";
        let rows: Vec<(Uuid, OffsetDateTime)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(entra_tenant_id, linked_at)| EntraLink {
                entra_tenant_id,
                linked_at,
            })
            .collect())
    }

    /// The Ferry tenant Microsoft 365 tenant `entra_tenant` is linked to; `NotFound` if none.
    pub async fn entra_linked_tenant(&self, entra_tenant: Uuid) -> Result<Uuid, DbError> {
        let sql = "SELECT tenant_id FROM entra_links WHERE entra_tenant_id = $1";
        let row: Option<(Uuid,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(entra_tenant)
            .fetch_optional(pool)
            .await?);
        found(row).map(|(tenant,)| tenant)
    }

    /// For a signed-in person, in one query (it runs on every request they make): the Ferry
    /// tenant `entra_tenant` is linked to, and the person `entra_object_id` there if they
    /// signed in before. `NotFound` if the Microsoft 365 tenant is not linked.
    pub async fn linked_person(
        &self,
        entra_tenant: Uuid,
        entra_object_id: Uuid,
    ) -> Result<(Uuid, Option<PersonRow>), DbError> {
        let sql = "SELECT l.tenant_id, p.id, p.address FROM entra_links l
                   LEFT JOIN principals p ON p.tenant_id = l.tenant_id
                       AND p.entra_tenant_id = l.entra_tenant_id AND p.entra_object_id = $2
                       AND p.kind = 'entra_user'
                   WHERE l.entra_tenant_id = $1";
        let row: Option<(Uuid, Option<Uuid>, Option<String>)> = on_pool!(self, pool => sqlx::query_as(sql)
                .bind(entra_tenant)
                .bind(entra_object_id)
                .fetch_optional(pool)
                .await?);
        let (tenant, id, address) = found(row)?;
        Ok((tenant, id.map(|id| PersonRow { id, address })))
    }

    /// The person `entra_object_id` of `entra_tenant` within `tenant`; `NotFound` before
    /// their first sign-in (what a first sign-in that lost a race to record them reads).
    pub async fn person(
        &self,
        tenant: Uuid,
        entra_tenant: Uuid,
        entra_object_id: Uuid,
    ) -> Result<PersonRow, DbError> {
        let sql = "SELECT id, address FROM principals
                   WHERE tenant_id = $1 AND entra_tenant_id = $2 AND entra_object_id = $3
                       AND kind = 'entra_user'";
        let row: Option<(Uuid, Option<String>)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant)
            .bind(entra_tenant)
            .bind(entra_object_id)
            .fetch_optional(pool)
            .await?);
        found(row).map(|(id, address)| PersonRow { id, address })
    }

    /// Records a person at their first sign-in, with its audit event. Two first requests at
    /// once record one person: the one that loses the race gets the winner's row (and
    /// records nothing).
    pub async fn add_person(
        &self,
        new: &NewPerson<'_>,
        audit: &AuditEntry,
    ) -> Result<PersonRow, DbError> {
        let sql = "INSERT INTO principals (id, tenant_id, kind, entra_tenant_id, entra_object_id,
                                           address, created_at)
                   VALUES ($1, $2, 'entra_user', $3, $4, $5, $6)
                   ON CONFLICT (tenant_id, entra_tenant_id, entra_object_id) DO NOTHING";
        let added = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let added = sqlx::query(sql)
                .bind(new.id)
                .bind(new.tenant_id)
                .bind(new.entra_tenant_id)
                .bind(new.entra_object_id)
                .bind(new.address)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if added == 1 {
                append_in((&mut tx).into(), audit).await?;
                tx.commit().await?;
            }
            added == 1
        });
        if added {
            return Ok(PersonRow {
                id: new.id,
                address: new.address.map(str::to_owned),
            });
        }
        self.person(new.tenant_id, new.entra_tenant_id, new.entra_object_id)
            .await
    }

    /// Keeps the address a person last signed in with (addresses change; the object id
    /// does not).
    pub async fn set_person_address(
        &self,
        tenant: Uuid,
        id: Uuid,
        address: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = "UPDATE principals SET address = $1
                   WHERE id = $2 AND tenant_id = $3 AND kind = 'entra_user'";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(address)
            .bind(id)
            .bind(tenant)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }
}
