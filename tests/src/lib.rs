//! Harness for Ferry's end-to-end tests.
//!
//! The tests in `tests/tests/` drive the real `ferry` binary as a child process (no in-process
//! shortcuts), create tenants through its CLI, upload with real tus clients (tus-js-client,
//! tuspy, or raw HTTP), and check what recipients download against an independent BLAKE3 of
//! the source. Everything here returns errors with enough context (status, body, server log)
//! to tell what went wrong; nothing panics on a network result.
//!
//! Finding the binary: `FERRY_BIN` if set, else `ferry` next to the test executable's
//! `target/<profile>/` directory (the test script runs `cargo build -p ferry` first).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// How long a server may take to print its listening line and then answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many lines of server output are kept to explain a failure.
const LOG_LINES: usize = 400;
/// Buffer size for streaming files and downloads.
const BUF: usize = 1 << 20;

/// The tus protocol version every tus request carries.
pub const TUS_VERSION: &str = "1.0.0";

/// Path of the `ferry` binary under test: `FERRY_BIN`, or `../../ferry` relative to the
/// running test executable (`target/debug/deps/<test>` → `target/debug/ferry`).
pub fn ferry_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FERRY_BIN") {
        let bin = PathBuf::from(bin);
        ensure!(bin.is_file(), "FERRY_BIN={} does not exist", bin.display());
        return Ok(bin);
    }
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let bin = profile_dir.join(format!("ferry{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.is_file(),
        "the ferry binary is missing at {}: run `cargo build -p ferry` before the end-to-end \
         tests, or set FERRY_BIN",
        bin.display()
    );
    warn_if_stale(&bin);
    Ok(bin)
}

/// Warn (once) when a server source file is newer than the binary: `cargo test` does not
/// rebuild another package's binary, so the tests would silently exercise old code.
fn warn_if_stale(bin: &Path) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
            return;
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack = vec![root.join("server"), root.join("migrations")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > built)
                {
                    eprintln!(
                        "warning: {} is newer than {}: run `cargo build -p ferry` to test the \
                         current server",
                        path.display(),
                        bin.display()
                    );
                    return;
                }
            }
        }
    });
}

/// A tenant created with `ferry tenant create NAME --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tenant {
    /// The tenant's id (a UUID).
    pub tenant_id: String,
    /// The tenant's admin API key, sent as `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

/// Create a tenant in the data directory `data_dir` through the CLI.
pub fn create_tenant(data_dir: &Path, name: &str) -> Result<Tenant> {
    let bin = ferry_bin()?;
    let out = Command::new(&bin)
        .args(["tenant", "create", name, "--json"])
        .env("FERRY_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} tenant create", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "`ferry tenant create {name} --json` failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| {
            anyhow!("`ferry tenant create --json` printed no JSON line\nstdout:\n{stdout}\nstderr:\n{stderr}")
        })?;
    serde_json::from_str(line)
        .with_context(|| format!("`ferry tenant create --json` printed {line:?}"))
}

/// A running `ferry serve` child process with its own data directory.
///
/// The child is killed when the `Server` is dropped; if the test is panicking at that moment,
/// the tail of the server's output is printed to help explain the failure.
pub struct Server {
    bin: PathBuf,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    url: String,
    port: u16,
    generation: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Start `ferry serve` on a free port of 127.0.0.1 with `FERRY_DATA_DIR=data_dir`, and wait
    /// until it prints its listening line and `GET /healthz` answers 200.
    pub fn start(data_dir: impl AsRef<Path>) -> Result<Self> {
        Self::start_with_env(data_dir, &[])
    }

    /// Like [`Server::start`], with extra environment variables for the server.
    pub fn start_with_env(data_dir: impl AsRef<Path>, env: &[(&str, &str)]) -> Result<Self> {
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut server = Server {
            bin: ferry_bin()?,
            data_dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            url: String::new(),
            port: 0,
            generation: 0,
            log: Arc::new(Mutex::new(VecDeque::new())),
        };
        server.spawn("127.0.0.1:0")?;
        Ok(server)
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tus creation endpoint, `<url>/files`.
    pub fn tus_endpoint(&self) -> String {
        format!("{}/files", self.url)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the child process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Create a tenant in this server's data directory.
    pub fn create_tenant(&self, name: &str) -> Result<Tenant> {
        create_tenant(&self.data_dir, name)
    }

    /// An API client for this server authenticated as `tenant`.
    pub fn api(&self, tenant: &Tenant) -> Result<Api> {
        Api::new(&self.url, &tenant.api_key)
    }

    /// Kill the server with SIGKILL (no chance to flush or clean up) and reap it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            match child.kill() {
                Ok(()) => {}
                // Already exited: report how, so a crash is not mistaken for our kill.
                Err(_) => {
                    let status = child.wait().context("cannot reap the server")?;
                    bail!(
                        "the server had already exited ({status}) before kill -9\n{}",
                        self.log_tail()
                    );
                }
            }
            child.wait().context("cannot reap the killed server")?;
            self.note(format!(
                "--- harness: kill -9 (generation {}) ---",
                self.generation
            ));
        }
        Ok(())
    }

    /// Kill the server with SIGKILL if it runs, then start it again on the same port with the
    /// same data directory, and wait until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        let listen = format!("127.0.0.1:{}", self.port);
        // The port was ours a moment ago; give the kernel a few tries to let go of it.
        let mut last = None;
        for _ in 0..20 {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    thread::sleep(Duration::from_millis(250));
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("restart failed")))
    }

    /// Pass `result` through; if it is an error, first print the tail of the server's output
    /// to stderr, since a failed request is often explained by what the server logged.
    pub fn explain<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            eprintln!("{}", self.log_tail());
        }
        result
    }

    /// The last lines the server printed (stdout and stderr, all generations).
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("--- server output (tail) ---\n");
        for line in log.iter() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn note(&self, line: String) {
        push_log(&self.log, line);
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        self.generation += 1;
        let generation = self.generation;
        self.note(format!(
            "--- harness: starting generation {generation} on {listen} ---"
        ));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .env("FERRY_DATA_DIR", &self.data_dir)
            .env("FERRY_LISTEN", listen)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.bin.display()))?;

        let (tx, rx) = mpsc::channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            let log = Arc::clone(&self.log);
            thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                    if let Some(url) = listening_url(&line)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(url);
                    }
                    push_log(&log, format!("[{generation} out] {line}"));
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&self.log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    push_log(&log, format!("[{generation} err] {line}"));
                }
            });
        }

        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(url) => break url,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    thread::sleep(Duration::from_millis(50)); // let stderr drain into the log
                    bail!(
                        "ferry serve (FERRY_LISTEN={listen}) closed stdout without printing \
                         `ferry listening on http://…` (exit: {status:?})\n{}",
                        self.log_tail()
                    );
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                thread::sleep(Duration::from_millis(50));
                bail!(
                    "ferry serve (FERRY_LISTEN={listen}) exited with {status} before listening\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "ferry serve did not print `ferry listening on http://…` within {:?}\n{}",
                    START_TIMEOUT,
                    self.log_tail()
                );
            }
        };
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("cannot parse a port from listening URL {url:?}"))?;
        if self.port != 0 && port != self.port {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "restarted server listens on port {port}, expected {}",
                self.port
            );
        }
        self.child = Some(child);
        self.url = url;
        self.port = port;

        // Bound is not the same as ready: poll /healthz, never sleep-wait.
        let http = http_client()?;
        let health = format!("{}/healthz", self.url);
        let mut last;
        loop {
            match http.get(&health).send() {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => last = format!("HTTP {}", resp.status()),
                Err(e) => last = format!("{e:#}"),
            }
            if !self.is_running() {
                bail!(
                    "ferry serve exited while waiting for {health}\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "GET {health} did not answer 200 within {:?} (last: {last})\n{}",
                    START_TIMEOUT,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

fn push_log(log: &Mutex<VecDeque<String>>, line: String) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() == LOG_LINES {
        log.pop_front();
    }
    log.push_back(line);
}

/// Extract `http://127.0.0.1:PORT` from a line containing `ferry listening on http://…`.
fn listening_url(line: &str) -> Option<String> {
    let marker = "ferry listening on ";
    let at = line.find(marker)?;
    let url = line[at + marker.len()..].split_whitespace().next()?;
    url.starts_with("http://")
        .then(|| url.trim_end_matches('/').to_string())
}

/// A blocking HTTP client without TLS, with generous timeouts for large bodies.
pub fn http_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")
}

/// `GET /api/v1/files/{id}`: the sender's view of an upload.
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    /// The file id (also the tus upload id).
    pub id: String,
    /// The `filename` given in the tus metadata.
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Bytes durably received.
    pub offset: u64,
    /// `"uploading"` or `"complete"`.
    pub state: String,
    /// Hex BLAKE3 of the plaintext once complete.
    pub blake3: Option<String>,
    /// When the upload or file expires.
    pub expires_at: Option<serde_json::Value>,
}

/// A file as listed in a share.
#[derive(Debug, Clone, Deserialize)]
pub struct ShareFile {
    /// The file id.
    pub id: String,
    /// The file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex BLAKE3 of the plaintext.
    pub blake3: Option<String>,
}

/// `POST /api/v1/shares` response.
#[derive(Debug, Clone, Deserialize)]
pub struct Share {
    /// The share id.
    pub id: String,
    /// The recipients' download link, `FERRY_PUBLIC_URL/d/<token>`.
    pub url: String,
    /// When the share expires.
    pub expires_at: serde_json::Value,
    /// The shared files.
    pub files: Vec<ShareFile>,
}

impl Share {
    /// The download URL of one file of this share, `<url>/f/<file_id>`.
    pub fn file_url(&self, file_id: &str) -> String {
        format!("{}/f/{}", self.url.trim_end_matches('/'), file_id)
    }
}

/// What `HEAD <upload url>` answered.
#[derive(Debug, Clone)]
pub struct TusHead {
    /// HTTP status.
    pub status: u16,
    /// `Upload-Offset`, if present.
    pub offset: Option<u64>,
    /// `Upload-Length`, if present.
    pub length: Option<u64>,
}

/// An authenticated client of one server and tenant.
#[derive(Clone)]
pub struct Api {
    http: reqwest::blocking::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for the server at `base_url`, sending `Authorization: Bearer <api_key>`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self> {
        Ok(Api {
            http: http_client()?,
            base: base_url.trim_end_matches('/').to_string(),
            key: api_key.to_string(),
        })
    }

    /// The underlying HTTP client (no default headers).
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// The API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value of the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.key)
    }

    /// Resolve a possibly relative URL (e.g. a `Location` header) against the server.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            format!("{}/{url}", self.base)
        }
    }

    /// `GET /api/v1/files/{id}`.
    pub fn file(&self, id: &str) -> Result<FileInfo> {
        let url = format!("{}/api/v1/files/{id}", self.base);
        let resp = self
            .http
            .get(&url)
            .header("Authorization", self.bearer())
            .send()
            .with_context(|| format!("GET {url}"))?;
        json_response(resp, 200, &format!("GET {url}"))
    }

    /// `POST /api/v1/shares` with the given files and recipients; expects 201.
    pub fn create_share(
        &self,
        files: &[&str],
        recipients: &[&str],
        retention_days: Option<u32>,
    ) -> Result<Share> {
        let url = format!("{}/api/v1/shares", self.base);
        let mut body = serde_json::json!({ "files": files, "recipients": recipients });
        if let Some(days) = retention_days {
            body["retention_days"] = days.into();
        }
        let what = format!("POST {url} {body}");
        let resp = self
            .http
            .post(&url)
            .header("Authorization", self.bearer())
            .json(&body)
            .send()
            .with_context(|| what.clone())?;
        json_response(resp, 201, &what)
    }

    /// tus creation: `POST /files` with `Upload-Length: size` and `filename` metadata; returns
    /// the absolute upload URL from `Location` (expects 201).
    pub fn tus_create(&self, size: u64, filename: &str) -> Result<String> {
        let url = format!("{}/files", self.base);
        let resp = self
            .http
            .post(&url)
            .header("Authorization", self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Length", size.to_string())
            .header(
                "Upload-Metadata",
                format!("filename {}", base64(filename.as_bytes())),
            )
            .send()
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().unwrap_or_default();
        ensure!(
            status == 201,
            "POST {url} (Upload-Length: {size}) answered {status}, expected 201: {body}"
        );
        let location =
            location.ok_or_else(|| anyhow!("POST {url} answered 201 without a Location header"))?;
        Ok(self.absolute(&location))
    }

    /// tus `HEAD <upload url>`.
    pub fn tus_head(&self, upload_url: &str) -> Result<TusHead> {
        let resp = self
            .http
            .head(upload_url)
            .header("Authorization", self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .send()
            .with_context(|| format!("HEAD {upload_url}"))?;
        let header = |name: &str| -> Result<Option<u64>> {
            match resp.headers().get(name) {
                None => Ok(None),
                Some(v) => {
                    let text = v.to_str().context("non-ASCII header")?;
                    Ok(Some(text.parse().with_context(|| {
                        format!("HEAD {upload_url}: bad {name}: {text:?}")
                    })?))
                }
            }
        };
        Ok(TusHead {
            status: resp.status().as_u16(),
            offset: header("upload-offset")?,
            length: header("upload-length")?,
        })
    }
}

fn json_response<T: serde::de::DeserializeOwned>(
    resp: reqwest::blocking::Response,
    expected: u16,
    what: &str,
) -> Result<T> {
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .with_context(|| format!("{what}: reading the body"))?;
    ensure!(
        status == expected,
        "{what} answered {status}, expected {expected}: {body}"
    );
    serde_json::from_str(&body).with_context(|| format!("{what} answered unexpected JSON: {body}"))
}

/// Standard base64 (with padding), as tus `Upload-Metadata` and `Upload-Checksum` use it.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The file id at the end of an upload URL (`…/files/<id>`).
pub fn file_id_from_url(upload_url: &str) -> Result<String> {
    let path = upload_url.split(['?', '#']).next().unwrap_or(upload_url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty() && !id.contains(':'))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no file id at the end of upload URL {upload_url:?}"))
}

/// A random source file written at test time (never committed).
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The RNG seed that produced it (printed so a failure can be reproduced).
    pub seed: u64,
    /// Hex BLAKE3 of its contents, computed independently by reading the file back.
    pub blake3: String,
}

/// Write `size` random bytes to `dir/name`, streaming (constant memory whatever the size),
/// and hash the written file with the `blake3` crate.
pub fn random_file(dir: &Path, name: &str, size: u64) -> Result<SourceFile> {
    let seed = rand::rng().next_u64();
    let path = dir.join(name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(BUF, file);
    let mut buf = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let blake3 = blake3_file(&path)?;
    Ok(SourceFile {
        path,
        size,
        seed,
        blake3,
    })
}

/// Hex BLAKE3 of a file's contents (the `blake3` crate, independent of the server).
pub fn blake3_file(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// What a download answered.
#[derive(Debug, Clone)]
pub struct Download {
    /// HTTP status.
    pub status: u16,
    /// The `ETag` header, verbatim (with quotes).
    pub etag: Option<String>,
    /// The `Content-Length` header.
    pub content_length: Option<u64>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Body bytes received.
    pub bytes: u64,
    /// Hex BLAKE3 of the body received.
    pub blake3: String,
}

fn get_ok(http: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let resp = http.get(url).send().with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.text().unwrap_or_default();
        bail!(
            "GET {url} answered {status}, expected 200: {}",
            truncate(&body, 2000)
        );
    }
    Ok(resp)
}

fn download_meta(resp: &reqwest::blocking::Response) -> Download {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Download {
        status: resp.status().as_u16(),
        etag: header("etag"),
        content_length: header("content-length").and_then(|v| v.parse().ok()),
        content_type: header("content-type"),
        bytes: 0,
        blake3: String::new(),
    }
}

/// `GET url` without credentials (as a recipient), expecting 200; returns the body.
pub fn download_bytes(url: &str) -> Result<(Download, Vec<u8>)> {
    let resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let body = resp
        .bytes()
        .with_context(|| format!("GET {url}: reading the body"))?;
    meta.bytes = body.len() as u64;
    meta.blake3 = blake3::hash(&body).to_hex().to_string();
    Ok((meta, body.to_vec()))
}

/// `GET url` without credentials, expecting 200; streams the body into `dest`.
pub fn download_to_file(url: &str, dest: &Path) -> Result<Download> {
    let mut resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let mut out = BufWriter::with_capacity(
        BUF,
        File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = resp
            .read(&mut buf)
            .with_context(|| format!("GET {url}: reading the body"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        meta.bytes += n as u64;
    }
    out.flush()?;
    meta.blake3 = hasher.finalize().to_hex().to_string();
    Ok(meta)
}

/// `GET url` without credentials, expecting 200, and compare the body byte for byte with the
/// file at `source` while it streams (constant memory). Fails at the first differing byte or
/// on a length mismatch, naming the offset.
pub fn download_and_compare(url: &str, source: &Path) -> Result<Download> {
    let mut resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let mut src = BufReader::with_capacity(
        BUF,
        File::open(source).with_context(|| format!("cannot open {}", source.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut expect = vec![0u8; BUF];
    loop {
        let n = resp.read(&mut buf).with_context(|| {
            format!(
                "GET {url}: reading the body failed after {} bytes",
                meta.bytes
            )
        })?;
        if n == 0 {
            break;
        }
        let got = read_up_to(&mut src, &mut expect[..n])?;
        if let Some(i) = (0..got).find(|&i| buf[i] != expect[i]) {
            bail!(
                "GET {url}: byte {} differs from the source {} (got {:#04x}, expected {:#04x})",
                meta.bytes + i as u64,
                source.display(),
                buf[i],
                expect[i]
            );
        }
        if got < n {
            bail!(
                "GET {url}: the body is longer than the source {} ({} bytes)",
                source.display(),
                meta.bytes + got as u64
            );
        }
        hasher.update(&buf[..n]);
        meta.bytes += n as u64;
    }
    let mut one = [0u8; 1];
    if read_up_to(&mut src, &mut one)? != 0 {
        bail!(
            "GET {url}: the body ended after {} bytes, before the end of the source {}",
            meta.bytes,
            source.display()
        );
    }
    meta.blake3 = hasher.finalize().to_hex().to_string();
    Ok(meta)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A real tus client implementation, driven through its script in `tests/clients/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusClient {
    /// tus-js-client on Node (`tests/clients/tus_upload.mjs`).
    Js,
    /// tuspy on Python (`tests/clients/tus_upload.py`).
    Py,
}

impl std::fmt::Display for TusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TusClient::Js => "tus-js-client",
            TusClient::Py => "tuspy",
        })
    }
}

/// One upload by a client script.
#[derive(Debug, Clone)]
pub struct ClientUpload<'a> {
    /// The tus creation endpoint (`<server>/files`).
    pub endpoint: &'a str,
    /// The API key.
    pub key: &'a str,
    /// The file to upload.
    pub file: &'a Path,
    /// Bytes per PATCH.
    pub chunk_size: u64,
    /// The `filename` metadata (defaults to the file's base name).
    pub name: Option<&'a str>,
    /// Further flags for the script (`--creation-with-upload` for Js, `--checksum` for Py).
    pub extra: &'a [&'a str],
    /// Give up (and kill the client) after this long.
    pub timeout: Duration,
}

/// Directory of the client scripts.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// The Python with tuspy installed: `FERRY_PYTHON`, or the venv that
/// `scripts/install-test-tools` creates in `${FERRY_CACHE:-$HOME/.cache/ferry}/venv`.
pub fn python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let cache = match std::env::var_os("FERRY_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow!("neither FERRY_CACHE nor HOME set"))?,
        )
        .join(".cache/ferry"),
    };
    Ok(cache.join("venv/bin/python"))
}

/// Run `scripts/install-test-tools` once per test process (it is fast when nothing changed),
/// so that the clients exist whichever way the tests were started.
pub fn ensure_client_tools() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-test-tools");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// A client script uploading one file in the background.
///
/// Its stderr is collected line by line while it runs, so a test can learn the upload URL
/// (the scripts print `upload url: <url>` as soon as the upload exists) and watch the
/// upload's progress on the server.
pub struct RunningClient {
    client: TusClient,
    what: String,
    child: Child,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_done: Option<thread::JoinHandle<()>>,
}

impl RunningClient {
    /// The upload URL, once the script has announced it.
    pub fn upload_url(&self) -> Option<String> {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .find_map(|l| l.strip_prefix("upload url: "))
            .map(|u| u.trim().to_string())
    }

    /// Whether the script is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the script to finish (killing it after `timeout`) and return the upload URL
    /// it printed on stdout; fails with its output if it failed.
    pub fn wait(mut self, timeout: Duration) -> Result<String> {
        let client = self.client;
        let what = self.what.clone();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if let Some(h) = self.stderr_done.take() {
            let _ = h.join();
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        let Some(status) = status else {
            bail!(
                "{client} ({what}) did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        };
        ensure!(
            status.success(),
            "{client} ({what}) failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        #[derive(Deserialize)]
        struct Printed {
            url: String,
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| {
                anyhow!(
                    "{client} ({what}) printed no JSON line\nstdout:\n{stdout}\nstderr:\n{stderr}"
                )
            })?;
        let printed: Printed = serde_json::from_str(line)
            .with_context(|| format!("{client} ({what}) printed {line:?}"))?;
        Ok(printed.url)
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start a client script uploading one file, without waiting for it.
pub fn spawn_client(client: TusClient, upload: &ClientUpload<'_>) -> Result<RunningClient> {
    ensure_client_tools()?;
    let dir = clients_dir();
    let mut cmd = match client {
        TusClient::Js => {
            let mut c = Command::new("node");
            c.arg(dir.join("tus_upload.mjs"));
            c
        }
        TusClient::Py => {
            let python = python()?;
            ensure!(
                python.is_file(),
                "no Python with tuspy at {}: run scripts/install-test-tools or set FERRY_PYTHON",
                python.display()
            );
            let mut c = Command::new(python);
            c.arg(dir.join("tus_upload.py"));
            c
        }
    };
    cmd.current_dir(&dir)
        .arg("--endpoint")
        .arg(upload.endpoint)
        .arg("--key")
        .arg(upload.key)
        .arg("--file")
        .arg(upload.file)
        .arg("--chunk-size")
        .arg(upload.chunk_size.to_string())
        .args(upload.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(name) = upload.name {
        cmd.arg("--name").arg(name);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start the {client} script"))?;
    let stdout = child.stdout.take().map(|mut o| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = o.read_to_string(&mut s);
            s
        })
    });
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stderr_done = child.stderr.take().map(|e| {
        let lines = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(e).lines().map_while(|l| l.ok()) {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        })
    });
    Ok(RunningClient {
        client,
        what: format!(
            "{} with chunk size {} {:?}",
            upload.file.display(),
            upload.chunk_size,
            upload.extra
        ),
        child,
        stdout,
        stderr,
        stderr_done,
    })
}

/// Upload one file with a real tus client and return the upload URL it reports.
pub fn run_client(client: TusClient, upload: &ClientUpload<'_>) -> Result<String> {
    spawn_client(client, upload)?.wait(upload.timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "base64({input:?})");
        }
    }

    #[test]
    fn parses_listening_line_and_file_ids() {
        assert_eq!(
            listening_url("ferry listening on http://127.0.0.1:4321").as_deref(),
            Some("http://127.0.0.1:4321")
        );
        assert_eq!(
            listening_url("2025 INFO ferry listening on http://127.0.0.1:80/ now").as_deref(),
            Some("http://127.0.0.1:80")
        );
        assert_eq!(listening_url("starting"), None);
        assert_eq!(
            file_id_from_url("http://h:1/files/0b9d6c1e-aaaa")
                .ok()
                .as_deref(),
            Some("0b9d6c1e-aaaa")
        );
        assert!(file_id_from_url("http://h:1/").is_err());
    }
}
