//! The holes of issue 13, each closed at its depth and proven here on the stacks it touches:
//! a deferred length bounded by every limit, uploads that belong to the key that created them,
//! downloads metered in copies (HEAD and ranges included), bounded metadata, authorization
//! before the writer lock, `Connection: close` after an unread body, slow or idle
//! connections closed by the server, completions whose commit failed retried (item 6), no
//! write of a refused body landing after its answer (item 7), files that live at most
//! `max_days` after completion and tombstones without names (item 10), and shredded keys
//! gone from SQLite's files (item 11).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry::store::{ObjectReader, ObjectStore, ObjectWriter, StoreError, WriteFrom};
use ferry_testkit::eventually_async;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::{
    Backend, Stack, TestServer, b64, error_code, file_id, header_u64, location, on_both_databases,
    on_every_backend, random_bytes,
};

/// A tus request of `method` on `url` with `key`.
fn tus_as(server: &TestServer, key: &str, method: Method, url: &str) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, url)
        .bearer_auth(key)
        .header("Tus-Resumable", "1.0.0")
}

/// Sends `request` and checks that it is answered `want`; `what` names it in the failure.
async fn expect_status(
    request: reqwest::RequestBuilder,
    want: StatusCode,
    what: &str,
) -> Result<()> {
    let got = request.send().await?.status();
    ensure!(got == want, "{what} answered {got}, expected {want}");
    Ok(())
}

/// Item 1: a deferred-length upload stops at the tenant's `max_upload_bytes` (declared or
/// not), and nothing past the limit is kept.
async fn a_deferred_length_cannot_pass_the_size_limit(server: TestServer) -> Result<()> {
    server
        .set_policy(
            serde_json::json!({"default_days": 7, "max_days": 30, "max_upload_bytes": 5000}),
        )
        .await?;
    let created = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Defer-Length", "1")
        .send()
        .await?;
    ensure!(
        created.status() == StatusCode::CREATED,
        "create: {}",
        created.status()
    );
    let url = location(&created)?;

    // One PATCH of 100,000 B declared by Content-Length: refused before a byte is read.
    let declared = server.patch(&url, 0, random_bytes(100_000, 1)).await?;
    ensure!(
        declared.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "100,000 B answered {}",
        declared.status()
    );
    ensure!(error_code(declared).await? == "too_large", "error code");
    ensure!(
        server.head_offset(&url).await? == 0,
        "nothing of it committed"
    );

    // Streamed (no Content-Length): the body is cut at the limit.
    let (tx, response) = server.streamed_patch(&url, 0);
    for piece in 0..4u64 {
        tx.send(Ok(random_bytes(4000, piece))).await?;
    }
    drop(tx);
    let streamed = response.await??;
    ensure!(
        streamed.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "streamed 16,000 B answered {}",
        streamed.status()
    );
    let offset = server.head_offset(&url).await?;
    ensure!(offset <= 5000, "offset {offset} passed the limit of 5,000");

    // Within the limit the upload goes on and completes once its length is declared.
    let content = random_bytes(5000 - offset as usize, 2);
    let last = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", offset)
        .header("Upload-Length", 5000)
        .header("Content-Type", "application/offset+octet-stream")
        .body(content)
        .send()
        .await?;
    ensure!(
        last.status() == StatusCode::NO_CONTENT,
        "the last PATCH answered {}",
        last.status()
    );
    let status = server.file_status(&url).await?;
    ensure!(
        status["state"] == "complete" && status["size"] == 5000,
        "status: {status}"
    );
    Ok(())
}

/// Item 2: an upload belongs to the key that created it. A colleague's sender key gets 404 on
/// everything of it (as another tenant's would); the tenant's admin may read and delete it,
/// never append to it or share it.
async fn uploads_belong_to_the_key_that_created_them(server: TestServer) -> Result<()> {
    let alice = server.sender_key().await?;
    let bob = server.sender_key().await?;
    let uploads = alice_uploads_a_file_and_starts_another(&server, &alice).await?;
    nobody_else_reaches_them(&server, &bob, &uploads).await?;
    the_owner_keeps_everything_and_the_admin_reads_and_deletes(&server, &alice, &uploads).await
}

/// Alice's two uploads: one complete, one just created.
struct AlicesUploads {
    done_id: Uuid,
    /// The complete one's upload URL.
    done: String,
    /// The unfinished one's upload URL.
    unfinished: String,
}

async fn alice_uploads_a_file_and_starts_another(
    server: &TestServer,
    alice: &str,
) -> Result<AlicesUploads> {
    let base = &server.base;
    let content = random_bytes(3000, 3);
    let done_id = server.upload_as(alice, &content, "mine.bin").await?;
    let done = format!("{base}/files/{done_id}");
    let created = tus_as(server, alice, Method::POST, &format!("{base}/files"))
        .header("Upload-Length", 10_000)
        .send()
        .await?;
    let unfinished = location(&created)?;
    Ok(AlicesUploads {
        done_id,
        done,
        unfinished,
    })
}

/// A PATCH of ten bytes at offset 0 with `key`.
fn patch_ten_bytes(server: &TestServer, key: &str, url: &str) -> reqwest::RequestBuilder {
    tus_as(server, key, Method::PATCH, url)
        .header("Upload-Offset", 0)
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![7u8; 10])
}

/// Bob (another sender) gets 404 for everything of alice's; the admin may not append to or
/// share them either; alice's file keeps its key.
async fn nobody_else_reaches_them(
    server: &TestServer,
    bob: &str,
    uploads: &AlicesUploads,
) -> Result<()> {
    let base = &server.base;
    let AlicesUploads {
        done_id,
        done,
        unfinished,
    } = uploads;
    let checks = [
        ("HEAD", tus_as(server, bob, Method::HEAD, unfinished)),
        ("HEAD done", tus_as(server, bob, Method::HEAD, done)),
        ("PATCH", patch_ten_bytes(server, bob, unfinished)),
        (
            "GET status",
            server
                .client
                .get(format!("{base}/api/v1/files/{done_id}"))
                .bearer_auth(bob),
        ),
        ("DELETE", tus_as(server, bob, Method::DELETE, done)),
        (
            "share",
            server
                .client
                .post(format!("{base}/api/v1/shares"))
                .bearer_auth(bob)
                .json(&serde_json::json!({"files": [done_id], "recipients": ["x@y.eu"]})),
        ),
        (
            "admin PATCH",
            patch_ten_bytes(server, &server.key, unfinished),
        ),
        (
            "admin share",
            server
                .client
                .post(format!("{base}/api/v1/shares"))
                .bearer_auth(&server.key)
                .json(&serde_json::json!({"files": [done_id], "recipients": ["x@y.eu"]})),
        ),
    ];
    for (what, request) in checks {
        expect_status(
            request,
            StatusCode::NOT_FOUND,
            &format!("{what} by someone else"),
        )
        .await?;
    }
    ensure!(
        server.key_exists(*done_id).await?,
        "alice's file keeps its key"
    );
    Ok(())
}

/// The owner still has everything, the admin reads, and the admin's DELETE shreds the key.
async fn the_owner_keeps_everything_and_the_admin_reads_and_deletes(
    server: &TestServer,
    alice: &str,
    uploads: &AlicesUploads,
) -> Result<()> {
    let base = &server.base;
    let AlicesUploads {
        done_id,
        done,
        unfinished,
    } = uploads;
    let admin = &server.key;
    for (request, want, what) in [
        (
            tus_as(server, alice, Method::HEAD, unfinished),
            StatusCode::OK,
            "alice's HEAD",
        ),
        (
            patch_ten_bytes(server, alice, unfinished),
            StatusCode::NO_CONTENT,
            "alice's PATCH",
        ),
        (
            server
                .client
                .get(format!("{base}/api/v1/files/{done_id}"))
                .bearer_auth(admin),
            StatusCode::OK,
            "the admin's read",
        ),
        (
            tus_as(server, admin, Method::HEAD, unfinished),
            StatusCode::OK,
            "the admin's HEAD",
        ),
        (
            tus_as(server, admin, Method::DELETE, done),
            StatusCode::NO_CONTENT,
            "the admin's DELETE",
        ),
    ] {
        expect_status(request, want, what).await?;
    }
    ensure!(
        !server.key_exists(*done_id).await?,
        "the admin's DELETE shredded the key"
    );
    Ok(())
}

/// `GET`/`HEAD` of `url` with an optional `Range`, answering status and body.
async fn fetch(
    server: &TestServer,
    method: Method,
    url: &str,
    range: Option<&str>,
) -> Result<(StatusCode, Vec<u8>)> {
    let mut request = server.client.request(method, url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.bytes().await?.to_vec()))
}

/// Item 3: HEAD is free, ranges count by the bytes they serve: a limit of N lets a recipient
/// finish N copies however they split them, and never serves an N + 1st.
async fn the_download_limit_counts_copies_served(server: TestServer) -> Result<()> {
    let content = random_bytes(100_000, 4);
    limit_one_heads_are_free_and_one_copy_is_served(&server, &content).await?;
    limit_two_two_copies_in_resumed_pieces_then_nothing_more(&server, &content).await
}

/// Limit 1: a mail scanner's HEADs cost nothing, the recipient gets one copy, not a second
/// one nor a range of it.
async fn limit_one_heads_are_free_and_one_copy_is_served(
    server: &TestServer,
    content: &[u8],
) -> Result<()> {
    server
        .set_policy(
            serde_json::json!({"default_days": 7, "max_days": 30, "max_downloads_per_file": 1}),
        )
        .await?;
    let id = server.upload(content, "report.pdf").await?;
    let share = server.share_created(&[id]).await?;
    let link = share["url"].as_str().context("url")?;
    let file_url = format!("{link}/f/{id}");

    // A mail scanner: HEAD on the page and the file, many times.
    for _ in 0..5 {
        let (page, _) = fetch(server, Method::HEAD, link, None).await?;
        ensure!(page == StatusCode::OK, "HEAD of the page answered {page}");
        let response = server.client.head(&file_url).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "HEAD of the file answered {}",
            response.status()
        );
        ensure!(
            header_u64(&response, "content-length")? == 100_000,
            "HEAD says the size"
        );
    }
    let (first, body) = fetch(server, Method::GET, &file_url, None).await?;
    ensure!(
        first == StatusCode::OK && body == *content,
        "the recipient's download after HEADs answered {first}"
    );
    let (second, _) = fetch(server, Method::GET, &file_url, None).await?;
    ensure!(
        second == StatusCode::GONE,
        "a second copy with a limit of 1 answered {second}"
    );
    let (tail, _) = fetch(server, Method::GET, &file_url, Some("bytes=1-")).await?;
    ensure!(
        tail == StatusCode::GONE,
        "a range from byte 1 past the limit answered {tail}"
    );
    Ok(())
}

/// Limit 2: two copies in resumed pieces, then nothing more; HEAD stays free and the sender
/// sees two copies.
async fn limit_two_two_copies_in_resumed_pieces_then_nothing_more(
    server: &TestServer,
    content: &[u8],
) -> Result<()> {
    server
        .set_policy(
            serde_json::json!({"default_days": 7, "max_days": 30, "max_downloads_per_file": 2}),
        )
        .await?;
    let id = server.upload(content, "again.pdf").await?;
    let share = server.share_created(&[id]).await?;
    let share_id = share["id"].as_str().context("id")?.to_owned();
    let file_url = format!("{}/f/{id}", share["url"].as_str().context("url")?);
    let mut copies = Vec::new();
    for _ in 0..2 {
        let mut copy = Vec::new();
        for range in ["bytes=0-29999", "bytes=30000-69999", "bytes=70000-"] {
            let (status, body) = fetch(server, Method::GET, &file_url, Some(range)).await?;
            ensure!(
                status == StatusCode::PARTIAL_CONTENT,
                "{range} answered {status}"
            );
            copy.extend(body);
        }
        copies.push(copy);
    }
    ensure!(copies.iter().all(|c| c == content), "both copies are whole");
    let (third, _) = fetch(server, Method::GET, &file_url, Some("bytes=1-")).await?;
    ensure!(
        third == StatusCode::GONE,
        "a third copy (from byte 1) answered {third}"
    );
    let (head, _) = fetch(server, Method::HEAD, &file_url, None).await?;
    ensure!(
        head == StatusCode::OK,
        "HEAD stays free after the limit: {head}"
    );
    let view = server.share_view(&share_id).await?;
    ensure!(
        view["files"][0]["downloads"] == 2,
        "the sender sees 2 copies: {view}"
    );
    Ok(())
}

/// Item 5: `Upload-Metadata` is bounded (a few KiB, a 255-byte name), and names lose the
/// characters that would forge text where they are shown.
async fn metadata_is_bounded_and_names_are_cleaned(server: TestServer) -> Result<()> {
    let files = format!("{}/files", server.base);
    let many: Vec<String> = (0..30_000).map(|i| format!("k{i}")).collect();
    let long_name = format!("filename {}", b64("x".repeat(200_000).as_bytes()));
    let name_256 = format!("filename {}", b64("n".repeat(256).as_bytes()));
    for (what, header) in [
        ("30,000 keys", many.join(",")),
        ("a 200 kB name", long_name),
        ("a 256 B name", name_256),
    ] {
        let response = server
            .tus(Method::POST, &files)
            .header("Upload-Length", 10)
            .header("Upload-Metadata", header)
            .send()
            .await?;
        ensure!(
            response.status() == StatusCode::BAD_REQUEST,
            "{what} answered {}",
            response.status()
        );
        ensure!(
            error_code(response).await? == "bad_request",
            "{what}: error code"
        );
    }
    let forged = "invoice\u{202E}fdp.exe\r\nX: y";
    let url = server.create(4, forged).await?;
    let response = server.patch(&url, 0, b"abcd".to_vec()).await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "PATCH answered {}",
        response.status()
    );
    let status = server.file_status(&url).await?;
    ensure!(
        status["name"] == "invoicefdp.exeX: y",
        "the name shown: {}",
        status["name"]
    );
    Ok(())
}

/// Item 8: a key that may not write an upload cannot stop its writer: its PATCH is refused
/// before the writer lock is taken, and the owner's PATCH in flight completes.
async fn a_stranger_cannot_stop_a_running_patch(server: TestServer) -> Result<()> {
    let url = server.create(40_000, "busy.bin").await?;
    let content = random_bytes(40_000, 5);
    let (tx, running) = server.streamed_patch(&url, 0);
    tx.send(Ok(content[..10_000].to_vec())).await?;
    // Wait until the owner's first bytes are committed or in flight (the lock is held).
    let other = server.other_tenant_key().await?;
    let colleague = server.sender_key().await?;
    for key in [other, colleague] {
        for _ in 0..5 {
            let response = tus_as(&server, &key, Method::PATCH, &url)
                .header("Upload-Offset", 0)
                .header("Content-Type", "application/offset+octet-stream")
                .body(vec![0u8; 16])
                .send()
                .await?;
            ensure!(
                response.status() == StatusCode::NOT_FOUND,
                "a stranger's PATCH answered {}",
                response.status()
            );
            let deleted = tus_as(&server, &key, Method::DELETE, &url)
                .send()
                .await?
                .status();
            ensure!(
                deleted == StatusCode::NOT_FOUND,
                "a stranger's DELETE answered {deleted}"
            );
        }
    }
    tx.send(Ok(content[10_000..].to_vec())).await?;
    drop(tx);
    let finished = running.await??;
    ensure!(
        finished.status() == StatusCode::NO_CONTENT,
        "the owner's PATCH answered {}",
        finished.status()
    );
    ensure!(
        server.share_and_download(file_id(&url)?).await? == content,
        "the file is whole"
    );
    Ok(())
}

/// Item 13: a PATCH refused before its body is read says `Connection: close`, so a client
/// never reuses a connection the server is about to drop; the next request works.
async fn an_unread_body_closes_the_connection(server: TestServer) -> Result<()> {
    let url = server.create(1 << 20, "c.bin").await?;
    let refusals = [
        ("Upload-Checksum", "crc32 AAAA", "0"),
        ("Upload-Checksum", "sha1 AAAA", "5"),
    ];
    for (header, value, offset) in refusals {
        let response = server
            .tus(Method::PATCH, &url)
            .header("Upload-Offset", offset)
            .header(header, value)
            .header("Content-Type", "application/offset+octet-stream")
            .body(random_bytes(256 << 10, 6))
            .send()
            .await?;
        ensure!(
            response.status().is_client_error(),
            "{value} at {offset} answered {}",
            response.status()
        );
        let connection = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        ensure!(
            connection.as_deref() == Some("close"),
            "{} with an unread body says Connection: {connection:?}",
            response.status()
        );
        // The client opens a fresh connection for what follows.
        ensure!(
            server.head_offset(&url).await? == 0,
            "HEAD after the refusal"
        );
    }
    // A request without a body, and a body read to its end, keep the connection.
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await?;
    ensure!(
        health
            .headers()
            .get("connection")
            .is_none_or(|v| v != "close"),
        "a GET keeps the connection"
    );
    let ok = server.patch(&url, 0, random_bytes(1000, 7)).await?;
    ensure!(
        ok.status() == StatusCode::NO_CONTENT,
        "PATCH answered {}",
        ok.status()
    );
    ensure!(
        ok.headers().get("connection").is_none_or(|v| v != "close"),
        "a read body keeps the connection"
    );
    Ok(())
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or similar before the close is fine; keep reading to the end.
            Ok(Ok(_)) => {}
        }
    }
}

/// Item 4: connections that send half a request header, or nothing at all, are closed by the
/// server after the header-read timeout; other clients are served meanwhile.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() -> Result<()> {
    let server =
        TestServer::start_with_env(Stack::SqliteDisk, &[("FERRY_HEADER_READ_TIMEOUT", "1")])
            .await?;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut half = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await?;
        stream
            .write_all(b"PATCH /files/x HTTP/1.1\r\nHost: a\r\nTus-Resum")
            .await?;
        half.push(stream);
    }
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(&addr).await?);
    }
    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(&addr).await?;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await?;
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await?;
    ensure!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "healthz on the kept connection"
    );
    ensure!(
        server
            .client
            .get(format!("{}/healthz", server.base))
            .send()
            .await?
            .status()
            == StatusCode::OK,
        "served meanwhile"
    );

    // The timeout is 1 s; 10 s leaves room for a loaded machine and still fails on a server
    // that never closes them.
    let within = Duration::from_secs(10);
    for (i, stream) in half.iter_mut().enumerate() {
        ensure!(
            closed_within(stream, within).await,
            "half-header connection {i} still open"
        );
    }
    for (i, stream) in idle.iter_mut().enumerate() {
        ensure!(
            closed_within(stream, within).await,
            "idle connection {i} still open"
        );
    }
    ensure!(
        closed_within(&mut kept, within).await,
        "idle kept-alive connection still open"
    );
    Ok(())
}

/// Item 4: a body that stops arriving ends its request after the stall timeout; the bytes
/// before it are kept and the upload resumes.
#[tokio::test]
async fn a_stalled_body_ends_and_the_upload_resumes() -> Result<()> {
    let server =
        TestServer::start_with_env(Stack::SqliteDisk, &[("FERRY_STALL_TIMEOUT", "1")]).await?;
    let content = random_bytes(300_000, 8);
    let url = server.create(content.len() as u64, "stall.bin").await?;
    let (tx, running) = server.streamed_patch(&url, 0);
    tx.send(Ok(content[..100_000].to_vec())).await?;
    // Keep the body open and silent: the server must end it, not wait forever.
    let ended = tokio::time::timeout(Duration::from_secs(30), running).await;
    drop(tx);
    ensure!(ended.is_ok(), "a stalled PATCH was still open after 30 s");
    let offset = server.head_offset(&url).await?;
    ensure!(offset <= 100_000, "offset {offset}");
    let rest = server
        .patch(&url, offset, content[offset as usize..].to_vec())
        .await?;
    ensure!(
        rest.status() == StatusCode::NO_CONTENT,
        "resume answered {}",
        rest.status()
    );
    ensure!(
        server.share_and_download(file_id(&url)?).await? == content,
        "the file is whole"
    );
    Ok(())
}

/// Item 4: beyond `FERRY_MAX_CONNECTIONS` new connections wait; they are served as soon as
/// one closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() -> Result<()> {
    let server = TestServer::start_with_env(
        Stack::SqliteDisk,
        &[
            ("FERRY_MAX_CONNECTIONS", "2"),
            ("FERRY_HEADER_READ_TIMEOUT", "30"),
        ],
    )
    .await?;
    let addr = server.base.trim_start_matches("http://").to_owned();
    // The harness's client keeps the connection it polled /healthz on: have it closed.
    let closing = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("Connection", "close")
        .send()
        .await?;
    ensure!(closing.status() == StatusCode::OK, "healthz");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .await?;
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).await?;
        ensure!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "held connection served"
        );
        held.push(stream);
    }
    let mut waiting = TcpStream::connect(&addr).await?;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut answer)).await;
    ensure!(
        early.is_err(),
        "a third connection was answered past a cap of 2: {early:?} {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), waiting.read(&mut answer)).await??;
    ensure!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "served once a connection closed"
    );
    Ok(())
}

/// The SQL that makes the database refuse, with an error, to record any upload complete
/// (a real failure of the real database at the worst moment: after the store finished).
fn refuse_completions(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CREATE FUNCTION test_refuse_completion() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected: completion refused'; END $$;
             CREATE TRIGGER test_refuse_completion BEFORE UPDATE ON uploads FOR EACH ROW
                 WHEN (NEW.state = 'complete' AND OLD.state = 'uploading')
                 EXECUTE FUNCTION test_refuse_completion();"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER test_refuse_completion BEFORE UPDATE ON uploads
                 WHEN NEW.state = 'complete' AND OLD.state = 'uploading'
                 BEGIN SELECT RAISE(ABORT, 'injected: completion refused'); END;"
        }
    }
}

/// Undoes [`refuse_completions`].
fn allow_completions(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "DROP TRIGGER test_refuse_completion ON uploads;",
        Backend::Sqlite => "DROP TRIGGER test_refuse_completion;",
    }
}

/// Item 6: the store completed the object but the database's commit of the completion
/// failed. The client's retry from HEAD's offset completes the upload — on S3, where the
/// multipart upload is already completed and its pending piece must still be there, the
/// object is recognised and the bytes sent again are checked against it — and the download
/// is the source.
async fn a_completion_whose_commit_failed_can_be_retried(server: TestServer) -> Result<()> {
    const MIB: usize = 1 << 20;
    let len = 67 * MIB + 123;
    let content = random_bytes(len, 6);
    let url = server.create(len as u64, "retried.bin").await?;
    // A whole 64 MiB part and a 1 MiB pending piece, committed.
    let first = 65 * MIB;
    let response = server.patch(&url, 0, content[..first].to_vec()).await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "first PATCH: {}",
        response.status()
    );
    server
        .execute_sql(refuse_completions(server.backend))
        .await?;
    let response = server
        .patch(&url, first as u64, content[first..].to_vec())
        .await?;
    ensure!(
        response.status() == StatusCode::SERVICE_UNAVAILABLE,
        "the completing PATCH whose commit failed answered {}",
        response.status()
    );
    server
        .execute_sql(allow_completions(server.backend))
        .await?;
    let offset = server.head_offset(&url).await?;
    ensure!(
        offset == first as u64,
        "HEAD shows {offset}, the last committed offset is {first}"
    );
    let offset = usize::try_from(offset)?;
    let response = server
        .patch(&url, offset as u64, content[offset..].to_vec())
        .await?;
    let status = response.status();
    ensure!(
        status == StatusCode::NO_CONTENT,
        "the retry answered {status}: {}",
        response.text().await?
    );
    let downloaded = server.share_and_download(file_id(&url)?).await?;
    ensure!(
        blake3::hash(&downloaded) == blake3::hash(&content),
        "the download differs from the source"
    );
    Ok(())
}

/// Slows down the writers opened while `slow` is set and watches them: item 7 is about a
/// write of a refused request still running after that request was answered.
#[derive(Default)]
struct WriteGate {
    slow: AtomicBool,
    /// Set by the test once it has the refused request's answer.
    answered: AtomicBool,
    /// Slow writers opened, and dropped (all their work over).
    slow_opened: AtomicUsize,
    slow_dropped: AtomicUsize,
    /// Appends of slow writers that ended after `answered` was set.
    late: AtomicUsize,
}

/// A store whose writers pass through a [`WriteGate`].
struct GatedStore {
    inner: Arc<dyn ObjectStore>,
    gate: Arc<WriteGate>,
}

struct GatedWriter {
    inner: Box<dyn ObjectWriter>,
    gate: Arc<WriteGate>,
    slow: bool,
}

impl Drop for GatedWriter {
    fn drop(&mut self) {
        if self.slow {
            self.gate.slow_dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ObjectStore for GatedStore {
    fn open_writer(
        &self,
        file: Uuid,
        from: WriteFrom<'_>,
    ) -> Result<Box<dyn ObjectWriter>, StoreError> {
        let slow = self.gate.slow.load(Ordering::SeqCst);
        if slow {
            self.gate.slow_opened.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Box::new(GatedWriter {
            inner: self.inner.open_writer(file, from)?,
            gate: self.gate.clone(),
            slow,
        }))
    }
    fn open_reader(
        &self,
        file: Uuid,
        expected: std::ops::Range<u64>,
    ) -> Result<Box<dyn ObjectReader>, StoreError> {
        self.inner.open_reader(file, expected)
    }
    fn delete(&self, file: Uuid) -> Result<(), StoreError> {
        self.inner.delete(file)
    }
    fn forget_upload_state(&self, file: Uuid) {
        self.inner.forget_upload_state(file);
    }
    fn max_plaintext_len(&self) -> u64 {
        self.inner.max_plaintext_len()
    }
    fn part_plaintext_len(&self, max_plaintext_len: u64) -> Option<u64> {
        self.inner.part_plaintext_len(max_plaintext_len)
    }
}

impl ObjectWriter for GatedWriter {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if !self.slow {
            return self.inner.append(bytes);
        }
        // Long beside the time the rest of the body takes to arrive, so a write is surely
        // still running when the body ends.
        std::thread::sleep(Duration::from_secs(1));
        let result = self.inner.append(bytes);
        if self.gate.answered.load(Ordering::SeqCst) {
            self.gate.late.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
    fn sync(&mut self) -> Result<ferry::store::StoreState, StoreError> {
        self.inner.sync()
    }
    fn syncer(&mut self) -> Result<Box<dyn ferry::store::ObjectSyncer>, StoreError> {
        self.inner.syncer()
    }
    fn finish(&mut self) -> Result<(), StoreError> {
        self.inner.finish()
    }
    fn checkpoint_every(&self) -> u64 {
        self.inner.checkpoint_every()
    }
    fn quiesce(&mut self) {
        self.inner.quiesce();
    }
    fn completed_len(&self) -> Option<u64> {
        self.inner.completed_len()
    }
}

/// Item 7: a PATCH refused for its checksum (460) while a batch of its body is still being
/// written must not answer — and so release the upload — before that write is over: the
/// client's retry writes the same offsets, and the refused body's late write would land on
/// top (on disk: a download of other bytes). The retry completes; the download is the
/// source.
async fn a_refused_body_never_writes_after_its_answer(stack: Stack) -> Result<()> {
    let gate = Arc::new(WriteGate::default());
    let server = TestServer::start_wrapped(stack, |inner| {
        Arc::new(GatedStore {
            inner,
            gate: gate.clone(),
        })
    })
    .await?;
    // Two of the pipeline's 512 KiB batches: the second is being written when the body ends.
    let len = 1 << 20;
    let content = random_bytes(len, 7);
    let other = random_bytes(len, 8);
    let url = server.create(len as u64, "gated.bin").await?;
    gate.slow.store(true, Ordering::SeqCst);
    let refused = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header(
            "Upload-Checksum",
            format!("blake3 {}", b64(blake3::hash(&content).as_bytes())),
        )
        .body(other)
        .send()
        .await?;
    gate.answered.store(true, Ordering::SeqCst);
    gate.slow.store(false, Ordering::SeqCst);
    ensure!(
        refused.status().as_u16() == 460,
        "the PATCH of other bytes answered {}",
        refused.status()
    );
    let response = server.patch(&url, 0, content.clone()).await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "the retry answered {}",
        response.status()
    );
    // Until the refused request's writer is gone, its writes may still land.
    while gate.slow_dropped.load(Ordering::SeqCst) < gate.slow_opened.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = gate.late.load(Ordering::SeqCst);
    ensure!(
        late == 0,
        "{late} write(s) of the refused body ended after its 460 was answered"
    );
    let downloaded = server.share_and_download(file_id(&url)?).await?;
    ensure!(
        blake3::hash(&downloaded) == blake3::hash(&content),
        "the download differs from the source: a stale write landed"
    );
    Ok(())
}

mod a_refused_body_never_writes_after_its_answer {
    use super::Stack;

    #[tokio::test]
    async fn sqlite() -> anyhow::Result<()> {
        super::a_refused_body_never_writes_after_its_answer(Stack::SqliteDisk).await
    }

    #[tokio::test]
    async fn postgres() -> anyhow::Result<()> {
        super::a_refused_body_never_writes_after_its_answer(Stack::PostgresDisk).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_garage() -> anyhow::Result<()> {
        super::a_refused_body_never_writes_after_its_answer(Stack::PostgresGarage).await
    }
}

/// Item 7, after a lost PostgreSQL session: PostgreSQL has released the writer's lease, so
/// another instance may hold the upload; the writer must write and commit nothing more. The
/// PATCH is refused retryably (503) and the offset stays where the last commit left it.
#[tokio::test]
async fn a_writer_that_lost_its_lease_commits_nothing_more() -> Result<()> {
    let server = TestServer::start_with(Stack::PostgresDisk).await?;
    let url = server.create(1 << 20, "lost.bin").await?;
    let (tx, response) = server.streamed_patch(&url, 0);
    tx.send(Ok(random_bytes(100_000, 9))).await?;
    // A stalled body commits what it has after a second.
    eventually_async(Duration::from_secs(5), async || {
        let offset = server.head_offset(&url).await?;
        ensure!(
            offset == 100_000,
            "the stalled body was not committed: {offset}"
        );
        Ok(())
    })
    .await?;
    let session = server
        .state
        .locks
        .advisory_session_name()
        .context("a PostgreSQL server has a lease session")?
        .to_owned();
    server
        .execute_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{session}'"
        ))
        .await?;
    // Bytes that arrive before the server notices must not be committed either.
    tx.send(Ok(random_bytes(50_000, 10))).await?;
    let answer = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .context("the PATCH did not end after its lease was lost")???;
    drop(tx);
    ensure!(
        answer.status() == StatusCode::SERVICE_UNAVAILABLE,
        "a writer without its lease answered {}",
        answer.status()
    );
    let after = server.head_offset(&url).await?;
    ensure!(
        after == 100_000,
        "committed after losing the lease: {after}"
    );
    Ok(())
}

/// Item 10: a share cannot keep a file past `max_days` after its upload completed: asked for
/// more, its `expires_at` is clamped and the answer says so. A destroyed file's tombstone
/// keeps no name and no metadata.
async fn a_file_lives_at_most_max_days_after_completion(server: TestServer) -> Result<()> {
    server
        .set_policy(serde_json::json!({"default_days": 7, "max_days": 10}))
        .await?;
    let id = server.upload(b"ten days at most", "ten.txt").await?;
    let now = time::OffsetDateTime::now_utc();
    let expires = |share: &serde_json::Value| -> Result<time::OffsetDateTime> {
        let text = share["expires_at"].as_str().context("expires_at")?;
        Ok(time::OffsetDateTime::parse(
            text,
            &time::format_description::well_known::Rfc3339,
        )?)
    };
    let fresh = server.share_created(&[id]).await?;
    let gap = expires(&fresh)? - (now + time::Duration::days(7));
    ensure!(gap.abs() < time::Duration::minutes(1), "fresh: {fresh}");

    // The upload completed 8 days ago: a new 7-day share may run 2 more days only.
    let completed = now - time::Duration::days(8);
    server.set_completed_at(id, completed).await?;
    let late = server.share_created(&[id]).await?;
    let gap = expires(&late)? - (completed + time::Duration::days(10));
    ensure!(
        gap.abs() < time::Duration::minutes(1),
        "a share made 8 days after the upload runs past its 10 days: {late}"
    );
    ensure!(fresh["expiry_capped"] == false, "fresh: {fresh}");
    ensure!(late["expiry_capped"] == true, "late: {late}");

    // A terminated upload's tombstone forgets the name and metadata.
    let url = server.create(10, "secret-diagnosis.pdf").await?;
    let deleted = server.tus(Method::DELETE, &url).send().await?;
    ensure!(
        deleted.status() == StatusCode::NO_CONTENT,
        "DELETE: {}",
        deleted.status()
    );
    let gone = file_id(&url)?;
    let kept = server
        .query_text(
            "SELECT filename || '|' || metadata FROM uploads WHERE id = $1",
            gone,
        )
        .await?;
    ensure!(kept == "|", "the tombstone keeps {kept:?}");
    Ok(())
}

/// Whether any of the SQLite files (database, WAL) holds `needle`.
fn sqlite_files_hold(server: &TestServer, needle: &[u8]) -> Result<bool> {
    let db = server.sqlite_path();
    for path in [db.clone(), db.with_extension("db-wal")] {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if bytes.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Item 11: after an upload is deleted, its wrapped key is in neither SQLite's database file
/// (`secure_delete`) nor its WAL (checkpointed after the shred).
#[tokio::test]
async fn a_shredded_key_leaves_no_copy_in_the_sqlite_files() -> Result<()> {
    let server = TestServer::start().await?;
    let url = server.create(10, "to-shred.bin").await?;
    let id = file_id(&url)?;
    let wrapped = server.state.db.wrapped_dek(server.tenant_id, id).await?;
    ensure!(
        sqlite_files_hold(&server, &wrapped)?,
        "the wrapped key is not where the test looks for it"
    );
    let deleted = server.tus(Method::DELETE, &url).send().await?;
    ensure!(
        deleted.status() == StatusCode::NO_CONTENT,
        "DELETE: {}",
        deleted.status()
    );
    ensure!(
        !sqlite_files_hold(&server, &wrapped)?,
        "a copy of the shredded key is still in ferry.db or its WAL"
    );
    Ok(())
}

on_both_databases!(
    a_file_lives_at_most_max_days_after_completion,
    a_deferred_length_cannot_pass_the_size_limit,
    uploads_belong_to_the_key_that_created_them,
    the_download_limit_counts_copies_served,
    metadata_is_bounded_and_names_are_cleaned,
);

on_every_backend!(
    a_stranger_cannot_stop_a_running_patch,
    an_unread_body_closes_the_connection,
    a_completion_whose_commit_failed_can_be_retried,
);
