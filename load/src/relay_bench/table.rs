//! `smtp_load table`: the JSON lines of many `smtp_load run`s as Markdown, one table per data
//! location and body size: best and median over the runs for the rates, the median over the
//! runs of each run's p50 and p99 for latencies and of CPU per message, the largest memory
//! figure, and each relay's ratio to the baseline (Postfix).

use std::io::Read as _;

use anyhow::Context;
use serde_json::Value;

use super::cli::TableArgs;

/// Median of `values` (mean of the middle two for an even count); `None` if empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// About three significant digits, as the other benchmark tables print.
fn num(x: Option<f64>) -> String {
    match x {
        None => "-".to_owned(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
        _ => "-".to_owned(),
    }
}

/// One relay's figures over the runs of one location and body size.
struct Cell {
    runs: usize,
    accepted_best: Option<f64>,
    accepted_median: Option<f64>,
    delivered_best: Option<f64>,
    delivered_median: Option<f64>,
    queue_p50: Option<f64>,
    queue_p99: Option<f64>,
    submit_p50: Option<f64>,
    cpu_ms: Option<f64>,
    rss: Option<f64>,
    pss: Option<f64>,
    errors: u64,
    lost: u64,
}

fn numbers(runs: &[&Value], pick: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    runs.iter().filter_map(|r| pick(r)).collect()
}

impl Cell {
    fn of(runs: &[&Value]) -> Self {
        let f = |path: &[&str]| {
            let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
            numbers(runs, move |r| {
                path.iter().try_fold(r, |v, k| v.get(k))?.as_f64()
            })
        };
        let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
        // One process: its VmHWM is the true peak; a tree: the summed VmRSS sampled.
        let rss = numbers(runs, |r| {
            let single = r["relay_max_processes"].as_u64().unwrap_or(0) <= 1;
            if single {
                r["relay_hwm_mib"].as_f64()
            } else {
                r["relay_peak_rss_mib"].as_f64()
            }
        });
        let count = |key: &str| runs.iter().filter_map(|r| r[key].as_u64()).sum::<u64>();
        let lost = runs
            .iter()
            .map(|r| {
                let sent = r["messages"].as_u64().unwrap_or(0);
                sent.saturating_sub(r["delivered"].as_u64().unwrap_or(0))
            })
            .sum();
        Self {
            runs: runs.len(),
            accepted_best: max(f(&["accepted_per_s"])),
            accepted_median: median(&f(&["accepted_per_s"])),
            delivered_best: max(f(&["delivered_per_s"])),
            delivered_median: median(&f(&["delivered_per_s"])),
            queue_p50: median(&f(&["queue_ms", "p50"])),
            queue_p99: median(&f(&["queue_ms", "p99"])),
            submit_p50: median(&f(&["submit_ms", "p50"])),
            cpu_ms: median(&f(&["relay_cpu_ms_per_message"])),
            rss: max(rss),
            pss: max(f(&["relay_peak_pss_mib"])),
            errors: count("submit_errors") + count("duplicates"),
            lost,
        }
    }
}

/// Prints the tables.
pub fn table(args: &TableArgs) -> anyhow::Result<()> {
    let mut text = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
    }
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    print!("{}", render(&lines, &args.baseline));
    Ok(())
}

/// Values of `key` in order of first appearance.
fn distinct<'a>(lines: impl Iterator<Item = &'a Value>, key: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for line in lines {
        if !out.contains(&line[key]) {
            out.push(line[key].clone());
        }
    }
    out
}

fn render(lines: &[Value], baseline: &str) -> String {
    let runs: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "run").collect();
    let mut out = String::new();
    for location in distinct(runs.iter().copied(), "location") {
        let here: Vec<&Value> = runs
            .iter()
            .copied()
            .filter(|r| r["location"] == location)
            .collect();
        for size in distinct(here.iter().copied(), "body_bytes") {
            let cell_runs: Vec<&Value> = here
                .iter()
                .copied()
                .filter(|r| r["body_bytes"] == size)
                .collect();
            let first = cell_runs.first().copied().unwrap_or(&Value::Null);
            out.push_str(&format!(
                "#### {}: {} × {} B bodies ({} B on the wire), {} connections\n\n",
                location.as_str().unwrap_or("?"),
                first["messages"],
                size,
                first["message_bytes"],
                first["concurrency"],
            ));
            out.push_str(
                "| | accepted msg/s best / median | delivered msg/s best / median | queue latency p50 / p99 ms | submit p50 ms | relay CPU ms/msg | peak RSS MiB | peak PSS MiB | runs | errors / lost |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n",
            );
            let relays = distinct(cell_runs.iter().copied(), "relay");
            let cells: Vec<(String, Cell)> = relays
                .iter()
                .map(|relay| {
                    let mine: Vec<&Value> = cell_runs
                        .iter()
                        .copied()
                        .filter(|r| r["relay"] == *relay)
                        .collect();
                    (relay.as_str().unwrap_or("?").to_owned(), Cell::of(&mine))
                })
                .collect();
            for (relay, c) in &cells {
                out.push_str(&format!(
                    "| {relay} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} / {} |\n",
                    num(c.accepted_best),
                    num(c.accepted_median),
                    num(c.delivered_best),
                    num(c.delivered_median),
                    num(c.queue_p50),
                    num(c.queue_p99),
                    num(c.submit_p50),
                    num(c.cpu_ms),
                    num(c.rss),
                    num(c.pss),
                    c.runs,
                    c.errors,
                    c.lost,
                ));
            }
            if let Some((_, base)) = cells.iter().find(|(r, _)| r == baseline) {
                for (relay, c) in cells.iter().filter(|(r, _)| r != baseline) {
                    out.push_str(&format!(
                        "| {relay} / {baseline} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} | | |\n",
                        ratio(c.accepted_best, base.accepted_best),
                        ratio(c.accepted_median, base.accepted_median),
                        ratio(c.delivered_best, base.delivered_best),
                        ratio(c.delivered_median, base.delivered_median),
                        ratio(c.queue_p50, base.queue_p50),
                        ratio(c.queue_p99, base.queue_p99),
                        ratio(c.submit_p50, base.submit_p50),
                        ratio(c.cpu_ms, base.cpu_ms),
                        ratio(c.rss, base.rss),
                        ratio(c.pss, base.pss),
                    ));
                }
            }
            out.push('\n');
        }
        let refusals: Vec<String> = lines
            .iter()
            .filter(|l| l["kind"] == "refusal" && l["location"] == location)
            .map(|l| {
                let errors = l["sink_tls_errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    })
                    .unwrap_or_default();
                format!(
                    "{} {} (at the sink: {} failed handshake(s){}, {} TLS session(s) closed before \
                     MAIL; {} delivered)",
                    l["relay"].as_str().unwrap_or("?"),
                    if l["refused"] == true {
                        "refused it"
                    } else {
                        "**did not refuse it**"
                    },
                    l["sink_tls_failures"],
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(": {errors}")
                    },
                    l["sink_tls_sessions_without_mail"],
                    l["delivered"],
                )
            })
            .collect();
        // One check per relay start: the same outcome again says nothing new.
        let mut refusals = refusals;
        refusals.dedup();
        let refusals: Vec<String> = refusals
            .iter()
            .enumerate()
            .filter(|(i, r)| !refusals[..*i].contains(r))
            .map(|(_, r)| r.clone())
            .collect();
        if !refusals.is_empty() {
            out.push_str(&format!(
                "Wrong-name certificate (signed by the trusted CA, for another host): {}.\n\n",
                refusals.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(num(Some(1234.5)), "1234");
        assert_eq!(num(Some(12.34)), "12.3");
        assert_eq!(num(Some(0.1234)), "0.123");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25×");
    }

    #[test]
    fn one_table_per_location_and_size_with_ratios() -> anyhow::Result<()> {
        let line = |relay: &str, run: u32, rate: f64| -> anyhow::Result<Value> {
            Ok(serde_json::from_str(&format!(
                r#"{{"kind":"run","relay":"{relay}","location":"shm","run":{run},"messages":10,
                "body_bytes":1000,"message_bytes":1300,"concurrency":2,"accepted_per_s":{rate},
                "delivered_per_s":{rate},"queue_ms":{{"p50":1.0,"p99":2.0}},"submit_ms":{{"p50":0.5}},
                "relay_cpu_ms_per_message":1.0,"relay_max_processes":1,"relay_hwm_mib":20.0,
                "relay_peak_rss_mib":19.0,"relay_peak_pss_mib":18.0,"submit_errors":0,
                "duplicates":0,"delivered":10}}"#
            ))?)
        };
        let lines = vec![
            line("ferry", 1, 100.0)?,
            line("postfix", 1, 50.0)?,
            line("ferry", 2, 120.0)?,
            line("postfix", 2, 60.0)?,
        ];
        let text = render(&lines, "postfix");
        assert!(text.contains("#### shm: 10 × 1000 B bodies"), "{text}");
        assert!(text.contains("| ferry | 120 / 110 |"), "{text}");
        assert!(
            text.contains("| ferry / postfix | 2.00× / 2.00× |"),
            "{text}"
        );
        Ok(())
    }
}
