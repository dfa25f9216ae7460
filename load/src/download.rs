//! Getting a completed upload's bytes back: for Ferry a share (whose BLAKE3 must match the
//! source's), then a GET of the share's file link; for @tus/server a GET on the upload URL.
//! Every byte is hashed as it streams, so a download proves the server stored what was sent.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::data::Rng;
use crate::tus_client::{Done, Shared, backoff, cause};

/// Ferry: share the file; returns `<url>/f/<id>` and checks the share's BLAKE3. Ferry serves
/// files only through shares, so this is the path a recipient takes, and the share's hash is a
/// second proof that the server stored the source.
pub(crate) async fn share(
    shared: &Shared,
    location: &Url,
    hash: Option<&blake3::Hash>,
    rng: &mut Rng,
) -> anyhow::Result<Url> {
    let id = location
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .with_context(|| format!("no file id at the end of {location}"))?
        .to_owned();
    let url = shared
        .files_url
        .join("/api/v1/shares")
        .context("share URL")?;
    let body = json!({ "files": [id], "recipients": ["load@example.org"] }).to_string();
    let mut failures = 0;
    // Retried like a client would: 503 ("retry later") and transport failures, counted as
    // errors each time, up to --share-retries times, with jitter so that uploads finishing
    // together do not retry together.
    let (started, text) = loop {
        let started = Instant::now();
        let problem = match shared
            .request(reqwest::Method::POST, url.clone())
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::CREATED || r.status() == StatusCode::OK => {
                break (started, r.text().await.unwrap_or_default());
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                shared
                    .stats
                    .error("share", format!("HTTP {}", status.as_u16()));
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    bail!("POST /api/v1/shares: HTTP {status}: {text}");
                }
                format!("HTTP {status}: {text}")
            }
            Err(e) => {
                shared.stats.error("share", cause(&e));
                format!("{e}")
            }
        };
        failures += 1;
        if failures > shared.args.share_retries {
            bail!("POST /api/v1/shares: {problem}");
        }
        tokio::time::sleep(backoff(failures) + rng.between(Duration::ZERO, backoff(failures)))
            .await;
    };
    let answer: Value = serde_json::from_str(&text).context("share answer is not JSON")?;
    let page = answer["url"]
        .as_str()
        .with_context(|| format!("share answer without url: {text}"))?;
    if let (Some(want), Some(got)) = (hash, answer["files"][0]["blake3"].as_str())
        && want.to_hex().as_str() != got
    {
        shared
            .stats
            .error("share", "BLAKE3 differs from the source");
        bail!("share of {id}: server BLAKE3 {got}, source {want}");
    }
    shared.stats.ok("share", started.elapsed());
    let page = Url::parse(page)
        .or_else(|_| shared.files_url.join(page))
        .context("share url")?;
    Ok(page.join(&format!("{}/f/{id}", page.path().trim_end_matches('/')))?)
}

/// Downloads one file whole, hashing as it streams: the body is never held, so hundreds of
/// concurrent downloads cost the generator no memory, and the length and BLAKE3 must match the
/// source's.
pub(crate) async fn download(shared: &Shared, done: &Done) -> anyhow::Result<()> {
    let Some(url) = done.download_url.clone() else {
        return Ok(());
    };
    let started = Instant::now();
    let response = match shared
        .request(reqwest::Method::GET, url.clone())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            shared.stats.error("download", cause(&e));
            bail!("GET {url}: {e}");
        }
    };
    if response.status() != StatusCode::OK {
        shared
            .stats
            .error("download", format!("HTTP {}", response.status().as_u16()));
        bail!("GET {url}: HTTP {}", response.status());
    }
    let mut hasher = (!shared.args.no_verify).then(blake3::Hasher::new);
    let mut len = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                shared.stats.error("download", cause(&e));
                bail!("GET {url} after {len} bytes: {e}");
            }
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        len += chunk.len() as u64;
        shared
            .stats
            .downloaded_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    if len != shared.args.size {
        shared.stats.error("download", "wrong length");
        bail!("GET {url}: {len} bytes, expected {}", shared.args.size);
    }
    if let (Some(h), Some(want)) = (hasher, done.hash)
        && h.finalize() != want
    {
        shared
            .stats
            .error("download", "BLAKE3 differs from the source");
        bail!("GET {url}: BLAKE3 differs from the source");
    }
    shared.stats.ok("download", started.elapsed());
    shared.stats.downloads_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
