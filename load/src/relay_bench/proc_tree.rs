//! Memory and CPU of a relay as a set of processes: Ferry's relay is one process, Postfix a
//! master with a changing set of children (smtpd per client, cleanup, qmgr, smtp per
//! delivery, tlsmgr, …). Both are measured as the tree under one pid, read from `/proc`.
//!
//! - CPU: the root's and every live descendant's user + system time, plus the time of the
//!   children each of them has already reaped (`cutime`/`cstime`): a Postfix child that exits
//!   mid-run moves its time into its parent's reaped total, so the sum only grows.
//! - Memory: the sum of `VmRSS` over the tree (counts the pages processes share once per
//!   process: it overstates a tree) and the sum of `Pss` from `smaps_rollup` (each shared page
//!   split among its users: what the tree costs the machine), sampled every 100 ms; and the
//!   root's `VmHWM` (for a single process, its true peak).

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// `USER_HZ`: clock ticks per second in `/proc/PID/stat` (100 on every Linux this runs on).
const CLOCK_TICKS: f64 = 100.0;
/// How often the sampler reads the tree.
const EVERY: Duration = Duration::from_millis(100);

/// The fields of `/proc/PID/stat` the tree needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name may hold spaces and parentheses, so fields are
/// counted from the last `)`: state is field 3, ppid 4, utime 14, stime 15, cutime 16,
/// cstime 17.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

/// A `kB` field of a `/proc` status-like file.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `root` and its live descendants with their stat fields.
fn tree(root: u32) -> Vec<(u32, Stat)> {
    let mut all: HashMap<u32, Stat> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            {
                all.insert(pid, stat);
            }
        }
    }
    let mut members = Vec::new();
    let mut frontier = vec![root];
    while let Some(pid) = frontier.pop() {
        if let Some(stat) = all.get(&pid) {
            members.push((pid, *stat));
            frontier.extend(all.iter().filter(|(_, s)| s.ppid == pid).map(|(p, _)| *p));
        }
    }
    members
}

/// One reading of a tree.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TreeSample {
    /// Processes in the tree.
    pub(crate) processes: usize,
    /// Sum of their VmRSS, KiB.
    pub(crate) rss_kib: u64,
    /// Sum of their Pss, KiB.
    pub(crate) pss_kib: u64,
    /// The root's VmHWM, KiB.
    pub(crate) root_hwm_kib: u64,
    /// CPU seconds of the tree so far (see the module's note).
    pub(crate) cpu_seconds: f64,
}

/// Reads the tree under `root` now; `None` when the root is gone.
pub(crate) fn sample(root: u32) -> Option<TreeSample> {
    let members = tree(root);
    if members.is_empty() {
        return None;
    }
    let mut out = TreeSample {
        processes: members.len(),
        ..TreeSample::default()
    };
    let mut ticks = 0;
    for (pid, stat) in members {
        ticks += stat.ticks;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        out.rss_kib += kib_field(&status, "VmRSS").unwrap_or(0);
        if pid == root {
            out.root_hwm_kib = kib_field(&status, "VmHWM").unwrap_or(0);
        }
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        out.pss_kib += kib_field(&rollup, "Pss").unwrap_or(0);
    }
    out.cpu_seconds = ticks as f64 / CLOCK_TICKS;
    Some(out)
}

/// The largest values sampled.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peaks {
    /// Largest sum of VmRSS, KiB.
    pub(crate) rss_kib: u64,
    /// Largest sum of Pss, KiB.
    pub(crate) pss_kib: u64,
    /// Most processes at once.
    pub(crate) processes: usize,
    /// Samples taken.
    pub(crate) samples: u64,
}

/// Samples a tree every 100 ms on a thread of its own (reading `/proc` blocks), keeping the
/// peaks.
pub(crate) struct TreeSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<Peaks>>,
    thread: JoinHandle<()>,
}

impl TreeSampler {
    /// Starts sampling the tree under `root`.
    pub(crate) fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let (stopping, keeping) = (Arc::clone(&stop), Arc::clone(&peaks));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Some(s) = sample(root) {
                    let mut p = keeping.lock().unwrap_or_else(PoisonError::into_inner);
                    p.rss_kib = p.rss_kib.max(s.rss_kib);
                    p.pss_kib = p.pss_kib.max(s.pss_kib);
                    p.processes = p.processes.max(s.processes);
                    p.samples += 1;
                }
                std::thread::sleep(EVERY);
            }
        });
        Self {
            stop,
            peaks,
            thread,
        }
    }

    /// Stops the thread; the peaks.
    pub(crate) fn stop(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        *self.peaks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let stat = "1234 (a) b (c)) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 4 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                ppid: 77,
                ticks: 310
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_its_own_tree() -> anyhow::Result<()> {
        let child = std::process::Command::new("sleep").arg("5").spawn()?;
        let mut guard = ferry_testkit::ChildGuard::new(child);
        let me = std::process::id();
        let sample = sample(me).ok_or_else(|| anyhow::anyhow!("no sample of myself"))?;
        assert!(sample.processes >= 2, "{sample:?}");
        assert!(sample.rss_kib > 0 && sample.pss_kib > 0 && sample.root_hwm_kib > 0);
        guard.kill()?;
        Ok(())
    }
}
