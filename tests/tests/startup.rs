//! What `ferry serve` refuses at start-up, with the real binary: each refusal is a non-zero
//! exit with a message on stderr that names the problem, and leaves what is there as it was.
//!
//! EEA residency, with a real Garage (whose region is eu-central-1): a configured region that
//! is not on the EEA allowlist, a bucket that is not in the configured region, and a bucket
//! that does not exist are refused. The same Garage, bucket and credentials with the right
//! region start normally (so each refusal is about what the test changed, not the set-up).
//!
//! The master key (issue 13): a database whose keys are wrapped under master key A refuses
//! `ferry serve` with master key B (`another_master_key_is_refused`), and with none at all —
//! on SQLite beside the database and on PostgreSQL from a fresh data directory — rather than
//! generating a new key into the data directory
//! (`a_missing_master_key_beside_a_sqlite_database_is_refused`,
//! `a_new_instance_without_a_master_key_is_refused_by_a_postgres_database`). Afterwards key A
//! still serves the same files.
//!
//! One SQLite data directory, one server (issue 13): a second `ferry serve` on it (another
//! port) exits saying `already running` while the first goes on answering; once the first is
//! SIGKILLed, a new one starts on the directory (the OS released the lock).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    Garage, Refusal, ScratchDb, Server, download_and_compare, file_id_from_url, files_under,
    new_master_key, patch_expect_204, random_file, serve_refusal,
};

/// How long a refusing `ferry serve` may take to exit (the store's requests time out sooner).
const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// `FERRY_STORE` for `bucket` of `garage` with `region` (the endpoint is Garage's).
fn store_url(garage: &Garage, bucket: &str, region: &str) -> String {
    format!(
        "s3://{bucket}?endpoint={}&region={region}",
        garage.endpoint()
    )
}

/// Runs `ferry serve` against `garage` with `FERRY_STORE=store`, expecting a refusal whose
/// stderr contains every one of `expected`.
fn expect_refusal(garage: &Garage, store: &str, expected: &[&str]) -> Result<Refusal> {
    let dir = tempfile::tempdir()?;
    let mut env: Vec<(&str, &str)> = garage.env().to_vec();
    env.push(("FERRY_STORE", store));
    let refusal = serve_refusal(dir.path().join("data"), &env, EXIT_WITHIN)?;
    eprintln!(
        "FERRY_STORE={store}: {}\nstderr:\n{}",
        refusal.status, refusal.stderr
    );
    ensure!(
        !refusal.success,
        "FERRY_STORE={store}: ferry serve exited with success; it must refuse to start with a \
         non-zero status\nstdout:\n{}\nstderr:\n{}",
        refusal.stdout,
        refusal.stderr
    );
    for text in expected {
        ensure!(
            refusal.stderr.contains(text),
            "FERRY_STORE={store}: ferry serve refused to start ({}), but its stderr does not \
             say {text:?}\nstdout:\n{}\nstderr:\n{}",
            refusal.status,
            refusal.stdout,
            refusal.stderr
        );
    }
    Ok(refusal)
}

#[test]
fn the_right_region_starts() -> Result<()> {
    let garage = Garage::start()?;
    let dir = tempfile::tempdir()?;
    let store = store_url(&garage, garage.bucket(), garage.region());
    let mut env: Vec<(&str, &str)> = garage.env().to_vec();
    env.push(("FERRY_STORE", &store));
    let mut server = Server::start_with_env(dir.path().join("data"), &env)?;
    ensure!(
        server.is_running(),
        "ferry serve on {store} is not running after it answered /healthz"
    );
    Ok(())
}

#[test]
fn a_region_outside_the_eea_is_refused() -> Result<()> {
    let garage = Garage::start()?;
    expect_refusal(
        &garage,
        &store_url(&garage, garage.bucket(), "us-east-1"),
        &["\"us-east-1\" is not on the EEA allowlist"],
    )?;
    // Not in the EEA either, though in Europe: London and Zurich.
    for region in ["eu-west-2", "eu-central-2"] {
        expect_refusal(
            &garage,
            &store_url(&garage, garage.bucket(), region),
            &[&format!("{region:?} is not on the EEA allowlist")],
        )?;
    }
    Ok(())
}

#[test]
fn a_bucket_in_another_region_is_refused() -> Result<()> {
    // eu-west-1 is on the allowlist, but Garage's bucket is in eu-central-1: Garage refuses
    // requests signed for eu-west-1 (AuthorizationHeaderMalformed, as AWS does) rather than
    // report a location, and Ferry must take that as "the bucket is elsewhere".
    let garage = Garage::start()?;
    let bucket = garage.bucket();
    expect_refusal(
        &garage,
        &store_url(&garage, bucket, "eu-west-1"),
        &[
            &format!("bucket {bucket:?} is located in"),
            "the configured region is \"eu-west-1\"",
        ],
    )?;
    Ok(())
}

#[test]
fn a_missing_bucket_is_refused() -> Result<()> {
    let garage = Garage::start()?;
    expect_refusal(
        &garage,
        &store_url(&garage, "ferry-no-such-bucket", garage.region()),
        &["bucket \"ferry-no-such-bucket\" does not exist"],
    )?;
    Ok(())
}

/// How long a refusal that needs no network may take (it is a local check: seconds at most).
const REFUSE_WITHIN: Duration = Duration::from_secs(20);

/// The files under `dir`, relative to it, without SQLite's sidecar files (`-wal`, `-shm`,
/// `-journal`), which opening a database may create or remove.
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter_map(|p| p.strip_prefix(dir).ok().map(Path::to_path_buf))
        .filter(|p| {
            let name = p.to_string_lossy();
            !(name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal"))
        })
        .collect()
}

/// Runs `ferry serve` on `data` with `env`, expecting a quick refusal that names
/// `FERRY_MASTER_KEY` and creates no file in `data`.
fn expect_master_key_refusal(data: &Path, env: &[(&str, &str)], what: &str) -> Result<()> {
    let before = files_in(data);
    let started = Instant::now();
    let refusal = serve_refusal(data, env, REFUSE_WITHIN)?;
    let took = started.elapsed();
    eprintln!(
        "{what}: {} after {took:?}\nstderr:\n{}",
        refusal.status, refusal.stderr
    );
    ensure!(
        !refusal.success,
        "{what}: ferry serve exited with success\nstdout:\n{}\nstderr:\n{}",
        refusal.stdout,
        refusal.stderr
    );
    ensure!(
        refusal.stderr.contains("FERRY_MASTER_KEY"),
        "{what}: ferry serve refused ({}), but its stderr does not name FERRY_MASTER_KEY\n\
         stderr:\n{}",
        refusal.status,
        refusal.stderr
    );
    let created: Vec<_> = files_in(data).difference(&before).cloned().collect();
    ensure!(
        created.is_empty(),
        "{what}: the refused ferry serve created {created:?} in {}",
        data.display()
    );
    Ok(())
}

/// A server on `data` with `env` that holds one finished upload (so the database has a
/// wrapped data key); returns its admin key, the file's upload URL and its source.
fn server_with_a_file(
    data: &Path,
    env: &[(&str, &str)],
    scratch: &Path,
) -> Result<(Server, String, String, ferry_e2e::SourceFile)> {
    const SIZE: u64 = 70_000;
    let server = Server::start_with_env(data, env)?;
    let tenant = server.create_tenant("keyed")?;
    let api = server.api(&tenant)?;
    let source = random_file(scratch, "keyed.bin", SIZE)?;
    let url = api.tus_create(SIZE, "keyed.bin")?;
    patch_expect_204(&api, &url, &source.path, 0, SIZE, Duration::ZERO)?;
    Ok((server, tenant.api_key, url, source))
}

/// The file at `url` still downloads byte-identical through `server`.
fn still_readable(server: &Server, api_key: &str, url: &str, source: &Path) -> Result<()> {
    let api = ferry_e2e::Api::new(server.url(), api_key)?;
    let id = file_id_from_url(url)?;
    let share = api.create_share(&[&id], &["a@x.eu"], None)?;
    download_and_compare(&share.file_url(&id), source)?;
    Ok(())
}

#[test]
fn another_master_key_is_refused() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-mkey-").tempdir()?;
    let data = dir.path().join("data");
    let key_a = new_master_key();
    let env_a = [("FERRY_MASTER_KEY", key_a.as_str())];
    let (mut server, api_key, url, source) = server_with_a_file(&data, &env_a, dir.path())?;
    server.kill9()?;

    let key_b = new_master_key();
    expect_master_key_refusal(
        &data,
        &[("FERRY_MASTER_KEY", key_b.as_str())],
        "SQLite made with key A, started with key B",
    )?;

    // The refusal was about the key: key A still serves the same file.
    let server = Server::start_with_env(&data, &env_a)?;
    server.explain(still_readable(&server, &api_key, &url, &source.path))
}

#[test]
fn a_missing_master_key_beside_a_sqlite_database_is_refused() -> Result<()> {
    // The database made with key A sits in the data directory, no master.key beside it.
    let dir = tempfile::Builder::new().prefix("ferry-nokey-").tempdir()?;
    let data = dir.path().join("data");
    let key_a = new_master_key();
    let env_a = [("FERRY_MASTER_KEY", key_a.as_str())];
    let (mut server, api_key, url, source) = server_with_a_file(&data, &env_a, dir.path())?;
    server.kill9()?;
    expect_master_key_refusal(
        &data,
        &[],
        "SQLite made with key A, started without FERRY_MASTER_KEY",
    )?;
    ensure!(
        !data.join("master.key").exists(),
        "a refused start generated {}",
        data.join("master.key").display()
    );
    let server = Server::start_with_env(&data, &env_a)?;
    server.explain(still_readable(&server, &api_key, &url, &source.path))
}

#[test]
fn a_new_instance_without_a_master_key_is_refused_by_a_postgres_database() -> Result<()> {
    // A new instance (fresh data directory) on a PostgreSQL database made with key A, whose
    // operator forgot FERRY_MASTER_KEY.
    let dir = tempfile::Builder::new()
        .prefix("ferry-nokey-pg-")
        .tempdir()?;
    let key_a = new_master_key();
    let db = ScratchDb::create()?;
    // Instances sharing a database share a store too.
    let store = format!("file://{}", dir.path().join("objects").display());
    let env_a = [
        ("FERRY_DATABASE_URL", db.url()),
        ("FERRY_STORE", store.as_str()),
        ("FERRY_MASTER_KEY", key_a.as_str()),
    ];
    let (mut server, api_key, url, source) =
        server_with_a_file(&dir.path().join("data-pg-a"), &env_a, dir.path())?;
    server.kill9()?;
    let fresh = dir.path().join("data-pg-b");
    expect_master_key_refusal(
        &fresh,
        &[
            ("FERRY_DATABASE_URL", db.url()),
            ("FERRY_STORE", store.as_str()),
        ],
        "PostgreSQL made with key A, a new instance without FERRY_MASTER_KEY",
    )?;
    ensure!(
        !fresh.join("master.key").exists(),
        "a refused start generated {}",
        fresh.join("master.key").display()
    );
    let server =
        Server::start_with_env(&fresh, &env_a).context("the new instance with the right key")?;
    server.explain(still_readable(&server, &api_key, &url, &source.path))
}

#[test]
fn a_second_server_on_one_sqlite_data_directory_is_refused() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-lock-").tempdir()?;
    let data = dir.path().join("data");
    let mut first = Server::start(&data)?;
    let tenant = first.create_tenant("solo")?;
    let api = first.api(&tenant)?;
    api.tus_create(10, "before.txt")?;

    let refusal = serve_refusal(&data, &[], REFUSE_WITHIN)?;
    eprintln!(
        "second ferry serve on {}: {}\nstderr:\n{}",
        data.display(),
        refusal.status,
        refusal.stderr
    );
    ensure!(
        !refusal.success && refusal.stderr.contains("already running"),
        "a second ferry serve on the SQLite data directory of a running one: {} (expected a \
         non-zero exit saying `already running`)\nstdout:\n{}\nstderr:\n{}",
        refusal.status,
        refusal.stdout,
        refusal.stderr
    );

    // The first one goes on, undisturbed.
    ensure!(
        first.is_running(),
        "the first server exited\n{}",
        first.log_tail()
    );
    let health = format!("{}/healthz", first.url());
    let status = ferry_e2e::http_client()?
        .get(&health)
        .send()
        .with_context(|| format!("GET {health}"))?
        .status();
    ensure!(
        status.as_u16() == 200,
        "the first server's {health} answered {status} after the second was refused"
    );
    first.explain(api.tus_create(10, "after.txt").map(drop))?;

    // Killed with SIGKILL, it cannot unlock; the OS does, and a new server starts.
    first.kill9()?;
    let next = Server::start(&data).context("ferry serve after the first was SIGKILLed")?;
    let api = next.api(&tenant)?;
    next.explain(api.tus_create(10, "later.txt").map(drop))
}
