//! Retention and the audit chain as an operator sees them, with the real binary, on SQLite +
//! disk and on PostgreSQL + disk: a share asking for a year gets the policy's 90 days; `ferry
//! expire --now <after that>` makes the link 410, removes the wrapped key row and the object,
//! and records it in the audit log; `ferry audit verify` passes, and names the event when any
//! one column of one audit row is changed behind Ferry's back.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    ScratchDb, Server, ferry_bin, file_id_from_url, files_under, new_master_key, patch_expect_204,
    random_file,
};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The database behind the server, for looking at rows and tampering with them.
enum Rows {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The one runtime every `Rows` call runs on: a pool's connections belong to the runtime
/// that opened them, so a runtime per call (dropped after it) left the next call using
/// connections of a runtime being shut down.
static RUNTIME: std::sync::OnceLock<std::io::Result<tokio::runtime::Runtime>> =
    std::sync::OnceLock::new();

impl Rows {
    fn run<T>(future: impl Future<Output = T>) -> Result<T> {
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
        });
        match runtime {
            Ok(runtime) => Ok(runtime.block_on(future)),
            Err(e) => anyhow::bail!("no runtime for the database checks: {e}"),
        }
    }

    fn open(url: &str) -> Result<Rows> {
        Self::run(async {
            Ok(if url.starts_with("sqlite") {
                Rows::Sqlite(sqlx::SqlitePool::connect(url).await?)
            } else {
                Rows::Postgres(sqlx::PgPool::connect(url).await?)
            })
        })?
    }

    fn execute(&self, sql: &str) -> Result<u64> {
        Self::run(async {
            Ok(match self {
                Rows::Sqlite(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
                Rows::Postgres(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
            })
        })?
    }

    fn count(&self, sql: &str) -> Result<i64> {
        Self::run(async {
            let (n,): (i64,) = match self {
                Rows::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
                Rows::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
            };
            Ok(n)
        })?
    }

    /// SQL matching a UUID column to `id` on this backend (SQLite keeps UUIDs as blobs).
    fn uuid_is(&self, column: &str, id: &str) -> String {
        match self {
            Rows::Sqlite(_) => format!("lower(hex({column})) = '{}'", id.replace('-', "")),
            Rows::Postgres(_) => format!("{column} = '{id}'"),
        }
    }

    /// One change per column of the audit row `(tenant, seq)`, each in this backend's SQL.
    fn tampering(&self, tenant: &str, seq: i64, other_tenant: &str) -> Vec<(&'static str, String)> {
        let row = format!("{} AND seq = {seq}", self.uuid_is("tenant_id", tenant));
        let sqlite = matches!(self, Rows::Sqlite(_));
        let zeros = if sqlite {
            "zeroblob(32)"
        } else {
            "decode(repeat('00', 32), 'hex')"
        };
        let other = if sqlite {
            format!("X'{}'", other_tenant.replace('-', ""))
        } else {
            format!("'{other_tenant}'")
        };
        let new_id = if sqlite {
            "randomblob(16)"
        } else {
            "gen_random_uuid()"
        };
        let later = if sqlite {
            "'2031-01-01T00:00:00Z'"
        } else {
            "at + interval '1 second'"
        };
        [
            ("tenant_id", format!("tenant_id = {other}")),
            ("seq", "seq = seq + 1000".to_owned()),
            ("id", format!("id = {new_id}")),
            ("at", format!("at = {later}")),
            ("kind", "kind = kind || '.x'".to_owned()),
            ("actor", "actor = actor || 'x'".to_owned()),
            ("subject", "subject = NULL".to_owned()),
            ("details", "details = '{\"size\":1}'".to_owned()),
            ("prev_hash", format!("prev_hash = {zeros}")),
            ("hash", format!("hash = {zeros}")),
        ]
        .into_iter()
        .map(|(column, set)| (column, format!("UPDATE audit_events SET {set} WHERE {row}")))
        .collect()
    }
}

/// Runs `ferry ARGS` with the server's data directory and environment.
fn ferry(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> Result<Output> {
    Command::new(ferry_bin()?)
        .args(args)
        .env("FERRY_DATA_DIR", data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .context("cannot run ferry")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn retention_end_to_end(database_url: Option<&str>) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-retention-")
        .tempdir()?;
    let data = dir.path().join("data");
    let mut env = vec![("FERRY_MASTER_KEY".to_owned(), new_master_key())];
    if let Some(url) = database_url {
        env.push(("FERRY_DATABASE_URL".to_owned(), url.to_owned()));
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with_env(&data, &env_refs)?;
    let tenant = server.create_tenant("clinic")?;
    let other = server.create_tenant("other-clinic")?;
    let api = server.api(&tenant)?;

    let source = random_file(dir.path(), "scan.bin", 300_000)?;
    let upload = api.tus_create(300_000, "scan.bin")?;
    patch_expect_204(&api, &upload, &source.path, 0, 300_000, Duration::ZERO)?;
    let file = file_id_from_url(&upload)?;
    let share = api.create_share(&[file.as_str()], &["dr.berg@klinik.example"], Some(365))?;
    let expires = OffsetDateTime::parse(share.expires_at.as_str().context("expiry")?, &Rfc3339)?;
    ensure!(
        expires <= OffsetDateTime::now_utc() + time::Duration::days(90),
        "365 days are clamped to the policy's 90: {expires}"
    );
    let link = api.absolute(&share.url);
    ensure!(
        api.http().get(&link).send()?.status().as_u16() == 200,
        "the link works before"
    );

    let later = (OffsetDateTime::now_utc() + time::Duration::days(91)).format(&Rfc3339)?;
    let expire = ferry(&data, &env, &["expire", "--now", &later])?;
    ensure!(expire.status.success(), "ferry expire: {}", text(&expire));
    let report: Value = serde_json::from_slice(&expire.stdout)?;
    ensure!(
        report["shares_expired"] == serde_json::json!([share.id])
            && report["files_expired"] == serde_json::json!([file])
            && report["objects_deleted"] == serde_json::json!([file]),
        "report: {report}"
    );

    for url in [link.clone(), share.file_url(&file)] {
        let status = api.http().get(api.absolute(&url)).send()?.status();
        ensure!(status.as_u16() == 410, "{url} answered {status}");
    }
    let database = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", data.join("ferry.db").display()));
    let rows = Rows::open(&database)?;
    let keys = rows.count(&format!(
        "SELECT COUNT(*) FROM file_keys WHERE {}",
        rows.uuid_is("upload_id", &file)
    ))?;
    ensure!(keys == 0, "the wrapped key row is gone");
    let objects = files_under(&data.join("objects"));
    ensure!(objects.is_empty(), "objects left in the store: {objects:?}");
    let events = api.audit_events()?;
    let expired = events
        .iter()
        .filter(|e| e["kind"] == "file.expired" && e["subject"] == file.as_str())
        .count();
    ensure!(expired == 1, "one file.expired event in {events:?}");

    // The chain verifies; one changed column anywhere in a row is found and named.
    let verify = ferry(&data, &env, &["audit", "verify"])?;
    ensure!(verify.status.success(), "verify: {}", text(&verify));
    ensure!(
        text(&verify).contains(&tenant.tenant_id),
        "names the tenant: {}",
        text(&verify)
    );
    rows.execute("CREATE TABLE audit_backup AS SELECT * FROM audit_events")?;
    for (column, tamper) in rows.tampering(&tenant.tenant_id, 3, &other.tenant_id) {
        ensure!(rows.execute(&tamper)? == 1, "{tamper} changed nothing");
        let found = ferry(
            &data,
            &env,
            &["audit", "verify", "--tenant", &tenant.tenant_id],
        )?;
        let said = text(&found);
        ensure!(
            !found.status.success(),
            "changing {column} went unnoticed: {said}"
        );
        ensure!(
            said.contains("broken at seq 3") || said.contains("broken at seq 4"),
            "changing {column}: {said}"
        );
        rows.execute("DELETE FROM audit_events")?;
        rows.execute("INSERT INTO audit_events SELECT * FROM audit_backup")?;
    }
    let restored = ferry(&data, &env, &["audit", "verify"])?;
    ensure!(restored.status.success(), "restored: {}", text(&restored));
    drop(server);
    Ok(())
}

#[test]
fn expire_and_audit_verify_on_sqlite_and_disk() -> Result<()> {
    retention_end_to_end(None)
}

#[test]
fn expire_and_audit_verify_on_postgres_and_disk() -> Result<()> {
    let db = ScratchDb::create()?;
    retention_end_to_end(Some(db.url()))
}
