//! A real single-node Garage (S3-compatible object store) as a child process, for tests of
//! Ferry's S3 store: a fresh temporary directory, free ports on 127.0.0.1, region
//! `eu-central-1`, one access key and one bucket it owns; `stop` and `restart` on the same
//! ports and data for store-fault tests; killed on drop.
//!
//! Finding the binary: `FERRY_GARAGE` if set, else
//! `${FERRY_CACHE:-$HOME/.cache/ferry}/garage/bin/garage`, which `scripts/install-garage` builds.
//!
//! Everything here blocks (child processes and plain TCP, no async runtime and no
//! `reqwest::blocking`), so it may be called from inside a tokio test as well.
//!
//! Garage never outlives the test process, even when its `Garage` is never dropped (a
//! process-wide shared instance in a `static`, or a test binary that aborts): each Garage
//! process starts under a small shell watchdog that holds the read end of a pipe whose only
//! write end is in this `Garage`. The kernel closes that write end when the `Garage` is dropped
//! or the test process exits however it exits; the watchdog then sees end-of-file, SIGKILLs
//! Garage and removes its directory.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{PipeReader, PipeWriter, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rand::Rng;
use tempfile::TempDir;

use crate::child::ChildGuard;

/// The S3 region Garage is configured with (and answers to `GetBucketLocation`).
pub const GARAGE_REGION: &str = "eu-central-1";
/// The version `scripts/install-garage` installs.
pub const GARAGE_VERSION: &str = "2.5.0";
/// The metadata engine `scripts/install-garage` builds Garage with.
const DB_ENGINE: &str = "sqlite";
/// Name of the access key created at start.
const KEY_NAME: &str = "ferry-test";
/// Name of the bucket created at start.
const DEFAULT_BUCKET: &str = "ferry-test";
/// How long Garage may take to start (RPC up, layout applied, quorum, S3 port open).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits after SIGTERM before SIGKILL (see [`Garage::stop`]).
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How much of the end of Garage's log an error message quotes.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// A running single-node Garage with its own temporary directory (config, metadata, data,
/// log), an access key and a bucket. Killed (not deleted first) on drop, then its directory
/// is removed.
pub struct Garage {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    s3_port: u16,
    admin_port: u16,
    access_key_id: String,
    secret_access_key: String,
    bucket: String,
    child: Option<ChildGuard>,
    generation: u32,
    /// Read end of the lifeline: each Garage process's watchdog waits for end-of-file on it.
    lifeline_reader: PipeReader,
    /// The lifeline's only write end (close-on-exec, so no other child inherits it).
    _lifeline: PipeWriter,
    // Last, so it is removed after the child is killed.
    dir: TempDir,
}

/// Runs as `sh -c WATCHDOG watchdog DIR GARAGE ARGS…` with the lifeline as stdin. The shell
/// forks a watcher that holds the lifeline, then becomes Garage itself (`exec`), so the
/// harness's `Child` is Garage (SIGTERM/SIGKILL reach it directly) and `$$` is Garage's pid.
/// When the lifeline reaches end-of-file (the `Garage` was dropped, or the test process is
/// gone), the watcher kills Garage if that pid is still a Garage, waits for it to die (at most
/// 5 s) and removes its directory.
const WATCHDOG: &str = r#"dir=$1; shift
exec 3<&0 </dev/null
(
  while read -r _ <&3; do :; done
  exec 3<&-
  if [ "$(cat /proc/$$/comm 2>/dev/null)" = garage ]; then
    kill -KILL $$ 2>/dev/null
    i=0
    while [ $i -lt 50 ] && kill -0 $$ 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' /proc/$$/status 2>/dev/null; do
      sleep 0.1
      i=$((i + 1))
    done
  fi
  rm -rf "$dir"
) &
exec "$@" 3<&-
"#;

impl Garage {
    /// Start a fresh single-node Garage and wait until it serves S3: layout applied, key
    /// `ferry-test` created, bucket `ferry-test` created and owned by that key (read, write,
    /// owner). Blocks for about a second.
    pub fn start() -> Result<Self> {
        // The free ports are released before Garage binds them; if another process takes one
        // in between, Garage exits with "Address already in use": try again with new ports.
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once() -> Result<Self> {
        let bin = garage_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-garage-")
            .tempdir()
            .context("cannot create a temporary directory for Garage")?;
        let [rpc_port, s3_port, admin_port] = free_ports()?;
        let config = dir.path().join("garage.toml");
        let (lifeline_reader, lifeline) =
            std::io::pipe().context("cannot create the watchdog's pipe")?;
        fs::write(
            &config,
            config_toml(dir.path(), rpc_port, s3_port, admin_port),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let mut garage = Garage {
            bin,
            log: dir.path().join("garage.log"),
            config,
            s3_port,
            admin_port,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            bucket: DEFAULT_BUCKET.to_string(),
            child: None,
            generation: 0,
            lifeline_reader,
            _lifeline: lifeline,
            dir,
        };
        garage.spawn()?;
        garage.setup().map_err(|e| garage.with_log(e))?;
        Ok(garage)
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style addressing only).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 region, `eu-central-1`.
    pub fn region(&self) -> &'static str {
        GARAGE_REGION
    }

    /// The access key ID of key `ferry-test` (`GK…`).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key of key `ferry-test`.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The bucket created at start (`ferry-test`).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Ferry's store URL for the bucket created at start:
    /// `s3://BUCKET?endpoint=http://127.0.0.1:PORT&region=eu-central-1`.
    pub fn store_url(&self) -> String {
        self.store_url_for(&self.bucket)
    }

    /// Ferry's store URL for another bucket of this Garage (see [`Garage::create_bucket`]).
    pub fn store_url_for(&self, bucket: &str) -> String {
        format!(
            "s3://{bucket}?endpoint={}&region={}",
            self.endpoint(),
            GARAGE_REGION
        )
    }

    /// The standard AWS variables for a child process (`ferry serve`): `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`. Passes straight to
    /// `Server::start_with_env(dir, &garage.env())`; append `FERRY_STORE` with
    /// `.to_vec()` and `push`.
    pub fn env(&self) -> [(&'static str, &str); 3] {
        [
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_REGION", GARAGE_REGION),
        ]
    }

    /// Create another bucket, owned by key `ferry-test` with read and write.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        self.cli(&["bucket", "create", name])?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_NAME,
        ])?;
        Ok(())
    }

    /// Stop Garage: SIGTERM, then SIGKILL if it has not exited within 1 s. Keeps its data;
    /// once this returns, requests fail with a connection error (refused) until
    /// [`Garage::restart`]. No-op if stopped.
    ///
    /// The grace is short on purpose: after SIGTERM Garage keeps serving the connections it
    /// has (every S3 client pools keep-alive connections) for up to 10 s, while new
    /// connections queue unanswered on its still-open listening socket; waiting for that
    /// would make every stop take 10 s. Metadata (SQLite, WAL) and data survive a kill.
    pub fn stop(&mut self) -> Result<()> {
        self.terminate(STOP_GRACE)
    }

    /// Kill Garage at once with SIGKILL (a crash: in-flight requests are cut), keeping its
    /// data, like [`Garage::stop`] without the grace. No-op if stopped.
    pub fn kill(&mut self) -> Result<()> {
        self.terminate(Duration::ZERO)
    }

    fn terminate(&mut self, grace: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if !grace.is_zero() && matches!(child.try_wait(), Ok(None)) {
            // `std` only sends SIGKILL; `kill(1)` sends SIGTERM without any unsafe code.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        // Still running (or unknown): SIGKILL; harmless if it has exited meanwhile.
        let status = child.kill().context("cannot reap Garage")?;
        self.note(&format!(
            "--- harness: stopped generation {} ({status}) ---",
            self.generation
        ));
        Ok(())
    }

    /// Start Garage again, stopping it first if it runs: same config, ports, node identity,
    /// layout, keys, buckets and objects. Returns once it serves S3 again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()?;
        self.wait_ready().map_err(|e| self.with_log(e))
    }

    /// The Garage process's id while it runs (started and not stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|child| child.id())
    }

    /// Whether the Garage child process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Garage's directory (config `garage.toml`, `meta/`, `data/`, `garage.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run the `garage` CLI against this node (`garage -c CONFIG ARGS…`) and return its
    /// stdout; an error carries its stderr.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self.cli_output(args)?;
        if !out.status.success() {
            bail!(
                "`garage {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The end of Garage's log (all generations), to explain a failure.
    pub fn log_tail(&self) -> String {
        let mut out = String::from("--- garage log (tail) ---\n");
        if let Ok(mut file) = File::open(&self.log) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut tail = Vec::new();
            if file
                .seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))
                .is_ok()
            {
                let _ = file.read_to_end(&mut tail);
            }
            out.push_str(&String::from_utf8_lossy(&tail));
        }
        out
    }

    fn cli_output(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {} {}", self.bin.display(), args.join(" ")))
    }

    /// First start: wait for RPC, apply a one-node layout, wait for quorum, create the key
    /// and the bucket.
    fn setup(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // RPC answers once `garage status` does.
        loop {
            let out = self.cli_output(&["status"])?;
            if out.status.success() {
                break;
            }
            let last = String::from_utf8_lossy(&out.stderr);
            self.check_alive_before(
                deadline,
                &format!("`garage status` (last: {})", last.trim()),
            )?;
            thread::sleep(Duration::from_millis(50));
        }

        let node = self.cli(&["node", "id", "-q"])?;
        let node_id = node
            .trim()
            .split('@')
            .next()
            .filter(|id| id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| anyhow!("cannot parse a node ID from `garage node id -q`: {node:?}"))?
            .to_string();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node_id])?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        self.wait_ready()?;

        let key = self.cli(&["key", "create", KEY_NAME])?;
        self.access_key_id = table_value(&key, "Key ID")
            .ok_or_else(|| anyhow!("no `Key ID:` in `garage key create` output:\n{key}"))?;
        self.secret_access_key = table_value(&key, "Secret key")
            .ok_or_else(|| anyhow!("no `Secret key:` in `garage key create` output:\n{key}"))?;
        self.create_bucket(DEFAULT_BUCKET)?;
        Ok(())
    }

    /// Wait until the admin API's `/health` answers 200 (quorum for all partitions) and the
    /// S3 port accepts connections. Polls; fails early if Garage exits.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let admin = SocketAddr::from(([127, 0, 0, 1], self.admin_port));
        let s3 = SocketAddr::from(([127, 0, 0, 1], self.s3_port));
        loop {
            let last = match http_status(admin, "/health") {
                Ok(200) => match TcpStream::connect_timeout(&s3, Duration::from_secs(1)) {
                    Ok(_) => return Ok(()),
                    Err(e) => format!("S3 port {}: {e}", self.s3_port),
                },
                Ok(status) => format!("HTTP {status}"),
                Err(e) => format!("{e:#}"),
            };
            self.check_alive_before(deadline, &format!("GET /health = 200 (last: {last})"))?;
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_alive_before(&mut self, deadline: Instant, waiting_for: &str) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("garage server exited with {status} while waiting for {waiting_for}");
        }
        if Instant::now() > deadline {
            bail!("garage did not get ready within {START_TIMEOUT:?}: waiting for {waiting_for}");
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        self.generation += 1;
        self.note(&format!(
            "--- harness: starting generation {} ---",
            self.generation
        ));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let lifeline = self
            .lifeline_reader
            .try_clone()
            .context("cannot clone the watchdog's pipe")?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("ferry-garage-watchdog")
            .arg(self.dir.path())
            .arg(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env(
                "RUST_LOG",
                std::env::var("FERRY_GARAGE_LOG").unwrap_or_else(|_| "garage=info".into()),
            )
            .stdin(Stdio::from(lifeline))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} server", self.bin.display()))?;
        self.child = Some(ChildGuard::new(child));
        Ok(())
    }

    fn note(&self, line: &str) {
        if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(log, "{line}");
        }
    }

    fn with_log(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "Garage in {} (config {})\n{}",
            self.dir.path().display(),
            self.config.display(),
            self.log_tail()
        ))
    }
}

impl Drop for Garage {
    /// Prints the log's end if the test is failing; the child guard then kills Garage, and the
    /// directory goes last.
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// The `garage` binary: `FERRY_GARAGE`, else `${FERRY_CACHE:-$HOME/.cache/ferry}/garage/bin/garage`.
pub fn garage_bin() -> Result<PathBuf> {
    let bin = match std::env::var_os("FERRY_GARAGE") {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = match std::env::var_os("FERRY_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => PathBuf::from(
                    std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?,
                )
                .join(".cache/ferry"),
            };
            cache.join("garage/bin/garage")
        }
    };
    if !bin.is_file() {
        bail!(
            "Garage binary not found at {} (set FERRY_GARAGE, or run scripts/install-garage, \
             which builds garage {GARAGE_VERSION} into ${{FERRY_CACHE:-$HOME/.cache/ferry}}/garage)",
            bin.display()
        );
    }
    Ok(bin)
}

fn config_toml(dir: &Path, rpc_port: u16, s3_port: u16, admin_port: u16) -> String {
    let mut rng = rand::rng();
    let mut rpc_secret = [0u8; 32];
    rng.fill_bytes(&mut rpc_secret);
    let mut admin_token = [0u8; 32];
    rng.fill_bytes(&mut admin_token);
    let dir = dir.display();
    format!(
        r#"# Single-node Garage for Ferry's tests (testkit/src/garage.rs).
metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "{DB_ENGINE}"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
        rpc_secret = hex(&rpc_secret),
        admin_token = hex(&admin_token),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Three distinct free ports of 127.0.0.1 (bound together, then released for Garage).
fn free_ports() -> Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
    ];
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// The status code of a plain `GET path` (HTTP/1.1, no body read beyond the status line).
fn http_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP status line: {line:?}"))
}

/// The value of `Name:   value` in Garage's CLI tables (the last word of the line).
fn table_value(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().last().map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_create_output() {
        let out = "==== ACCESS KEY INFORMATION ====\n\
                   Key ID:              GK31c2f218a2e44f485b94239e\n\
                   Key name:            ferry-test\n\
                   Secret key:          b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835\n\
                   Created:             2026-01-01 00:00:00 +00:00\n";
        assert_eq!(
            table_value(out, "Key ID").as_deref(),
            Some("GK31c2f218a2e44f485b94239e")
        );
        assert_eq!(
            table_value(out, "Secret key").as_deref(),
            Some("b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835")
        );
        assert_eq!(table_value(out, "Missing"), None);
    }

    #[test]
    fn config_has_region_and_engine() {
        let toml = config_toml(Path::new("/tmp/x"), 1, 2, 3);
        assert!(toml.contains("s3_region = \"eu-central-1\""));
        assert!(toml.contains("db_engine = \"sqlite\""));
        assert!(toml.contains("api_bind_addr = \"127.0.0.1:2\""));
    }
}
