//! A running `ferry serve` child process: start on a free port, wait until healthy, restart on
//! the same port, `kill -9`, and keep the tail of its output to explain failures.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ferry_testkit::ChildGuard;

use crate::api::{Api, http_client};
use crate::cli::{
    ApiKey, CliRun, Tenant, create_api_key, create_tenant_with_env, ferry_bin, run_ferry,
};

/// How long a server may take to print its listening line and then answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many lines of server output are kept to explain a failure.
const LOG_LINES: usize = 400;

/// A running `ferry serve` child process with its own data directory.
///
/// The child is killed when the `Server` is dropped; if the test is panicking at that moment,
/// the tail of the server's output is printed to help explain the failure.
pub struct Server {
    bin: PathBuf,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<ChildGuard>,
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
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Create a tenant in this server's data directory and database (the CLI runs with the
    /// server's environment).
    pub fn create_tenant(&self, name: &str) -> Result<Tenant> {
        create_tenant_with_env(&self.data_dir, &self.env, name)
    }

    /// Create a tenant as [`Server::create_tenant`] does, with an API client authenticated
    /// as it.
    pub fn tenant_api(&self, name: &str) -> Result<(Tenant, Api)> {
        let tenant = self.create_tenant(name)?;
        let api = self.api(&tenant)?;
        Ok((tenant, api))
    }

    /// Create an API key with `role` (`admin` or `sender`) for `tenant` through the CLI, in
    /// this server's data directory and database.
    pub fn create_api_key(&self, tenant: &Tenant, role: &str) -> Result<ApiKey> {
        create_api_key(&self.data_dir, &self.env, &tenant.tenant_id, role)
    }

    /// Run the one-shot command `ferry ARGS` beside this server, with its data directory and
    /// environment (so it works on the same database, store and master key).
    pub fn run_cli(&self, args: &[&str]) -> Result<CliRun> {
        run_ferry(&self.data_dir, &self.env, args)
    }

    /// The extra environment variables the server runs with (besides `FERRY_DATA_DIR` and
    /// `FERRY_LISTEN`).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// An API client for this server authenticated as `tenant`.
    pub fn api(&self, tenant: &Tenant) -> Result<Api> {
        Api::new(&self.url, &tenant.api_key)
    }

    /// Kill the server with SIGKILL (no chance to flush or clean up) and reap it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            match std::process::Child::kill(&mut child) {
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
        // Guarded from here on: every early return below kills the child.
        let mut child = ChildGuard::new(
            cmd.spawn()
                .with_context(|| format!("cannot start {} serve", self.bin.display()))?,
        );

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
                    let status = child.kill().ok();
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

/// How a `ferry serve` that was expected to refuse to start ended (see [`serve_refusal`]).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Its exit status, as text (`exit status: 1`).
    pub status: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

/// Run `ferry serve` with `FERRY_DATA_DIR=data_dir`, `FERRY_LISTEN=127.0.0.1:0` and `env`,
/// expecting it to refuse to start: returns how it exited. Fails if it is still running after
/// `timeout`, or if it printed its listening line (it started although it should not have);
/// either way the process is killed.
pub fn serve_refusal(
    data_dir: impl AsRef<Path>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Refusal> {
    let data_dir = data_dir.as_ref();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let bin = ferry_bin()?;
    let child = Command::new(&bin)
        .arg("serve")
        .env("FERRY_DATA_DIR", data_dir)
        .env("FERRY_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} serve", bin.display()))?;
    let mut child = ChildGuard::new(child);
    let stdout = child
        .stdout
        .take()
        .map(|p| thread::spawn(move || read_all(p)));
    let stderr = child
        .stderr
        .take()
        .map(|p| thread::spawn(move || read_all(p)));
    let status = child.wait_timeout(timeout)?;
    let joined = |reader: Option<thread::JoinHandle<String>>| match reader {
        Some(reader) => reader
            .join()
            .map_err(|_| anyhow!("an output reader panicked")),
        None => Ok(String::new()),
    };
    let stdout = joined(stdout)?;
    let stderr = joined(stderr)?;
    let Some(status) = status else {
        bail!(
            "ferry serve was still running after {timeout:?}, although it should have refused \
             to start\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    if stdout
        .lines()
        .chain(stderr.lines())
        .any(|l| listening_url(l).is_some())
    {
        bail!(
            "ferry serve started listening ({status}), although it should have refused to \
             start\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    Ok(Refusal {
        status: status.to_string(),
        success: status.success(),
        stdout,
        stderr,
    })
}

/// Everything a pipe yields until it closes, as (lossy) text.
fn read_all(mut pipe: impl std::io::Read) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Drop for Server {
    /// Prints the tail of the server's output if the test is failing; the child guard then
    /// kills the server.
    fn drop(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        assert_eq!(
            listening_url("ferry listening on http://127.0.0.1:4321").as_deref(),
            Some("http://127.0.0.1:4321")
        );
        assert_eq!(
            listening_url("2025 INFO ferry listening on http://127.0.0.1:80/ now").as_deref(),
            Some("http://127.0.0.1:80")
        );
        assert_eq!(listening_url("starting"), None);
    }
}
