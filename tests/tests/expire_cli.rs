//! `ferry expire`, the expiry job run by hand, as an operator runs it: beside a serving
//! instance, on PostgreSQL, twice at the same moment.
//!
//! Abandoned uploads (partly sent, then left) are due 24 h after their last byte, and files
//! shared for one day are due when that share ends. `--dry-run` lists them and changes
//! nothing; two `ferry expire --now <two days later>` processes started together expire every
//! share and destroy every upload and file exactly once between them (each row is claimed
//! before it is touched), and afterwards every upload answers 410 and every link 410.

use std::collections::BTreeSet;
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

const UPLOADS: usize = 24;
const SHARED_FILES: usize = 12;

/// The environment every process shares: one database, one store directory, one master key.
struct Shared {
    db: ScratchDb,
    dir: tempfile::TempDir,
    master_key: String,
}

impl Shared {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("FERRY_DATABASE_URL".into(), self.db.url().to_owned()),
            (
                "FERRY_STORE".into(),
                format!("file://{}", self.dir.path().join("objects").display()),
            ),
            ("FERRY_MASTER_KEY".into(), self.master_key.clone()),
        ]
    }
}

/// Starts `ferry expire ARGS` with its own data directory and the shared environment.
fn spawn_expire(shared: &Shared, name: &str, args: &[&str]) -> Result<std::process::Child> {
    let data = shared.dir.path().join(format!("data-{name}"));
    Command::new(ferry_bin()?)
        .arg("expire")
        .args(args)
        .env("FERRY_DATA_DIR", &data)
        .envs(shared.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ferry expire")
}

/// The JSON report a finished `ferry expire` printed.
fn report(output: Output) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "ferry expire failed ({}): {stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim()).with_context(|| format!("ferry expire printed {stdout:?}"))
}

fn ids(report: &Value, field: &str) -> Result<Vec<String>> {
    report[field]
        .as_array()
        .with_context(|| format!("no {field} in {report}"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .context("an id is not a string")
        })
        .collect()
}

#[test]
fn two_expire_processes_at_once_expire_everything_exactly_once() -> Result<()> {
    let shared = Shared {
        db: ScratchDb::create()?,
        dir: tempfile::Builder::new().prefix("ferry-expire-").tempdir()?,
        master_key: new_master_key(),
    };
    let env = shared.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with_env(shared.dir.path().join("data-server"), &env_refs)?;
    let tenant = server.create_tenant("expiring")?;
    let api = server.api(&tenant)?;
    let source = random_file(shared.dir.path(), "source.bin", 300_000)?;

    let mut uploads = Vec::new();
    for i in 0..UPLOADS {
        let url = api.tus_create(1 << 20, &format!("abandoned-{i}.bin"))?;
        patch_expect_204(&api, &url, &source.path, 0, 200_000, Duration::ZERO)?;
        uploads.push(url);
    }
    let all: BTreeSet<String> = uploads
        .iter()
        .map(|url| file_id_from_url(url))
        .collect::<Result<_>>()?;
    let mut files = BTreeSet::new();
    let mut shares = BTreeSet::new();
    let mut links = Vec::new();
    for i in 0..SHARED_FILES {
        let url = api.tus_create(100_000, &format!("shared-{i}.bin"))?;
        patch_expect_204(&api, &url, &source.path, 0, 100_000, Duration::ZERO)?;
        let file = file_id_from_url(&url)?;
        let share = api.create_share(&[file.as_str()], &["a@example.eu"], Some(1))?;
        links.push(api.absolute(&share.url));
        shares.insert(share.id);
        files.insert(file);
    }
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(49)).format(&Rfc3339)?;

    let dry =
        report(spawn_expire(&shared, "dry", &["--dry-run", "--now", &later])?.wait_with_output()?)?;
    ensure!(dry["dry_run"] == Value::Bool(true), "{dry}");
    ensure!(
        ids(&dry, "uploads_expired")?
            .into_iter()
            .collect::<BTreeSet<_>>()
            == all,
        "dry run lists them all: {dry}"
    );
    for url in &uploads {
        ensure!(
            api.tus_head(url)?.offset == Some(200_000),
            "the dry run left {url} alone"
        );
    }

    let first = spawn_expire(&shared, "a", &["--now", &later])?;
    let second = spawn_expire(&shared, "b", &["--now", &later])?;
    let (a, b) = (
        report(first.wait_with_output()?)?,
        report(second.wait_with_output()?)?,
    );
    exactly_once(&a, &b, "uploads_expired", &all)?;
    exactly_once(&a, &b, "files_expired", &files)?;
    exactly_once(&a, &b, "shares_expired", &shares)?;
    let destroyed: BTreeSet<String> = all.union(&files).cloned().collect();
    exactly_once(&a, &b, "objects_deleted", &destroyed)?;
    for link in &links {
        let status = api.http().get(link).send()?.status();
        ensure!(status.as_u16() == 410, "{link} answered {status}");
    }
    // The audit log holds one expiry event per file and per share.
    let events = api.audit_events()?;
    for (kind, ids) in [
        ("file.expired", &files),
        ("share.expired", &shares),
        ("upload.expired", &all),
    ] {
        let subjects: Vec<String> = events
            .iter()
            .filter(|e| e["kind"] == kind)
            .filter_map(|e| e["subject"].as_str().map(str::to_owned))
            .collect();
        ensure!(
            subjects.len() == ids.len()
                && subjects.iter().cloned().collect::<BTreeSet<_>>() == *ids,
            "{kind}: {} events for {} rows",
            subjects.len(),
            ids.len()
        );
    }

    for url in &uploads {
        let head = api
            .http()
            .head(url)
            .header("Authorization", api.bearer())
            .header("Tus-Resumable", "1.0.0")
            .send()?;
        ensure!(
            head.status().as_u16() == 410,
            "HEAD {url} answered {}",
            head.status()
        );
    }
    let left = files_under(&shared.dir.path().join("objects"));
    ensure!(left.is_empty(), "objects left in the store: {left:?}");
    drop(server);
    Ok(())
}

/// The ids both reports list under `field` are `expected`, each listed by exactly one of them.
fn exactly_once(a: &Value, b: &Value, field: &str, expected: &BTreeSet<String>) -> Result<()> {
    let (a_ids, b_ids) = (ids(a, field)?, ids(b, field)?);
    eprintln!(
        "{field}: process a {}, process b {}",
        a_ids.len(),
        b_ids.len()
    );
    let a_set: BTreeSet<String> = a_ids.iter().cloned().collect();
    let b_set: BTreeSet<String> = b_ids.iter().cloned().collect();
    ensure!(
        a_set.len() == a_ids.len() && b_set.len() == b_ids.len(),
        "{field}: a process repeated itself"
    );
    ensure!(
        a_set.is_disjoint(&b_set),
        "{field}: both processes did {:?}",
        a_set.intersection(&b_set).collect::<Vec<_>>()
    );
    ensure!(
        a_set.union(&b_set).cloned().collect::<BTreeSet<_>>() == *expected,
        "{field}: not all done: {a} {b}"
    );
    Ok(())
}
