//! Memory and CPU of a process, read from `/proc` (Linux only).

use std::fs;

use anyhow::Context;

/// Clock ticks per second of `/proc/PID/stat` times: `USER_HZ`, 100 on every Linux
/// architecture this runs on (`getconf CLK_TCK`).
const CLOCK_TICKS: f64 = 100.0;

/// One reading of a process's memory and CPU time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Resident set size now (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Peak resident set size over the process's life so far (`VmHWM`), in KiB.
    pub hwm_kib: u64,
    /// User plus system CPU time of all its threads so far, in seconds.
    pub cpu_seconds: f64,
}

impl ProcSample {
    /// Reads `/proc/PID/status` and `/proc/PID/stat`; `pid` may be `"self"`.
    pub fn read(pid: &str) -> anyhow::Result<Self> {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        Ok(ProcSample {
            rss_kib: field("VmRSS"),
            hwm_kib: field("VmHWM"),
            cpu_seconds: cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?
                as f64
                / CLOCK_TICKS,
        })
    }
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")": state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn reads_itself() -> anyhow::Result<()> {
        let sample = ProcSample::read("self")?;
        assert!(sample.rss_kib > 0);
        assert!(sample.hwm_kib >= sample.rss_kib);
        Ok(())
    }
}
