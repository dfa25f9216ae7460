//! A recipient in a real browser: `tests/browser/recipient.mjs` drives headless Chromium
//! (Debian's, through playwright-core) to open a share link, click every Download button and
//! save each download under the name the browser suggests; [`open_share_in_browser`] runs it
//! and parses what it printed.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferry_testkit::ChildGuard;
use serde::Deserialize;

use crate::clients::ensure_client_tools;

/// Directory of the browser script and its `package.json`.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The Chromium the browser tests drive: `FERRY_CHROMIUM`, else Debian's `/usr/bin/chromium`
/// (which `scripts/install-test-tools` installs when it is missing).
pub fn chromium() -> PathBuf {
    std::env::var_os("FERRY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A console message of type `error` or `warning`, or an uncaught error (`pageerror`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleMessage {
    /// `error`, `warning` or `pageerror`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The message.
    pub text: String,
    /// Where it came from (`url:line:column`), when the browser says.
    pub location: Option<String>,
}

/// One file the browser downloaded.
#[derive(Debug, Clone, Deserialize)]
pub struct BrowserDownload {
    /// The file name the browser suggested (from `Content-Disposition`).
    pub name: String,
    /// Where the download was saved (`<out>/<name>`).
    pub path: PathBuf,
    /// The text of the file's table row (cells separated by tabs).
    pub row_text: String,
    /// The URL the browser downloaded.
    pub url: String,
}

/// What the browser saw of a share page.
#[derive(Debug, Clone, Deserialize)]
pub struct BrowserVisit {
    /// The page's `<title>`.
    pub title: String,
    /// The page's HTTP status.
    pub status: u16,
    /// The page's response headers as the browser received them (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Console errors and warnings, and uncaught page errors (the script fails on errors, so
    /// in a successful visit these are warnings only).
    pub console: Vec<ConsoleMessage>,
    /// The downloads, one per table row, in page order.
    pub files: Vec<BrowserDownload>,
}

/// Open `share_url` in headless Chromium as a recipient, download every file into `out`, and
/// optionally save a full-page screenshot (PNG) to `screenshot`. Fails with the script's output
/// if the page is not 200, logs a console error, or a download fails; kills the browser after
/// `timeout`.
pub fn open_share_in_browser(
    share_url: &str,
    out: &Path,
    screenshot: Option<&Path>,
    timeout: Duration,
) -> Result<BrowserVisit> {
    ensure_client_tools()?;
    let dir = browser_dir();
    ensure!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/install-test-tools",
        dir.display()
    );
    // The script's per-step timeout; its own deadline for the whole run is twice that, so
    // it reports a hang itself before we have to kill it.
    let step_ms = (timeout.as_millis() / 3).max(1000);
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg(dir.join("recipient.mjs"))
        .arg("--url")
        .arg(share_url)
        .arg("--out")
        .arg(out)
        .arg("--timeout")
        .arg(step_ms.to_string())
        .env("FERRY_CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills Chromium's processes too.
        .process_group(0);
    if let Some(path) = screenshot {
        cmd.arg("--screenshot").arg(path);
    }
    let what = format!(
        "node recipient.mjs --url {share_url} --out {}",
        out.display()
    );
    // On a timeout (or a failure of this test) the whole group goes: node and Chromium.
    let mut child = ChildGuard::group_leader(
        cmd.spawn()
            .with_context(|| format!("cannot start {what}"))?,
    );
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    let status = child.wait_timeout(timeout)?;
    let stdout = stdout
        .join()
        .map_err(|_| anyhow!("stdout reader panicked"))?;
    let stderr = stderr
        .join()
        .map_err(|_| anyhow!("stderr reader panicked"))?;
    let Some(status) = status else {
        bail!("{what} did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    ensure!(
        status.success(),
        "{what} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| {
            anyhow!("{what} printed no JSON line\nstdout:\n{stdout}\nstderr:\n{stderr}")
        })?;
    serde_json::from_str(line).with_context(|| format!("{what} printed {line:?}"))
}

/// Read a child's output stream to the end on its own thread (so a full pipe never blocks it).
fn read_in_background<R: Read + Send + 'static>(stream: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_string(&mut s);
        }
        s
    })
}
