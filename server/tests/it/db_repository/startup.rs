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

    lite.close().await;
    post.close().await;
    sqlite.db.close().await;
    pg.db.close().await;
    Ok(())
}
