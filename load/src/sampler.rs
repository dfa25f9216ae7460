//! The server's memory and CPU during a run, sampled from `/proc`.
//!
//! VmHWM alone cannot say whether the peak came from the uploads or the downloads, and one
//! reading at the end misses a peak that was freed since; so a task samples VmRSS every
//! 100 ms and keeps the maximum per phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::procfs::ProcSample;
use crate::units::round3;

/// Peaks and the phase, written by the sampling task and by [`ServerSampler::read`].
struct Peaks {
    pid: String,
    /// 0 while uploading, 1 from the downloads on.
    phase: AtomicUsize,
    max_rss_kib: [AtomicU64; 2],
}

impl Peaks {
    /// Reads a sample and counts it for the current phase.
    fn sample(&self) -> Option<ProcSample> {
        let sample = ProcSample::read(&self.pid).ok()?;
        let phase = self.phase.load(Ordering::Relaxed).min(1);
        self.max_rss_kib[phase].fetch_max(sample.rss_kib, Ordering::Relaxed);
        Some(sample)
    }
}

/// The largest VmRSS seen in each phase, in KiB.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeakRss {
    /// During the uploads (shares and inline downloads included).
    pub(crate) upload_kib: u64,
    /// From the downloads to the end of the run (deletes included).
    pub(crate) download_kib: u64,
}

/// Samples a process's RSS every 100 ms in the background, keeping the maximum per phase.
pub(crate) struct ServerSampler {
    peaks: Arc<Peaks>,
    task: JoinHandle<()>,
}

impl ServerSampler {
    /// Starts sampling `pid` (uploads phase); stops by itself when the process is gone.
    pub(crate) fn spawn(pid: u32) -> Self {
        let peaks = Arc::new(Peaks {
            pid: pid.to_string(),
            phase: AtomicUsize::new(0),
            max_rss_kib: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let p = peaks.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if p.sample().is_none() {
                    break;
                }
            }
        });
        ServerSampler { peaks, task }
    }

    /// Reads a sample now, and counts it for the current phase: a phase shorter than the
    /// sampling interval still gets one sample, and phase boundaries get exact CPU readings.
    pub(crate) fn read(&self) -> Option<ProcSample> {
        self.peaks.sample()
    }

    /// From now on samples count for the downloads.
    pub(crate) fn start_downloads(&self) {
        self.peaks.phase.store(1, Ordering::Relaxed);
    }

    /// Stops sampling and returns the peaks, so later work (the report) is not counted.
    pub(crate) fn stop(self) -> PeakRss {
        self.task.abort();
        PeakRss {
            upload_kib: self.peaks.max_rss_kib[0].load(Ordering::Relaxed),
            download_kib: self.peaks.max_rss_kib[1].load(Ordering::Relaxed),
        }
    }
}

/// CPU seconds a process spent between two samples, to the millisecond; `None` when either
/// reading failed, so a vanished process shows as `null` rather than a made-up zero.
pub(crate) fn cpu_between(from: Option<ProcSample>, to: Option<ProcSample>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) => Some(round3(b.cpu_seconds - a.cpu_seconds)),
        _ => None,
    }
}
