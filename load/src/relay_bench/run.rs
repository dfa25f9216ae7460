//! `smtp_load run`: one timed run against one relay.
//!
//! The sink starts first (on the address the relay delivers to), then every submission
//! connection is set up (TLS and AUTH are not timed), then the clock starts and the messages
//! go out. The run ends when every accepted message has reached the sink (or the drain
//! timeout passed), plus `--settle` for the relay's bookkeeping. It prints one JSON line on
//! stdout and a readable summary on stderr.
//!
//! Figures (MB = 10^6 bytes; all instants from one monotonic clock):
//! - accepted msgs/s: accepted messages / (last 250 after DATA − first MAIL);
//! - delivered msgs/s: distinct messages at the sink / (last arrival − first MAIL);
//! - queue latency: arrival at the sink (the final `.` read) − the 250 after DATA, per
//!   message; it can be slightly negative when the relay delivers before the submitter has
//!   read its 250 (both share two cores);
//! - submit latency: the 250 after DATA − that message's MAIL;
//! - relay CPU: user + system seconds of the relay's process tree from the first MAIL to the
//!   end of the settle time, per accepted message;
//! - relay memory: peaks of the tree's summed VmRSS and Pss sampled every 100 ms, and the
//!   root's VmHWM at the end (see `proc_tree`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rustls_pki_types::ServerName;
use serde_json::json;

use super::cli::RunArgs;
use super::message::MessageSet;
use super::proc_tree::{self, TreeSampler};
use super::sink::{Sink, SinkLog};
use super::submit::{Outcome, Submitter, submit_all};
use super::tls;
use crate::procfs::ProcSample;
use crate::units::{mib, round3};

/// After a refused delivery was seen, how long to keep watching that nothing arrives anyway.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// Nearest-rank percentile `p` of ascending `sorted` values; `None` if empty.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn signed_ms(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1e3
    } else {
        -((from - to).as_secs_f64() * 1e3)
    }
}

/// p50, p99 and max of `values` in ms, rounded to the microsecond.
fn spread(mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let pick = |p: f64| percentile(&values, p).map(round3);
    json!({"p50": pick(50.0), "p99": pick(99.0), "max": pick(100.0)})
}

fn default_tag() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("b{secs}-{}", std::process::id())
}

/// Runs `smtp_load run`; `Ok(false)` when a message was lost, refused, late or duplicated
/// (or, with `--expect-refusal`, when the relay did not refuse).
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let tag = args.tag.clone().unwrap_or_else(default_tag);
    let size = usize::try_from(args.size).context("--size")?;
    let set = Arc::new(MessageSet::new(
        &tag,
        &args.from,
        &args.to_domain,
        size,
        args.seed,
    ));
    let sink_tls = tls::server_config(
        &tls::read_pem(&args.sink_cert)?,
        &tls::read_pem(&args.sink_key)?,
    )?;
    let sink = Sink::start(args.sink, &args.sink_name, sink_tls, &set.id_prefix())
        .await
        .with_context(|| format!("the sink cannot listen on {}", args.sink))?;
    let auth = match (&args.user, &args.password) {
        (Some(user), Some(password)) => Some((user.clone(), password.clone())),
        (None, _) => None,
        (Some(_), None) => bail!("--user needs --password (or SMTP_LOAD_PASSWORD)"),
    };
    let submitter = Arc::new(Submitter {
        relay: args.relay,
        server_name: ServerName::try_from(args.relay_name.clone())?,
        tls: tls::client_config(&tls::read_pem(&args.ca)?)?,
        auth,
        helo: "client.sender.bench.test".to_owned(),
    });
    if args.expect_refusal {
        return refusal(&args, submitter, set, &sink).await;
    }

    let sessions = submitter
        .connect_all(args.concurrency)
        .await
        .context("setting up the submission connections")?;
    let sampler = args.relay_pid.map(TreeSampler::start);
    let relay_before = args.relay_pid.and_then(proc_tree::sample);
    let me_before = ProcSample::read("self").ok();
    let (outcomes, totals) = submit_all(
        Arc::clone(&submitter),
        sessions,
        Arc::clone(&set),
        args.messages,
    )
    .await?;
    let accepted: HashMap<String, &Outcome> = outcomes
        .iter()
        .filter(|o| o.accepted_at.is_some())
        .map(|o| (set.id(o.index), o))
        .collect();
    let expected = accepted.len();
    let drained = sink
        .wait_until(args.drain_timeout, |log| log.arrivals.len() >= expected)
        .await;
    tokio::time::sleep(args.settle).await;
    let relay_after = args.relay_pid.and_then(proc_tree::sample);
    let peaks = sampler.map(TreeSampler::stop);
    let me_after = ProcSample::read("self").ok();
    let log = sink.snapshot();

    let report = Figures::of(&outcomes, &accepted, &log);
    let relay_cpu = match (relay_before, relay_after) {
        (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
        _ => None,
    };
    let errors: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
    let temporary: u32 = outcomes.iter().map(|o| o.temporary).sum();
    let wire_bytes = set.headers(0).len() + set.body().len();
    let line = json!({
        "kind": "run",
        "relay": args.label,
        "location": args.location,
        "run": args.run,
        "tag": tag,
        "sink": sink.addr().to_string(),
        "messages": args.messages,
        "body_bytes": set.body().len(),
        "message_bytes": wire_bytes,
        "concurrency": args.concurrency,
        "accepted": expected,
        "submit_errors": errors.len(),
        "first_error": errors.first(),
        "temporary_refusals": temporary,
        "reconnects": totals.reconnects,
        "delivered": report.delivered,
        "duplicates": report.duplicates,
        "unaccepted_arrivals": report.unaccepted,
        "foreign_arrivals": log.foreign,
        "drained": drained,
        "accept_seconds": round3(report.accept_seconds),
        "accepted_per_s": round3(report.accept_rate()),
        "deliver_seconds": round3(report.deliver_seconds),
        "delivered_per_s": round3(report.deliver_rate()),
        "accepted_mb_per_s": round3(report.accept_rate() * wire_bytes as f64 / 1e6),
        "queue_ms": spread(report.queue_ms.clone()),
        "submit_ms": spread(report.submit_ms.clone()),
        "relay_cpu_seconds": relay_cpu.map(round3),
        "relay_cpu_ms_per_message": relay_cpu
            .filter(|_| expected > 0)
            .map(|c| round3(c * 1e3 / expected as f64)),
        "relay_peak_rss_mib": peaks.map(|p| mib(p.rss_kib)),
        "relay_peak_pss_mib": peaks.map(|p| mib(p.pss_kib)),
        "relay_max_processes": peaks.map(|p| p.processes),
        "relay_hwm_mib": relay_after.map(|s| mib(s.root_hwm_kib)),
        "sink_connections": log.connections,
        "sink_tls_failures": log.tls_failures,
        "sink_plain_refusals": log.plain_refusals,
        "generator_cpu_seconds": match (me_before, me_after) {
            (Some(a), Some(b)) => Some(round3(b.cpu_seconds - a.cpu_seconds)),
            _ => None,
        },
    });
    println!("{line}");
    eprintln!(
        "{} {} run {}: {} × {} B over {} connections: accepted {}/{} at {:.1} msg/s, delivered \
         {} at {:.1} msg/s, queue p50 {} p99 {} ms, relay CPU {} ms/msg, peak RSS {} MiB{}",
        args.label,
        args.location,
        args.run,
        args.messages,
        set.body().len(),
        args.concurrency,
        expected,
        args.messages,
        report.accept_rate(),
        report.delivered,
        report.deliver_rate(),
        line["queue_ms"]["p50"],
        line["queue_ms"]["p99"],
        line["relay_cpu_ms_per_message"],
        line["relay_peak_rss_mib"],
        errors
            .first()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default(),
    );
    Ok(errors.is_empty()
        && drained
        && report.delivered == args.messages
        && report.duplicates == 0
        && report.unaccepted == 0)
}

/// What one run's instants add up to.
struct Figures {
    delivered: usize,
    duplicates: usize,
    unaccepted: usize,
    accept_seconds: f64,
    deliver_seconds: f64,
    accepted: usize,
    queue_ms: Vec<f64>,
    submit_ms: Vec<f64>,
}

impl Figures {
    fn of(outcomes: &[Outcome], accepted: &HashMap<String, &Outcome>, log: &SinkLog) -> Self {
        let first_mail = outcomes.iter().map(|o| o.mail_at).min();
        let last_accept = outcomes.iter().filter_map(|o| o.accepted_at).max();
        let mut first_arrival: HashMap<&str, std::time::Instant> = HashMap::new();
        let mut duplicates = 0;
        for (id, at) in &log.arrivals {
            if first_arrival.insert(id.as_str(), *at).is_some() {
                duplicates += 1;
            }
        }
        let mut queue_ms = Vec::new();
        let mut unaccepted = 0;
        let mut last_arrival = None;
        for (id, at) in &first_arrival {
            match accepted.get(*id).and_then(|o| o.accepted_at) {
                Some(accepted_at) => {
                    queue_ms.push(signed_ms(accepted_at, *at));
                    last_arrival = last_arrival.max(Some(*at));
                }
                None => unaccepted += 1,
            }
        }
        let submit_ms = outcomes
            .iter()
            .filter_map(|o| Some(signed_ms(o.mail_at, o.accepted_at?)))
            .collect();
        let since_first = |end: Option<std::time::Instant>| match (first_mail, end) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        Self {
            delivered: queue_ms.len(),
            duplicates,
            unaccepted,
            accept_seconds: since_first(last_accept),
            deliver_seconds: since_first(last_arrival),
            accepted: accepted.len(),
            queue_ms,
            submit_ms,
        }
    }

    fn accept_rate(&self) -> f64 {
        rate(self.accepted, self.accept_seconds)
    }

    fn deliver_rate(&self) -> f64 {
        rate(self.delivered, self.deliver_seconds)
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// `--expect-refusal`: one message, which the relay must accept and then not deliver to a
/// sink whose certificate does not name the MX; the sink must see the relay give up, with a
/// failed handshake (rustls, in Ferry) or a TLS session closed before MAIL (Postfix checks
/// the name after the handshake).
async fn refusal(
    args: &RunArgs,
    submitter: Arc<Submitter>,
    set: Arc<MessageSet>,
    sink: &Sink,
) -> anyhow::Result<bool> {
    let sessions = submitter.connect_all(1).await?;
    let (outcomes, _) = submit_all(submitter, sessions, set, 1).await?;
    let accepted = outcomes.iter().all(|o| o.accepted_at.is_some());
    let failed = sink
        .wait_until(args.refusal_wait, |log| {
            log.tls_failures + log.tls_sessions_without_mail > 0
        })
        .await;
    tokio::time::sleep(REFUSAL_GRACE).await;
    let log = sink.snapshot();
    let refused = accepted && failed && log.arrivals.is_empty();
    let line = json!({
        "kind": "refusal",
        "relay": args.label,
        "location": args.location,
        "accepted": accepted,
        "submit_error": outcomes.iter().find_map(|o| o.error.clone()),
        "sink_tls_failures": log.tls_failures,
        "sink_tls_errors": log.tls_errors,
        "sink_tls_sessions_without_mail": log.tls_sessions_without_mail,
        "delivered": log.arrivals.len(),
        "refused": refused,
    });
    println!("{line}");
    eprintln!(
        "{}: wrong-name certificate {} ({} failed handshakes at the sink: {}; {} TLS sessions \
         closed before MAIL; {} delivered)",
        args.label,
        if refused { "refused" } else { "NOT refused" },
        log.tls_failures,
        log.tls_errors.join(" | "),
        log.tls_sessions_without_mail,
        log.arrivals.len()
    );
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_signed_times() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
        let a = Instant::now();
        let b = a + Duration::from_millis(3);
        assert_eq!(signed_ms(a, b), 3.0);
        assert_eq!(signed_ms(b, a), -3.0);
    }
}
