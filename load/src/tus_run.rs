//! `loadgen tus`: N concurrent uploads, then (or interleaved with) their downloads and
//! deletes, with the server sampled throughout; prints the report.
//!
//! The run is split in phases so that each figure has its own clock: uploads end with the
//! last confirmed PATCH (shares that follow are not upload time), downloads are timed on
//! their own when they come after, and the server's RSS and CPU are attributed per phase.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure};
use serde_json::json;
use tokio::time::Instant;

use crate::cli::{DownloadMode, Flavor, TusArgs};
use crate::download::download;
use crate::sampler::ServerSampler;
use crate::tus_client::{Shared, delete, upload};
use crate::tus_report::{print_tus_report, server_proc, tus_report};

/// Prints a progress line every `every` (none for zero): a 500-upload run takes minutes, and a
/// stuck one should be visible before it times out.
fn progress_task(shared: Arc<Shared>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval_at(start + every, every);
        let mut last = 0u64;
        loop {
            tick.tick().await;
            let acked = shared.stats.acked_bytes.load(Ordering::Relaxed);
            eprintln!(
                "loadgen: {:>5.0}s uploads done {} failed {} of {}; confirmed {:.0} MB ({:.0} MB/s \
                 now); downloads done {} ({:.0} MB); pauses {} disconnects {}",
                start.elapsed().as_secs_f64(),
                shared.stats.uploads_done.load(Ordering::Relaxed),
                shared.stats.uploads_failed.load(Ordering::Relaxed),
                shared.args.uploads,
                acked as f64 / 1e6,
                (acked - last) as f64 / 1e6 / every.as_secs_f64(),
                shared.stats.downloads_done.load(Ordering::Relaxed),
                shared.stats.downloaded_bytes.load(Ordering::Relaxed) as f64 / 1e6,
                shared.stats.pauses.load(Ordering::Relaxed),
                shared.stats.disconnects.load(Ordering::Relaxed),
            );
            last = acked;
        }
    }))
}

/// Runs `loadgen tus`. `Ok(false)` when anything failed or any unexpected error was counted
/// (the report is printed either way), so the caller can exit 1 yet keep the figures; `Err`
/// (no report) for bad options or a task that panicked.
pub async fn run(args: TusArgs) -> anyhow::Result<bool> {
    ensure!(args.uploads > 0, "--uploads must be at least 1");
    ensure!(args.size > 0, "--size must be at least 1 byte");
    ensure!(
        (0.0..=1.0).contains(&args.pause_prob) && (0.0..=1.0).contains(&args.disconnect_prob),
        "probabilities must be within 0..=1"
    );
    if args.server == Flavor::Ferry && args.bearer.is_none() {
        bail!("--server ferry needs --bearer (or FERRY_LOAD_BEARER)");
    }
    let shared = Arc::new(Shared::new(args.clone())?);
    let sampler = args.server_pid.map(ServerSampler::spawn);
    let server_at = |s: &Option<ServerSampler>| s.as_ref().and_then(ServerSampler::read);
    let server_start = server_at(&sampler);
    let progress = progress_task(shared.clone(), args.progress);

    // Phase 1: uploads (with inline downloads if asked).
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.uploads);
    for index in 0..args.uploads {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let result = upload(shared.clone(), index).await;
            match &result {
                Ok(done) => {
                    shared.stats.uploads_done.fetch_add(1, Ordering::Relaxed);
                    if shared.args.download == DownloadMode::Inline {
                        if let Err(e) = download(&shared, done).await {
                            shared.stats.fail(format!("download {index}: {e:#}"));
                        }
                        if shared.args.delete {
                            delete(&shared, &done.location).await;
                        }
                    }
                }
                Err(e) => {
                    shared.stats.uploads_failed.fetch_add(1, Ordering::Relaxed);
                    shared.stats.fail(format!("upload {index}: {e:#}"));
                }
            }
            result.ok()
        }));
    }
    let mut done = Vec::with_capacity(args.uploads);
    for task in tasks {
        if let Some(d) = task.await.map_err(|e| anyhow!("upload task: {e}"))? {
            done.push(d);
        }
    }
    // Until the last upload's last byte was confirmed: shares (and inline downloads) that
    // follow it are not upload time.
    let upload_wall = match args.download {
        DownloadMode::Inline => started.elapsed(),
        _ => done
            .iter()
            .map(|d| d.finished - started)
            .max()
            .unwrap_or_else(|| started.elapsed()),
    };
    let server_mid = server_at(&sampler);
    if let Some(s) = &sampler {
        s.start_downloads();
    }

    // Phase 2: downloads, all at once (N concurrent), then deletes.
    let mut download_wall = Duration::ZERO;
    let done = Arc::new(done);
    if args.download == DownloadMode::After && !done.is_empty() {
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(done.len());
        for i in 0..done.len() {
            let shared = shared.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let d = &done[i];
                if let Err(e) = download(&shared, d).await {
                    shared.stats.fail(format!("download {}: {e:#}", d.index));
                }
            }));
        }
        for task in tasks {
            task.await.map_err(|e| anyhow!("download task: {e}"))?;
        }
        download_wall = started.elapsed();
    }
    let server_end = server_at(&sampler);
    if args.delete && args.download != DownloadMode::Inline {
        let mut tasks = Vec::with_capacity(done.len());
        for i in 0..done.len() {
            let shared = shared.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                delete(&shared, &done[i].location).await;
            }));
        }
        for task in tasks {
            task.await.map_err(|e| anyhow!("delete task: {e}"))?;
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let server_rss = sampler.map(|s| {
        server_proc(
            args.server_pid,
            s.stop(),
            [server_start, server_mid, server_end],
        )
    });

    let report = tus_report(&shared, &done, upload_wall, download_wall, server_rss);
    print_tus_report(&report);
    println!("{report}");
    let ok = report["upload"]["failed"] == json!(0)
        && report["errors"] == json!(0)
        && report["download"]["failed"] == json!(0);
    Ok(ok)
}
