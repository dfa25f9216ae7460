//! The `ferry` binary under test: where to find it (warning when it is older than the server
//! sources) and its one-shot CLI commands, such as `ferry tenant create`.
//!
//! Finding the binary: `FERRY_BIN` if set, else `ferry` next to the test executable's
//! `target/<profile>/` directory (the test script runs `cargo build -p ferry` first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, ensure};
use serde::Deserialize;

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
    create_tenant_with_env(data_dir, &[], name)
}

/// Create a tenant through the CLI with `FERRY_DATA_DIR=data_dir` and the extra variables
/// `env` (a server's `FERRY_DATABASE_URL`, for one).
pub fn create_tenant_with_env(
    data_dir: &Path,
    env: &[(String, String)],
    name: &str,
) -> Result<Tenant> {
    let bin = ferry_bin()?;
    let out = Command::new(&bin)
        .args(["tenant", "create", name, "--json"])
        .env("FERRY_DATA_DIR", data_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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

/// What a one-shot `ferry …` command printed and how it exited (see [`run_ferry`]).
#[derive(Debug, Clone)]
pub struct CliRun {
    /// The command line, for messages (`ferry store check`).
    pub command: String,
    /// Its exit status, as text (`exit status: 1`).
    pub status: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl CliRun {
    /// `self` if the command exited with status 0, else an error quoting its output.
    pub fn expect_success(self) -> Result<Self> {
        ensure!(
            self.success,
            "`{}` failed ({})\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// Run `ferry ARGS` to completion with `FERRY_DATA_DIR=data_dir` and the extra variables `env`
/// (a server's configuration, so the command works on the same database and store).
pub fn run_ferry(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> Result<CliRun> {
    let bin = ferry_bin()?;
    let out = Command::new(&bin)
        .args(args)
        .env("FERRY_DATA_DIR", data_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} {}", bin.display(), args.join(" ")))?;
    Ok(CliRun {
        command: format!("ferry {}", args.join(" ")),
        status: out.status.to_string(),
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// An API key made with `ferry apikey create --tenant ID --role ROLE --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKey {
    /// The key's id (what `ferry apikey revoke --key-id` takes).
    pub key_id: String,
    /// The key itself, sent as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// `admin` or `sender`.
    pub role: String,
}

/// Create an API key with `role` (`admin` or `sender`) for `tenant_id` through the CLI, with
/// `FERRY_DATA_DIR=data_dir` and the extra variables `env`.
pub fn create_api_key(
    data_dir: &Path,
    env: &[(String, String)],
    tenant_id: &str,
    role: &str,
) -> Result<ApiKey> {
    let run = run_ferry(
        data_dir,
        env,
        &[
            "apikey", "create", "--tenant", tenant_id, "--role", role, "--json",
        ],
    )?
    .expect_success()?;
    let line = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("`{}` printed no JSON line\n{}", run.command, run.stdout))?;
    let key: ApiKey = serde_json::from_str(line)
        .with_context(|| format!("`{}` printed {line:?}", run.command))?;
    ensure!(
        key.role == role,
        "`{}` made a key with role {:?}",
        run.command,
        key.role
    );
    Ok(key)
}
