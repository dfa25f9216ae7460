//! Start-up: URL schemes, migrations applied once, and the two schemas compared.

use anyhow::{Result, bail, ensure};
use ferry::db::{Backend, Db, DbError};

use super::Fixture;

/// Reopening a database (a restart, or a second instance) applies no migration twice and
/// finds what the first handle wrote.
async fn reopen(backend: Backend) -> Result<()> {
    let fixture = Fixture::open(backend).await?;
    let acme = fixture.db.create_tenant("acme").await?;
    let again = Db::connect(&fixture.url).await?;
    assert_eq!(again.tenant_by_name("acme").await?.id, acme.id);
    again.close().await;
    fixture.db.close().await;
    Ok(())
}

#[tokio::test]
async fn reopening_keeps_the_schema_and_rows_sqlite() -> Result<()> {
    reopen(Backend::Sqlite).await
}

#[tokio::test]
async fn reopening_keeps_the_schema_and_rows_postgres() -> Result<()> {
    reopen(Backend::Postgres).await
}

#[tokio::test]
async fn only_sqlite_and_postgres_urls_are_accepted() -> Result<()> {
    for (url, backend) in [
        ("sqlite://x.db", Backend::Sqlite),
        ("sqlite::memory:", Backend::Sqlite),
        ("postgres://h/db", Backend::Postgres),
        ("postgresql://h/db", Backend::Postgres),
        ("POSTGRES://h/db", Backend::Postgres),
    ] {
        assert_eq!(Backend::of_url(url)?, backend, "{url}");
    }
    for url in ["mysql://root:hunter2@h/db", "", "ferry.db", "file:ferry.db"] {
        match Db::connect(url).await {
            Err(e @ DbError::Unsupported(_)) => {
                assert!(!e.to_string().contains("hunter2"), "{e} leaks the password");
            }
            other => bail!("{url:?}: expected Unsupported, got {other:?}"),
        }
    }
    Ok(())
}

/// The two migration folders describe the same tables, columns, nullability and indexes.
#[tokio::test]
async fn both_migrations_give_the_same_schema() -> Result<()> {
    let sqlite = Fixture::open(Backend::Sqlite).await?;
    let pg = Fixture::open(Backend::Postgres).await?;
    let lite = sqlx::SqlitePool::connect(&sqlite.url).await?;
    let post = sqlx::PgPool::connect(&pg.url).await?;

    let lite_columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT m.name, c.name, c.\"notnull\" OR c.pk > 0 FROM sqlite_master m
         JOIN pragma_table_info(m.name) c
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_%' ESCAPE '\\' AND m.name NOT LIKE 'sqlite%'
         ORDER BY 1, 2",
    )
    .fetch_all(&lite)
    .await?;
    let pg_columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT, is_nullable = 'NO' FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%'
         ORDER BY 1, 2",
    )
    .fetch_all(&post)
    .await?;
    ensure!(lite_columns.len() > 40, "too few columns: {lite_columns:?}");
    assert_eq!(lite_columns, pg_columns);

    let lite_indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&lite)
    .await?;
    let pg_indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT indexname::TEXT FROM pg_indexes WHERE schemaname = 'public'
             AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' ORDER BY 1",
    )
    .fetch_all(&post)
    .await?;
    ensure!(!lite_indexes.is_empty());
    assert_eq!(lite_indexes, pg_indexes);

    // Foreign keys: (table, column, referenced table, referenced column).
    let lite_keys: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT m.name, f.\"from\", f.\"table\", f.\"to\" FROM sqlite_master m
         JOIN pragma_foreign_key_list(m.name) f
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_%' ESCAPE '\\'
         ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(&lite)
    .await?;
    // Every column of a composite key (unnest pairs the key's columns with the referenced).
    let pg_keys: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::TEXT, a.attname::TEXT, c.confrelid::regclass::TEXT,
                af.attname::TEXT
         FROM pg_constraint c
         CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(col, fcol)
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
         JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = k.fcol
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
         ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(&post)
    .await?;
    ensure!(lite_keys.len() > 10, "too few foreign keys: {lite_keys:?}");
    assert_eq!(lite_keys, pg_keys);

    lite.close().await;
    post.close().await;
    sqlite.db.close().await;
    pg.db.close().await;
    Ok(())
}

/// A database from before people could sign in (migrations up to 0006, holding an API key's
/// upload and share) upgrades in place: the rows and their owners stay, the key becomes a
/// principal, and owners must name a principal from then on.
async fn upgrade_keeps_owners(backend: Backend) -> Result<()> {
    let (url, _dir, _scratch) = Fixture::blank(backend)?;
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let migrations =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../migrations/{folder}"));
    let mut old = sqlx::migrate::Migrator::new(migrations.as_path()).await?;
    old.migrations = std::borrow::Cow::Owned(
        old.migrations
            .iter()
            .filter(|m| m.version <= 6)
            .cloned()
            .collect(),
    );
    let (tenant, key, upload, share) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let rows = [
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, 'acme', $5)",
        "INSERT INTO api_keys (id, tenant_id, role, selector, secret_hash, created_at)
         VALUES ($2, $1, 'sender', 'sel', $6, $5)",
        "INSERT INTO uploads (id, tenant_id, owner_key_id, length, upload_offset, state,
                              created_at, updated_at)
         VALUES ($3, $1, $2, 0, 0, 'complete', $5, $5)",
        "INSERT INTO shares (id, tenant_id, created_by, token_selector, token_hash, created_at,
                             expires_at)
         VALUES ($4, $1, $2, 'tok', $6, $5, $5)",
        "INSERT INTO share_files (share_id, upload_id, position) VALUES ($4, $3, 0)",
    ];
    let now = time::OffsetDateTime::now_utc();
    macro_rules! seed {
        ($pool:expr) => {{
            let pool = $pool;
            old.run(&pool).await?;
            for sql in rows {
                sqlx::query(sql)
                    .bind(tenant)
                    .bind(key)
                    .bind(upload)
                    .bind(share)
                    .bind(now)
                    .bind(b"h".as_slice())
                    .execute(&pool)
                    .await?;
            }
            pool.close().await;
        }};
    }
    match backend {
        Backend::Sqlite => seed!(sqlx::SqlitePool::connect(&url).await?),
        Backend::Postgres => seed!(sqlx::PgPool::connect(&url).await?),
    }

    let db = Db::connect(&url).await?;
    let row = db.upload(tenant, upload, Some(key)).await?;
    assert_eq!(row.owner_id, key, "the upload keeps its owner");
    let status = db.share_details(tenant, share, Some(key)).await;
    assert!(status.is_ok(), "the share keeps its creator: {status:?}");
    // An owner that is no principal is refused by the schema.
    let stray = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&pool)
                .await?;
            let result = sqlx::query("UPDATE uploads SET owner_id = $1 WHERE id = $2")
                .bind(uuid::Uuid::new_v4())
                .bind(upload)
                .execute(&pool)
                .await;
            pool.close().await;
            result.map(drop)
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await?;
            let result = sqlx::query("UPDATE uploads SET owner_id = $1 WHERE id = $2")
                .bind(uuid::Uuid::new_v4())
                .bind(upload)
                .execute(&pool)
                .await;
            pool.close().await;
            result.map(drop)
        }
    };
    ensure!(stray.is_err(), "an owner that is no principal was accepted");
    db.close().await;
    Ok(())
}

#[tokio::test]
async fn upgrading_keeps_owners_sqlite() -> Result<()> {
    upgrade_keeps_owners(Backend::Sqlite).await
}

#[tokio::test]
async fn upgrading_keeps_owners_postgres() -> Result<()> {
    upgrade_keeps_owners(Backend::Postgres).await
}
