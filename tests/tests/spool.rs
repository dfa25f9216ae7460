//! Operator commands beside a serving instance leave its S3 spool alone (issue 13, item 9).
//! One `ferry serve` on PostgreSQL + Garage (S3).
//!
//! `cli_commands_beside_a_server_leave_its_spool_alone`: a 100 MiB + 4,321 B upload streams
//! in one PATCH that pauses at 40 MiB + 777 B, inside the first 64 MiB part, until the server
//! has committed it (HEAD shows that offset), so the server's spool directory
//! (`DATA/spool/<process>/`, with its `lock` file) holds the part being filled in a `.spool`
//! file. Then `ferry store lifecycle`, `ferry store check` and `ferry expire` run to
//! completion as CLI commands with the server's data directory and configuration. The spool
//! directory, its lock file and the spool file must still be there (every CLI command used to
//! delete `DATA/spool` when it connected to S3); the PATCH then goes on past 64 MiB, so the
//! first part is uploaded from that spool file, and must end in 204 at the full length; the
//! download's BLAKE3 equals the source's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    S3Stack, Server, download_and_compare, file_id_from_url, start_patch, wait_for_offset,
};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// What a spool directory under `DATA/spool` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpoolDir {
    path: PathBuf,
    has_lock: bool,
    /// The `.spool` files in it and their sizes.
    spools: Vec<(PathBuf, u64)>,
}

/// The spool directories under `root` (none if `root` does not exist).
fn spool_dirs(root: &Path) -> Result<Vec<SpoolDir>> {
    let mut dirs = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dirs),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let mut spools = Vec::new();
        for file in std::fs::read_dir(&path)? {
            let file = file?;
            if file.file_name().to_string_lossy().ends_with(".spool") {
                spools.push((file.path(), file.metadata()?.len()));
            }
        }
        spools.sort();
        dirs.push(SpoolDir {
            has_lock: path.join("lock").is_file(),
            path,
            spools,
        });
    }
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(dirs)
}

#[test]
fn cli_commands_beside_a_server_leave_its_spool_alone() -> Result<()> {
    let stack = S3Stack::start()?;
    // The body pauses while the CLI commands run: give it more than the default 60 s stall
    // timeout, so a slow machine cannot turn the pause into a closed connection.
    let server = stack.start_instance_with("one", &[("FERRY_STALL_TIMEOUT", "600")])?;
    let result = spool_survives(&stack, &server);
    stack.explain(result, &[("one", &server)])
}

fn spool_survives(stack: &S3Stack, server: &Server) -> Result<()> {
    const SIZE: u64 = 100 * MIB + 4_321;
    const PAUSE: u64 = 40 * MIB + 777;
    let (_, api) = server.tenant_api("acme")?;
    let source = stack.source_file("spooled.bin", SIZE)?;
    let upload_url = api.tus_create(SIZE, "spooled.bin")?;
    let id = file_id_from_url(&upload_url)?;

    // The body pauses inside the first part; the server commits what it got.
    let patch = start_patch(&api, &upload_url, &source.path, 0, SIZE, Some(PAUSE))?;
    patch.wait_paused(Duration::from_secs(300))?;
    let committed = wait_for_offset(&api, &upload_url, SIZE, PAUSE, Duration::from_secs(20))?;
    ensure!(
        committed == PAUSE,
        "with the body paused at {PAUSE} for 20 s, HEAD says {committed}"
    );

    let root = server.data_dir().join("spool");
    let before = spool_dirs(&root)?;
    eprintln!("spool before the CLI commands: {before:#?}");
    // The part being filled is in `<file id>-<random>.spool`.
    let ours = |path: &Path| {
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{id}-")))
    };
    let live: Vec<&SpoolDir> = before
        .iter()
        .filter(|d| d.has_lock && d.spools.iter().any(|(p, len)| ours(p) && *len > 0))
        .collect();
    ensure!(
        live.len() == 1,
        "with a PATCH paused inside the first part, expected one spool directory under {} \
         with a lock file and a non-empty {id}-….spool file: {before:#?}",
        root.display()
    );
    let live = live[0].clone();

    // The operator's commands, beside the serving instance, on its configuration.
    let lifecycle = server.run_cli(&["store", "lifecycle"])?.expect_success()?;
    eprintln!("{}:\n{}", lifecycle.command, lifecycle.stdout);
    let check = server.run_cli(&["store", "check"])?.expect_success()?;
    eprintln!("{}:\n{}", check.command, check.stdout);
    let expire = server.run_cli(&["expire"])?.expect_success()?;
    eprintln!("{}:\n{}", expire.command, expire.stdout);
    let report: Value = serde_json::from_str(expire.stdout.trim())
        .with_context(|| format!("ferry expire printed {:?}", expire.stdout))?;
    ensure!(
        !report.to_string().contains(&id),
        "ferry expire touched the upload being written: {report}"
    );

    let after = spool_dirs(&root)?;
    eprintln!("spool after the CLI commands: {after:#?}");
    let still = after.iter().find(|d| d.path == live.path);
    ensure!(
        still.is_some_and(|d| d.has_lock),
        "the serving process's spool directory {} (with its lock file) is gone after `ferry \
         store lifecycle`, `ferry store check` and `ferry expire`: {after:#?}",
        live.path.display()
    );
    if let Some(still) = still {
        for (path, len) in &live.spools {
            let kept = still.spools.iter().find(|(p, _)| p == path);
            ensure!(
                kept.is_some_and(|(_, now)| now >= len),
                "the spool file {} ({len} B) of the paused PATCH is gone or shorter after the \
                 CLI commands: {kept:?}",
                path.display()
            );
        }
    }

    // The PATCH goes on past the first part, which is uploaded from the spool file.
    let outcome = patch
        .join_within(Duration::from_secs(600))
        .context("the PATCH after the CLI commands")?;
    ensure!(
        outcome.status == 204 && outcome.offset == Some(SIZE),
        "the PATCH after the CLI commands answered {} with Upload-Offset {:?} (expected 204 \
         with {SIZE}): {}",
        outcome.status,
        outcome.offset,
        outcome.body
    );
    let info = api.file(&id)?;
    ensure!(
        info.state == "complete"
            && info.offset == SIZE
            && info.blake3.as_deref() == Some(source.blake3.as_str()),
        "GET /api/v1/files/{id}: {info:?}, source {SIZE} B, blake3 {}",
        source.blake3
    );
    let share = api.create_share(&[&id], &["a@x.eu"], None)?;
    let got = download_and_compare(&share.file_url(&id), &source.path)?;
    ensure!(
        got.blake3 == source.blake3 && got.bytes == SIZE,
        "download: {} B with BLAKE3 {}, the source has {SIZE} B and {}",
        got.bytes,
        got.blake3,
        source.blake3
    );
    Ok(())
}
