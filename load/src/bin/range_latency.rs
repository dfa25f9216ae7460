//! `range_latency URL [--offset N] [--requests N] [--warmup N] [--expect-file PATH]`
//!
//! Measures the latency of 1-byte `Range: bytes=X-X` GETs against `URL` over one keep-alive
//! connection: `--warmup` untimed requests, then `--requests` timed ones, one at a time.
//! Prints one JSON object with the percentiles in milliseconds (time from sending the request
//! to having read the whole body). Every answer must be `206` with exactly one byte (and, with
//! `--expect-file`, the byte at the same offset of that file), or the run fails: a server that
//! ignores `Range` is reported, not timed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ferry_load::units::{ms, percentile};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};

/// 900 MiB: far into a 1 GiB file, past any read-ahead of its start.
const DEFAULT_OFFSET: u64 = 900 << 20;

struct Args {
    url: String,
    offset: u64,
    requests: usize,
    warmup: usize,
    expect_file: Option<String>,
}

fn usage() -> &'static str {
    "usage: range_latency URL [--offset N] [--requests N] [--warmup N] [--expect-file PATH]"
}

fn parse_args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut args = Args {
        url: String::new(),
        offset: DEFAULT_OFFSET,
        requests: 500,
        warmup: 50,
        expect_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--offset" => args.offset = value("--offset")?.parse().context("--offset")?,
            "--requests" => args.requests = value("--requests")?.parse().context("--requests")?,
            "--warmup" => args.warmup = value("--warmup")?.parse().context("--warmup")?,
            "--expect-file" => args.expect_file = Some(value("--expect-file")?),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option {other}\n{}", usage()),
            other if url.is_none() => url = Some(other.to_owned()),
            other => bail!("unexpected argument {other}\n{}", usage()),
        }
    }
    args.url = url.with_context(usage)?;
    ensure!(args.requests > 0, "--requests must be at least 1");
    Ok(args)
}

/// One ranged GET; returns the single byte served.
fn fetch_byte(client: &Client, url: &str, offset: u64) -> anyhow::Result<u8> {
    let response = client
        .get(url)
        .header(RANGE, format!("bytes={offset}-{offset}"))
        .send()
        .context("sending the range request")?;
    let status = response.status();
    let content_range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status != StatusCode::PARTIAL_CONTENT {
        bail!(
            "expected 206 Partial Content, got {status} (Content-Length {:?}): \
             the server does not honour Range",
            response.content_length()
        );
    }
    let body = response.bytes().context("reading the range body")?;
    ensure!(
        body.len() == 1,
        "a 1-byte range returned {} bytes (Content-Range {content_range:?})",
        body.len()
    );
    Ok(body[0])
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let expected = match &args.expect_file {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {path}"))?;
            let mut byte = [0u8; 1];
            file.read_exact_at(&mut byte, args.offset)
                .with_context(|| format!("reading {path} at {}", args.offset))?;
            Some(byte[0])
        }
        None => None,
    };
    // One connection, reused: the figure is the server's, not TCP's handshake.
    let client = Client::builder()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;

    for _ in 0..args.warmup {
        fetch_byte(&client, &args.url, args.offset)?;
    }
    let mut samples = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let start = Instant::now();
        let byte = fetch_byte(&client, &args.url, args.offset)?;
        samples.push(start.elapsed());
        if let Some(want) = expected {
            ensure!(
                byte == want,
                "byte at {} is {byte:#04x}, the source has {want:#04x}",
                args.offset
            );
        }
    }
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let report = serde_json::json!({
        "url": args.url,
        "offset": args.offset,
        "requests": args.requests,
        "warmup": args.warmup,
        "verified_against_source": expected.is_some(),
        "min_ms": ms(samples[0]),
        "p50_ms": percentile(&samples, 50.0).map(ms),
        "p90_ms": percentile(&samples, 90.0).map(ms),
        "p99_ms": percentile(&samples, 99.0).map(ms),
        "max_ms": ms(samples[samples.len() - 1]),
        "mean_ms": ms(total / u32::try_from(samples.len())?),
    });
    println!("{report}");
    Ok(())
}
