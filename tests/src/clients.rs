//! Real tus clients (tus-js-client on Node, tuspy on Python) driven through their scripts in
//! `tests/clients/`: finding the tools, installing them once, and running or spawning an
//! upload while collecting its output.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferry_testkit::ChildGuard;
use serde::Deserialize;

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
    Ok(cache_dir()?.join("venv/bin/python"))
}

/// The schemathesis CLI: `FERRY_SCHEMATHESIS`, or the venv that `scripts/install-test-tools`
/// creates in `${FERRY_CACHE:-$HOME/.cache/ferry}/venv-schemathesis` from
/// `tests/openapi/requirements.txt`.
pub fn schemathesis() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_SCHEMATHESIS") {
        return Ok(PathBuf::from(p));
    }
    Ok(cache_dir()?.join("venv-schemathesis/bin/schemathesis"))
}

/// `FERRY_CACHE`, or `$HOME/.cache/ferry`: where the test tools live.
fn cache_dir() -> Result<PathBuf> {
    Ok(match std::env::var_os("FERRY_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow!("neither FERRY_CACHE nor HOME set"))?,
        )
        .join(".cache/ferry"),
    })
}

/// Run `scripts/install-test-tools` once per test process (it is fast when nothing changed),
/// so that the clients (tus clients, schemathesis, playwright-core and Chromium) exist
/// whichever way the tests were started.
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
/// upload's progress on the server. Killed if dropped while it runs.
pub struct RunningClient {
    client: TusClient,
    what: String,
    child: ChildGuard,
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
        self.child.is_running()
    }

    /// Wait for the script to finish (killing it after `timeout`) and return the upload URL
    /// it printed on stdout; fails with its output if it failed.
    pub fn wait(mut self, timeout: Duration) -> Result<String> {
        let client = self.client;
        let what = self.what.clone();
        let status = self.child.wait_timeout(timeout)?;
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
    let mut child = ChildGuard::new(
        cmd.spawn()
            .with_context(|| format!("cannot start the {client} script"))?,
    );
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
