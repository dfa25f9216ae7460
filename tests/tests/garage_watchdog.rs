//! A Garage whose `Garage` value is never dropped (the shared per-binary Garage of the server's
//! HTTP suites lives in a `static`) still dies with its test process, and its directory goes
//! with it: `garage_dies_with_its_test_process` runs `leak_a_garage` in a child process (this
//! test binary, filtered to that one test), which starts a Garage, prints its pid and
//! directory, leaks it and exits; the Garage must be gone and its directory removed soon after.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use ferry_e2e::{Garage, eventually};

/// Whether process `pid` is still alive (a zombie is dead: it holds no files, serves nothing).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is a Garage (not a recycled pid).
fn is_garage(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "garage")
}

#[test]
#[ignore = "helper: run in a child process by garage_dies_with_its_test_process"]
fn leak_a_garage() -> Result<()> {
    let garage = Garage::start()?;
    let pid = garage.pid().context("Garage has no pid")?;
    println!("leaked-garage pid={pid} dir={}", garage.dir().display());
    std::mem::forget(garage);
    Ok(())
}

#[test]
fn garage_dies_with_its_test_process() -> Result<()> {
    let exe = std::env::current_exe()?;
    let out = Command::new(&exe)
        .args(["leak_a_garage", "--exact", "--ignored", "--nocapture"])
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "the helper failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("leaked-garage "))
        .ok_or_else(|| {
            anyhow!("the helper printed no pid\nstdout:\n{stdout}\nstderr:\n{stderr}")
        })?;
    let (pid, dir) = line
        .split_once(' ')
        .and_then(|(p, d)| Some((p.strip_prefix("pid=")?, d.strip_prefix("dir=")?)))
        .ok_or_else(|| anyhow!("unexpected helper line {line:?}"))?;
    let pid: u32 = pid.parse()?;
    let dir = PathBuf::from(dir);

    eventually(Duration::from_secs(15), || {
        ensure!(
            !((alive(pid) && is_garage(pid)) || dir.exists()),
            "15 s after its test process exited, Garage (pid {pid}) is {} and its directory {} \
             {}",
            if alive(pid) && is_garage(pid) {
                "still running"
            } else {
                "gone"
            },
            dir.display(),
            if dir.exists() {
                "is still there"
            } else {
                "is removed"
            }
        );
        Ok(())
    })
}
