//! One repository suite, run against SQLite and PostgreSQL alike: every scenario takes only a
//! `Db` and runs twice (`NAME::sqlite` on a temporary file, `NAME::postgres` on a database of
//! its own), so the two backends are held to the same behaviour — results, `NotFound` for
//! another tenant's rows, `Conflict` for unique violations and moved offsets, all-or-nothing
//! transactions. This file holds the fixture, the macro and shared helpers; the scenarios
//! live in `db_repository/`, one module per repository, plus `startup` (URLs, migrations,
//! the two schemas compared).

use anyhow::{Result, ensure};
use ferry::audit::{Actor, AuditEntry, EventKind};
use ferry::auth::Role;
use ferry::crypto::MasterKey;
use ferry::db::shares::NewShare;
use ferry::db::uploads::{Checkpoint, CompletedFile, NewUpload};
use ferry::db::{Backend, Db, DbError};
use ferry_testkit::ScratchDb;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// A database of one backend and whatever must outlive it.
struct Fixture {
    db: Db,
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// Declared last: the scratch database is dropped after the pool.
    _scratch: Option<ScratchDb>,
}

impl Fixture {
    /// An empty database of `backend` (nothing migrated yet): its URL, and the temporary
    /// directory or scratch database to keep alive with it.
    fn blank(backend: Backend) -> Result<(String, Option<tempfile::TempDir>, Option<ScratchDb>)> {
        Ok(match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("ferry.db").display()
                );
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let scratch = ScratchDb::create()?;
                (scratch.url().to_owned(), None, Some(scratch))
            }
        })
    }

    async fn open(backend: Backend) -> Result<Self> {
        let (url, dir, scratch) = Self::blank(backend)?;
        let db = Db::connect(&url).await?;
        ensure!(
            db.backend() == backend,
            "{url} opened as {:?}",
            db.backend()
        );
        Ok(Fixture {
            db,
            url,
            _dir: dir,
            _scratch: scratch,
        })
    }

    /// Runs a scenario, then closes the pool so the database can be dropped cleanly.
    async fn run<F: AsyncFnOnce(&Db) -> Result<()>>(backend: Backend, scenario: F) -> Result<()> {
        let fixture = Fixture::open(backend).await?;
        let result = scenario(&fixture.db).await;
        fixture.db.close().await;
        result
    }
}

/// Turns each `async fn NAME(db: &Db) -> Result<()>` into `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use ferry::db::Backend;

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                $crate::db_repository::Fixture::run(Backend::Sqlite, super::$scenario).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                $crate::db_repository::Fixture::run(Backend::Postgres, super::$scenario).await
            }
        }
    )+};
}

mod dkim_keys;
mod relay;
mod share_links;
mod shares;
mod startup;
mod tenants;
mod uploads;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A tenant with an admin key: (tenant id, key id).
async fn tenant(db: &Db, name: &str) -> Result<(Uuid, Uuid)> {
    let tenant = db.create_tenant(name).await?;
    let key = Uuid::new_v4();
    db.insert_api_key(
        key,
        tenant.id,
        Role::Admin,
        &format!("sel-{}", Uuid::new_v4()),
        b"h",
        &audit(tenant.id),
    )
    .await?;
    Ok((tenant.id, key))
}

/// An audit event for `tenant`'s chain (what it says does not matter to these scenarios; the
/// chain itself is tested in `audit`).
fn audit(tenant: Uuid) -> AuditEntry {
    static MASTER: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    let master = MASTER.get_or_init(|| {
        MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap_or_else(|_| unreachable!("a fixed valid key"))
    });
    AuditEntry::new(
        master,
        tenant,
        EventKind::KeyCreated,
        Actor::Operator,
        None,
        serde_json::json!({}),
    )
    .unwrap_or_else(|e| unreachable!("HKDF never fails: {e}"))
}

fn expiry() -> OffsetDateTime {
    datetime!(2030-01-02 03:04:05.678901 UTC)
}

async fn new_upload(db: &Db, tenant: (Uuid, Uuid), length: Option<u64>) -> Result<Uuid> {
    let id = Uuid::new_v4();
    db.create_upload(
        &NewUpload {
            id,
            tenant_id: tenant.0,
            owner_id: tenant.1,
            length,
            metadata: "filename ZC5iaW4=",
            filename: "d.bin",
            wrapped_dek: &[7; 60],
            hash_state: b"empty",
            expires_at: expiry(),
        },
        &audit(tenant.0),
    )
    .await?;
    Ok(id)
}

/// An upload of `length` bytes, completed at once with a hash derived from `name`.
async fn complete_file(db: &Db, tenant: (Uuid, Uuid), name: &str, length: u64) -> Result<Uuid> {
    let id = new_upload(db, tenant, Some(length)).await?;
    db.complete_upload(
        tenant.0,
        id,
        0,
        &CompletedFile {
            length,
            blake3_hex: &format!("hash-of-{name}"),
            crc32: Some(0),
        },
        &audit(tenant.0),
    )
    .await?;
    Ok(id)
}

fn checkpoint(offset: u64, tail: Option<&[u8]>) -> Checkpoint {
    Checkpoint {
        offset,
        hash_state: b"state".to_vec(),
        sealed_tail: tail.map(<[u8]>::to_vec),
        store_state: None,
    }
}

/// Saves `checkpoint` of an upload of 1000 bytes, if it is still at `from`.
async fn save(
    db: &Db,
    tenant_id: Uuid,
    id: Uuid,
    from: u64,
    checkpoint: &Checkpoint,
) -> Result<(), DbError> {
    db.save_checkpoint(tenant_id, id, from, checkpoint, Some(1000), expiry())
        .await
}

fn share<'a>(
    tenant: (Uuid, Uuid),
    selector: &'a str,
    files: &'a [Uuid],
    recipients: &'a [String],
) -> NewShare<'a> {
    NewShare {
        id: Uuid::new_v4(),
        tenant_id: tenant.0,
        created_by: tenant.1,
        token_selector: selector,
        token_hash: b"token-hash",
        note: Some("for you"),
        expires_at: expiry(),
        files,
        files_created_by: None,
        recipients,
    }
}
