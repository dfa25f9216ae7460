//! `GET /metrics`: the counters move with an upload and a download, no label names a tenant,
//! a file or a token, and only loopback clients or the metrics token may read it.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;

use crate::harness::{Backend, Stack, TestServer};

/// The value of an unlabelled sample `name` in a Prometheus text scrape (0 when absent: a
/// counter nothing has touched yet in this process).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(server: &TestServer) -> Result<String> {
    let response = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::OK, "{}", response.status());
    Ok(response.text().await?)
}

#[tokio::test]
async fn an_upload_and_a_download_move_the_counters() -> Result<()> {
    let server = TestServer::start_on(Backend::Sqlite).await?;
    let before = scrape(&server).await?;
    let content = test_bytes(300_000);
    let id = server.upload(&content, "secret-report.pdf").await?;
    let downloaded = server.share_and_download(id).await?;
    ensure!(downloaded == content);
    let after = eventually_served(&server, &before, content.len() as f64).await?;

    // Other tests of this binary run in the same process: counters only grow, by at least
    // what this test moved.
    let grew = |name: &str| sample(&after, name) - sample(&before, name);
    let size = content.len() as f64;
    ensure!(
        grew("ferry_upload_bytes_received_total") >= size,
        "received"
    );
    ensure!(
        grew("ferry_upload_bytes_committed_total") >= size,
        "committed"
    );
    ensure!(
        grew("ferry_upload_commit_seconds_count") >= 1.0,
        "commit latency"
    );
    ensure!(grew("ferry_downloads_total") >= 1.0, "downloads");
    ensure!(grew("ferry_download_bytes_served_total") >= size, "served");
    ensure!(after.contains("# TYPE ferry_upload_commit_seconds histogram"));
    ensure!(after.contains("ferry_uploads_in_flight"));
    // Nothing of who uses the service: no file name, id, key or tenant.
    for private in ["secret-report", &id.to_string(), &server.key] {
        ensure!(!after.contains(private), "the scrape names {private:?}");
    }
    Ok(())
}

/// Bytes served are counted when the response body ends, just after the client has them.
async fn eventually_served(server: &TestServer, before: &str, size: f64) -> Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(server).await?;
        let served = sample(&text, "ferry_download_bytes_served_total")
            - sample(before, "ferry_download_bytes_served_total");
        if served >= size || std::time::Instant::now() > deadline {
            return Ok(text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn test_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_metrics_token_is_checked_even_from_loopback() -> Result<()> {
    let server = TestServer::start_with_env(
        Stack::SqliteDisk,
        &[("FERRY_METRICS_TOKEN", "scrape-me-0123456789")],
    )
    .await?;
    let url = format!("{}/metrics", server.base);
    let wrong = server
        .client
        .get(&url)
        .bearer_auth("scrape-me-wrong")
        .send()
        .await?;
    ensure!(
        wrong.status() == StatusCode::FORBIDDEN,
        "{}",
        wrong.status()
    );
    let body: serde_json::Value = wrong.json().await?;
    ensure!(body["error"] == "forbidden", "{body}");
    let right = server
        .client
        .get(&url)
        .bearer_auth("scrape-me-0123456789")
        .send()
        .await?;
    ensure!(right.status() == StatusCode::OK, "{}", right.status());
    // The body's contents depend on what else this process did; its type does not.
    let content_type = right
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .context("no Content-Type")?
        .to_owned();
    ensure!(content_type.starts_with("text/plain"), "{content_type}");
    Ok(())
}
