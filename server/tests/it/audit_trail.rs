//! The audit trail and download counting over real HTTP, on SQLite and PostgreSQL: every step
//! from key to revocation is one event in the tenant's chain, with what a recipient did
//! (range, bytes, IP, user agent); opening the page never counts as a download, downloads
//! are metered in copies of the file served, and `max_downloads_per_file` stops the next one.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_testkit::eventually_async;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::harness::{ShareOptions, TestServer, error_code, on_both_databases, random_bytes};

async fn downloads(server: &TestServer, share: &str) -> Result<u64> {
    server.share_view(share).await?["files"][0]["downloads"]
        .as_u64()
        .context("downloads count")
}

async fn get(
    server: &TestServer,
    url: &str,
    range: Option<&str>,
    agent: &str,
) -> Result<(StatusCode, Vec<u8>)> {
    let mut request = server.client.get(url).header("User-Agent", agent);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await?;
    Ok((response.status(), response.bytes().await?.to_vec()))
}

async fn every_step_is_recorded_and_downloads_are_counted(server: TestServer) -> Result<()> {
    limit_downloads_to_two_copies(&server).await?;
    let shared = share_a_file_with_a_note(&server).await?;
    a_mail_scanner_opening_the_page_downloads_nothing(&server, &shared).await?;
    resumed_and_partial_downloads_count_in_copies(&server, &shared).await?;
    past_almost_two_copies_a_third_is_refused_a_few_bytes_are_not(&server, &shared).await?;
    revoke(&server, &shared).await?;
    let events = the_chain_holds_every_step_in_order(&server, &shared).await?;
    the_chain_verifies_and_since_narrows_the_export(&server, &events).await
}

/// A shared file and where a recipient finds it.
struct SharedFile {
    file: Uuid,
    content: Vec<u8>,
    /// The share's id.
    share: String,
    /// The share's link (its page).
    url: String,
    /// The file's bytes behind the link.
    file_url: String,
}

async fn limit_downloads_to_two_copies(server: &TestServer) -> Result<()> {
    let limit = server
        .client
        .put(format!("{}/api/v1/admin/policy", server.base))
        .bearer_auth(&server.key)
        .json(&serde_json::json!({"default_days": 14, "max_days": 90, "max_downloads_per_file": 2}))
        .send()
        .await?;
    ensure!(
        limit.status() == StatusCode::OK,
        "policy: {}",
        limit.status()
    );
    Ok(())
}

/// Uploads 100,000 bytes and shares them with a note (which must stay out of the log).
async fn share_a_file_with_a_note(server: &TestServer) -> Result<SharedFile> {
    let content = random_bytes(100_000, 61);
    let file = server.upload(&content, "befund.pdf").await?;
    let note = ShareOptions {
        note: Some("private note"),
        ..ShareOptions::default()
    };
    let created = server
        .share_as(&server.key, &[file], &["pat@example.eu"], note)
        .await?;
    let share = created["id"].as_str().context("share id")?.to_owned();
    let url = created["url"].as_str().context("url")?.to_owned();
    let file_url = format!("{url}/f/{file}");
    Ok(SharedFile {
        file,
        content,
        share,
        url,
        file_url,
    })
}

async fn a_mail_scanner_opening_the_page_downloads_nothing(
    server: &TestServer,
    shared: &SharedFile,
) -> Result<()> {
    let (page, _) = get(server, &shared.url, None, "MailScanner/1.0").await?;
    ensure!(page == StatusCode::OK, "page: {page}");
    ensure!(
        downloads(server, &shared.share).await? == 0,
        "a page view is not a download"
    );
    Ok(())
}

/// A whole copy, then a resume from byte 100 and the first ten bytes: still one copy.
async fn resumed_and_partial_downloads_count_in_copies(
    server: &TestServer,
    shared: &SharedFile,
) -> Result<()> {
    let SharedFile {
        content,
        share,
        file_url,
        ..
    } = shared;
    let (full, bytes) = get(server, file_url, None, "Firefox/140").await?;
    ensure!(
        full == StatusCode::OK && bytes == *content,
        "full download: {full}"
    );
    ensure!(downloads(server, share).await? == 1, "one download");
    let (resumed, tail) = get(server, file_url, Some("bytes=100-"), "Firefox/140").await?;
    ensure!(
        resumed == StatusCode::PARTIAL_CONTENT && tail == content[100..],
        "resume: {resumed}"
    );
    ensure!(
        downloads(server, share).await? == 1,
        "1.999 copies served are one whole copy"
    );
    let (head, _) = get(server, file_url, Some("bytes=0-9"), "curl/8").await?;
    ensure!(head == StatusCode::PARTIAL_CONTENT, "first bytes: {head}");
    ensure!(
        downloads(server, share).await? == 1,
        "ten bytes are not a copy"
    );
    Ok(())
}

/// Almost two copies are spent: a third whole one is refused, a few bytes more are not (the
/// in-flight allowance, under half a copy).
async fn past_almost_two_copies_a_third_is_refused_a_few_bytes_are_not(
    server: &TestServer,
    shared: &SharedFile,
) -> Result<()> {
    let refused = server
        .client
        .get(&shared.file_url)
        .header("Accept", "application/json")
        .send()
        .await?;
    ensure!(
        refused.status() == StatusCode::GONE,
        "third: {}",
        refused.status()
    );
    let (middle, part) = get(server, &shared.file_url, Some("bytes=50-60"), "curl/8").await?;
    ensure!(
        middle == StatusCode::PARTIAL_CONTENT && part == shared.content[50..=60],
        "resume after the limit: {middle}"
    );
    ensure!(
        downloads(server, &shared.share).await? == 1,
        "still under two"
    );
    Ok(())
}

async fn revoke(server: &TestServer, shared: &SharedFile) -> Result<()> {
    let revoke = server
        .client
        .delete(format!("{}/api/v1/shares/{}", server.base, shared.share))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(
        revoke.status() == StatusCode::NO_CONTENT,
        "revoke: {}",
        revoke.status()
    );
    Ok(())
}

/// The export holds every step, in order and chained, with what the recipient did, and
/// neither the note nor the link; returns the events.
async fn the_chain_holds_every_step_in_order(
    server: &TestServer,
    shared: &SharedFile,
) -> Result<Vec<Value>> {
    let SharedFile {
        file, share, url, ..
    } = shared;
    // Download events are written when their response ends: wait until all four are in.
    let events = eventually_async(Duration::from_secs(5), async || {
        let events = server.audit_events("").await?;
        let downloads = events
            .iter()
            .filter(|e| e["kind"] == "file.downloaded")
            .count();
        ensure!(downloads >= 4, "{downloads} download events of 4");
        Ok(events)
    })
    .await?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let in_order = [
        "key.created",
        "policy.changed",
        "upload.created",
        "upload.completed",
        "share.created",
        "page.opened",
    ];
    // Download events are written as their responses end, so the revocation may overtake
    // the last of them.
    let mut rest: Vec<&str> = kinds.iter().skip(in_order.len()).copied().collect();
    rest.sort_unstable();
    ensure!(
        kinds.len() == 11
            && kinds[..in_order.len()] == in_order
            && rest
                == ["file.downloaded"; 4]
                    .into_iter()
                    .chain(["share.revoked"])
                    .collect::<Vec<_>>(),
        "events: {kinds:?}"
    );
    for (i, event) in events.iter().enumerate() {
        ensure!(event["seq"] == i as u64 + 1, "seq of {event}");
        if i > 0 {
            ensure!(
                event["prev_hash"] == events[i - 1]["hash"],
                "chain link at {i}"
            );
        }
    }
    let opened = &events[5];
    ensure!(
        opened["actor"] == "recipient"
            && opened["subject"] == share.as_str()
            && opened["details"]["user_agent"] == "MailScanner/1.0"
            && opened["details"]["ip"] == "127.0.0.1",
        "page.opened: {opened}"
    );
    let whole = events
        .iter()
        .find(|e| e["kind"] == "file.downloaded" && e["details"]["range"] == "0-99999")
        .context("the full download's event")?;
    ensure!(
        whole["subject"] == file.to_string()
            && whole["details"]["bytes_sent"] == 100_000
            && whole["details"]["complete"] == true
            && whole["details"]["user_agent"] == "Firefox/140"
            && whole["details"]["share"] == share.as_str(),
        "download: {whole}"
    );
    let text = serde_json::to_string(&events)?;
    ensure!(!text.contains("private note"), "notes stay out of the log");
    ensure!(
        !text.contains(url.as_str()),
        "link tokens stay out of the log"
    );
    Ok(events)
}

/// The chain verifies, `since` narrows the export, and a bad `since` is a 400.
async fn the_chain_verifies_and_since_narrows_the_export(
    server: &TestServer,
    events: &[Value],
) -> Result<()> {
    let verified =
        ferry::audit::verify_tenant(&server.state.db, &server.state.master_key, server.tenant_id)
            .await?;
    ensure!(verified == Ok(events.len() as i64), "verify: {verified:?}");
    let since = events[6]["at"].as_str().context("time")?;
    let later = server
        .audit_events(&format!("?since={}", since.replace('+', "%2B")))
        .await?;
    ensure!(
        !later.is_empty() && later.len() < events.len() && later[0]["seq"].as_u64() >= Some(7),
        "since {since}: {} events",
        later.len()
    );
    let bad = server
        .client
        .get(format!(
            "{}/api/v1/admin/audit?since=yesterday",
            server.base
        ))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(
        bad.status() == StatusCode::BAD_REQUEST,
        "bad since: {}",
        bad.status()
    );
    ensure!(error_code(bad).await? == "bad_request", "error shape");
    Ok(())
}

on_both_databases!(every_step_is_recorded_and_downloads_are_counted);
