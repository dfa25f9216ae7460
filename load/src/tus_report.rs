//! The report of `loadgen tus`: one JSON object (printed as one line on stdout, which
//! `bench-concurrency` and `bench-concurrency-table.mjs` parse) and its readable form on
//! stderr. Both are built from the same object so they cannot disagree.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::DownloadMode;
use crate::procfs::ProcSample;
use crate::sampler::{PeakRss, cpu_between};
use crate::stats::KindStats;
use crate::tus_client::{Done, Shared};
use crate::units::{mb_per_s, mib, ms, percentile, round3};

/// One request kind's figures. `count` adds up every outcome so that a kind whose requests all
/// failed still shows how many there were.
fn kind_report(k: &KindStats) -> Value {
    let mut sorted = k.latencies.clone();
    sorted.sort_unstable();
    let p = |q: f64| percentile(&sorted, q).map(ms);
    json!({
        "count": k.ok + k.errors.values().sum::<u64>() + k.retried.values().sum::<u64>() + k.injected,
        "ok": k.ok,
        "p50_ms": p(50.0),
        "p99_ms": p(99.0),
        "max_ms": p(100.0),
        "errors": k.errors,
        "retried": k.retried,
        "injected": k.injected,
    })
}

/// The whole report of a run, options included, so that one JSON line is enough to redraw a
/// table row.
pub(crate) fn tus_report(
    shared: &Shared,
    done: &[Done],
    upload_wall: Duration,
    download_wall: Duration,
    server: Option<Value>,
) -> Value {
    let args = &shared.args;
    let kinds = shared.stats.kinds();
    let requests: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|(name, k)| ((*name).to_owned(), kind_report(k)))
        .collect();
    let download_stats = kinds.get("download");
    let downloads_ok = download_stats.map_or(0, |k| k.ok);
    let downloads_failed = download_stats.map_or(0, |k| k.errors.values().sum::<u64>());
    drop(kinds);
    let mut times: Vec<Duration> = done.iter().map(|d| d.elapsed).collect();
    times.sort_unstable();
    let secs = |q: f64| percentile(&times, q).map(|d| round3(d.as_secs_f64()));
    let uploaded = done.len() as u64 * args.size;
    let downloaded = shared.stats.downloaded_bytes.load(Ordering::Relaxed);
    let client = ProcSample::read("self").ok();
    let failures = shared.stats.first_failures(10);
    json!({
        "label": args.label,
        "server": format!("{:?}", args.server).to_lowercase(),
        "url": args.url,
        "uploads": args.uploads,
        "size": args.size,
        "chunk": args.chunk,
        "rate": args.rate,
        "pause_prob": args.pause_prob,
        "pause_ms": [ms(args.pause.min), ms(args.pause.max)],
        "disconnect_prob": args.disconnect_prob,
        "download_mode": format!("{:?}", args.download).to_lowercase(),
        "verify": !args.no_verify,
        "seed": args.seed,
        "upload": {
            "ok": done.len(),
            "failed": args.uploads - done.len(),
            "bytes": uploaded,
            "wire_bytes": shared.stats.wire_bytes.load(Ordering::Relaxed),
            "wall_s": round3(upload_wall.as_secs_f64()),
            "mb_s": round3(mb_per_s(uploaded, upload_wall)),
            "time_p50_s": secs(50.0),
            "time_p99_s": secs(99.0),
            "time_max_s": secs(100.0),
        },
        "download": {
            "ok": downloads_ok,
            "failed": downloads_failed,
            "verified": !args.no_verify && args.download != DownloadMode::None,
            "bytes": downloaded,
            "wall_s": round3(download_wall.as_secs_f64()),
            "mb_s": if args.download == DownloadMode::After {
                json!(round3(mb_per_s(downloaded, download_wall)))
            } else {
                Value::Null
            },
        },
        "requests": requests,
        "injected": {
            "pauses": shared.stats.pauses.load(Ordering::Relaxed),
            "disconnects": shared.stats.disconnects.load(Ordering::Relaxed),
        },
        "errors": shared.stats.total_errors(),
        "failures": failures,
        "server_proc": server,
        "client_proc": client.map(|c| json!({
            "cpu_s": round3(c.cpu_seconds),
            "hwm_mib": mib(c.hwm_kib),
        })),
    })
}

/// The server's `server_proc` object: peak RSS per phase, VmHWM and RSS at the end, CPU per
/// phase. `samples` are the readings at the start, between uploads and downloads, and after the
/// downloads; the CPU of each phase is the difference of its two readings.
pub(crate) fn server_proc(
    pid: Option<u32>,
    peak: PeakRss,
    samples: [Option<ProcSample>; 3],
) -> Value {
    let [start, mid, end] = samples;
    json!({
        "pid": pid,
        "max_rss_upload_mib": mib(peak.upload_kib),
        "max_rss_download_mib": mib(peak.download_kib),
        "hwm_mib": end.map(|e| mib(e.hwm_kib)),
        "end_rss_mib": end.map(|e| mib(e.rss_kib)),
        "cpu_upload_s": cpu_between(start, mid),
        "cpu_download_s": cpu_between(mid, end),
    })
}

/// The readable form on stderr, for a person watching the run; scripts read the JSON line.
pub(crate) fn print_tus_report(r: &Value) {
    let u = &r["upload"];
    let d = &r["download"];
    eprintln!(
        "\n{} uploads × {} B to {} ({}), chunk {} B, rate {}, pause p={} disconnect p={}",
        r["uploads"],
        r["size"],
        r["url"].as_str().unwrap_or_default(),
        r["server"].as_str().unwrap_or_default(),
        r["chunk"],
        r["rate"],
        r["pause_prob"],
        r["disconnect_prob"],
    );
    eprintln!(
        "upload:   {} ok, {} failed; {} MB in {} s = {} MB/s (wire {} MB); per upload p50 {} s, p99 {} s",
        u["ok"],
        u["failed"],
        u["bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        u["wall_s"],
        u["mb_s"],
        u["wire_bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        u["time_p50_s"],
        u["time_p99_s"],
    );
    eprintln!(
        "download: {} ok, {} failed (verified: {}); {} MB in {} s = {} MB/s",
        d["ok"],
        d["failed"],
        d["verified"],
        d["bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
        d["wall_s"],
        d["mb_s"],
    );
    eprintln!(
        "injected: {} pauses, {} disconnects; errors: {}",
        r["injected"]["pauses"], r["injected"]["disconnects"], r["errors"]
    );
    eprintln!(
        "{:<9} {:>7} {:>7} {:>10} {:>10} {:>10}  errors / retried",
        "request", "count", "ok", "p50 ms", "p99 ms", "max ms"
    );
    if let Some(requests) = r["requests"].as_object() {
        for (kind, k) in requests {
            eprintln!(
                "{:<9} {:>7} {:>7} {:>10} {:>10} {:>10}  {} / {}",
                kind,
                k["count"].to_string(),
                k["ok"].to_string(),
                k["p50_ms"].to_string(),
                k["p99_ms"].to_string(),
                k["max_ms"].to_string(),
                k["errors"],
                k["retried"]
            );
        }
    }
    if let Some(s) = r["server_proc"].as_object() {
        eprintln!(
            "server pid {}: RSS max {} MiB during uploads, {} MiB during downloads; VmHWM {} MiB, \
             end {} MiB; CPU {} s uploads, {} s downloads",
            s["pid"],
            s["max_rss_upload_mib"],
            s["max_rss_download_mib"],
            s["hwm_mib"],
            s["end_rss_mib"],
            s["cpu_upload_s"],
            s["cpu_download_s"]
        );
    }
    if let Some(failures) = r["failures"].as_array() {
        for f in failures {
            eprintln!("failure: {}", f.as_str().unwrap_or_default());
        }
    }
}
