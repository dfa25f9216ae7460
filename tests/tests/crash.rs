//! Nothing acknowledged is lost when the server is SIGKILLed in the middle of an upload.
//!
//! `one_upload_survives_repeated_kill_9` drives raw tus with reqwest so it can kill the server
//! at chosen points of a streaming PATCH body: while the body is paused mid-segment, while it
//! is flowing, between two PATCHes, and after completion. After every restart (same port, same
//! data directory) `HEAD` must return an offset that is no more than the bytes sent, never
//! below what the server acknowledged before (a 204's `Upload-Offset` or an earlier HEAD), and
//! the upload resumes from it. The finished download is byte-identical and its BLAKE3 matches.
//!
//! `real_clients_resume_by_themselves_across_kill_9` kills the server under tuspy and
//! tus-js-client and lets their own retry logic resume.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferry_e2e::{
    Api, ClientUpload, Server, SourceFile, TusClient, download_and_compare, file_id_from_url,
    random_file, spawn_client, start_patch,
};

const MIB: u64 = 1 << 20;
/// About 200 MiB, deliberately not a multiple of the 64 KiB segment size.
const SIZE: u64 = 200 * MIB + 4_321;

/// How a PATCH is interrupted.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Stop feeding the body once this absolute file offset has been handed to the HTTP
    /// client, let the server digest what it got, then kill it while it waits for more.
    Paused(u64),
    /// Kill the server as soon as this absolute offset has been handed to the HTTP client,
    /// with bytes still flowing.
    Flowing(u64),
}

/// The upload's progress as the client knows it.
struct Progress {
    upload_url: String,
    /// The highest offset the server has acknowledged (204 `Upload-Offset`, or a HEAD).
    acked: u64,
    /// Bytes kept by the server from interrupted PATCHes, summed over kills.
    kept_mid_patch: u64,
    /// A line per kill, printed at the end.
    history: Vec<String>,
}

/// Restart after a kill and check `HEAD`: `acked ≤ offset ≤ sent_upper`.
fn restart_and_head(
    server: &mut Server,
    api: &Api,
    progress: &mut Progress,
    sent_upper: u64,
    label: &str,
) -> Result<u64> {
    server
        .restart()
        .with_context(|| format!("restart after kill ({label})"))?;
    let head = api.tus_head(&progress.upload_url)?;
    let url = &progress.upload_url;
    ensure!(
        head.status == 200,
        "after {label}: HEAD {url} answered {} (expected 200)",
        head.status
    );
    ensure!(
        head.length == Some(SIZE),
        "after {label}: HEAD {url} has Upload-Length {:?}, expected {SIZE}",
        head.length
    );
    let offset = head
        .offset
        .ok_or_else(|| anyhow!("after {label}: HEAD {url} has no Upload-Offset"))?;
    ensure!(
        offset <= sent_upper,
        "after {label}: HEAD {url} says Upload-Offset {offset}, but at most {sent_upper} bytes \
         were ever sent: the server claims bytes it cannot have"
    );
    ensure!(
        offset >= progress.acked,
        "after {label}: HEAD {url} says Upload-Offset {offset}, below {} which the server had \
         already acknowledged: acknowledged bytes were lost",
        progress.acked
    );
    progress.acked = offset;
    Ok(offset)
}

/// Run one PATCH from the current offset to the end of the file and kill the server during it.
fn interrupted_patch(
    server: &mut Server,
    api: &Api,
    source: &SourceFile,
    progress: &mut Progress,
    kill: Kill,
) -> Result<()> {
    let start = progress.acked;
    let (at, pause) = match kill {
        Kill::Paused(at) => (at, true),
        Kill::Flowing(at) => (at, false),
    };
    ensure!(
        at > start,
        "kill point {at} is not ahead of the offset {start}: the plan does not fit this upload"
    );
    let rel = at - start;
    let patch = start_patch(
        api,
        &progress.upload_url,
        &source.path,
        start,
        SIZE - start,
        pause.then_some(rel),
    )?;
    let timeout = Duration::from_secs(300);
    let reached = if pause {
        patch.wait_paused(timeout)
    } else {
        patch.wait_sent(rel, timeout, || Ok(()))
    };
    if let Err(e) = reached {
        let outcome = patch.join();
        bail!("{kill:?}: the kill point was not reached: {e:#}; the PATCH: {outcome:?}");
    }
    if pause {
        // Let the server take in what is in flight, so the kill lands while it holds a
        // partly filled segment and waits for more.
        thread::sleep(Duration::from_millis(300));
    }
    server.kill9()?;
    let sent_upper = patch.start() + patch.sent();
    let len = patch.len();
    let outcome = patch.join();
    // The server died mid-body, so the PATCH cannot have succeeded.
    if let Ok(resp) = &outcome {
        bail!(
            "{kill:?}: the PATCH from {start} ({len} bytes) got an answer although the server \
             was killed before the body was complete: {resp:?}"
        );
    }
    let offset = restart_and_head(server, api, progress, sent_upper, &format!("{kill:?}"))?;
    progress.kept_mid_patch += offset - start;
    progress.history.push(format!(
        "{kill:?}: PATCH from {start}, ≤ {sent_upper} sent, HEAD after restart {offset} \
         (kept {} of the interrupted PATCH)",
        offset - start
    ));
    Ok(())
}

/// A PATCH that must succeed: 204 with the new offset.
fn complete_patch(api: &Api, source: &SourceFile, progress: &mut Progress, len: u64) -> Result<()> {
    let start = progress.acked;
    let patch = start_patch(api, &progress.upload_url, &source.path, start, len, None)?;
    let resp = patch.join()?;
    ensure!(
        resp.status == 204 && resp.offset == Some(start + len),
        "PATCH {} (Upload-Offset: {start}, {len} bytes) answered {} with Upload-Offset {:?} \
         (expected 204 with {}): {}",
        progress.upload_url,
        resp.status,
        resp.offset,
        start + len,
        resp.body
    );
    progress.acked = start + len;
    Ok(())
}

#[test]
fn one_upload_survives_repeated_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(dir.path().join("data"))?;
    let result = kill_during_upload(&mut server, dir.path());
    server.explain(result)
}

fn kill_during_upload(server: &mut Server, dir: &Path) -> Result<()> {
    let tenant = server.create_tenant("acme")?;
    let api = server.api(&tenant)?;
    let source = random_file(dir, "crash.bin", SIZE)?;
    eprintln!(
        "source: {SIZE} B, rng seed {}, blake3 {}",
        source.seed, source.blake3
    );

    let upload_url = api.tus_create(SIZE, "crash.bin")?;
    let id = file_id_from_url(&upload_url)?;
    let mut progress = Progress {
        upload_url,
        acked: 0,
        kept_mid_patch: 0,
        history: Vec::new(),
    };

    // 1. Right after creation: the 201 was an acknowledgement too.
    server.kill9()?;
    restart_and_head(server, &api, &mut progress, 0, "kill after creation")?;
    progress.history.push("kill after creation: HEAD 0".into());

    // 2–3. Mid-PATCH, body paused inside a segment; then with bytes flowing.
    interrupted_patch(
        server,
        &api,
        &source,
        &mut progress,
        Kill::Paused(17 * MIB + 12_345),
    )?;
    interrupted_patch(
        server,
        &api,
        &source,
        &mut progress,
        Kill::Flowing(61 * MIB + 777),
    )?;

    // 4. Between two PATCHes: exactly what the last 204 acknowledged must come back.
    complete_patch(&api, &source, &mut progress, 9 * MIB + 3)?;
    let acked = progress.acked;
    server.kill9()?;
    let offset = restart_and_head(server, &api, &mut progress, acked, "kill between PATCHes")?;
    ensure!(
        offset == acked,
        "HEAD after a kill between PATCHes is {offset}, the 204 said {acked}"
    );
    progress.history.push(format!(
        "kill between PATCHes: 204 said {acked}, HEAD {offset}"
    ));

    // 5. Mid-PATCH again, further on, paused then flowing.
    interrupted_patch(
        server,
        &api,
        &source,
        &mut progress,
        Kill::Flowing(150 * MIB + 1),
    )?;
    interrupted_patch(
        server,
        &api,
        &source,
        &mut progress,
        Kill::Paused(SIZE - 100_000),
    )?;

    // 6. Finish.
    let rest = SIZE - progress.acked;
    complete_patch(&api, &source, &mut progress, rest)?;

    eprintln!("kills:\n  {}", progress.history.join("\n  "));
    ensure!(
        progress.kept_mid_patch > 0,
        "no byte of any interrupted PATCH survived a kill -9: the server only makes progress \
         durable at the end of a PATCH, so a client sending a large file in one PATCH starts \
         over after every crash\n  {}",
        progress.history.join("\n  ")
    );

    // 7. A completed file survives a kill too.
    server.kill9()?;
    server.restart()?;

    let info = api.file(&id)?;
    ensure!(
        info.state == "complete" && info.offset == SIZE && info.size == SIZE,
        "after the upload and a restart, GET /api/v1/files/{id} is {info:?}"
    );
    ensure!(
        info.blake3.as_deref() == Some(source.blake3.as_str()),
        "the API's blake3 is {:?}, the source's is {}",
        info.blake3,
        source.blake3
    );
    let share = api.create_share(&[&id], &["a@x.eu"], None)?;
    let url = share.file_url(&id);
    let got = download_and_compare(&url, &source.path)?;
    ensure!(
        got.blake3 == source.blake3,
        "GET {url}: BLAKE3 of the body differs from the source"
    );
    let etag = format!("\"{}\"", source.blake3);
    ensure!(
        got.etag.as_deref() == Some(etag.as_str()),
        "GET {url}: ETag {:?}, expected {etag}",
        got.etag
    );
    Ok(())
}

#[test]
fn real_clients_resume_by_themselves_across_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(dir.path().join("data"))?;
    let result = clients_across_kills(&mut server, dir.path());
    server.explain(result)
}

fn clients_across_kills(server: &mut Server, dir: &Path) -> Result<()> {
    let tenant = server.create_tenant("acme")?;
    let api = server.api(&tenant)?;
    let size = 64 * MIB + 7;
    for (client, chunk) in [(TusClient::Py, 262_147u64), (TusClient::Js, 524_287u64)] {
        let name = format!("{client}-resume.bin");
        let source = random_file(dir, &name, size)?;
        let what = format!(
            "{client} uploading {name} ({size} B, chunk {chunk}, seed {})",
            source.seed
        );
        let endpoint = server.tus_endpoint();
        let mut running = spawn_client(
            client,
            &ClientUpload {
                endpoint: &endpoint,
                key: &tenant.api_key,
                file: &source.path,
                chunk_size: chunk,
                name: Some(&name),
                extra: &[],
                timeout: Duration::from_secs(300),
            },
        )?;

        // Wait for the client to announce its upload, then kill the server whenever the
        // server's offset passes the next mark. The clients only learn of it through failed
        // requests, and must HEAD and resume on their own.
        let deadline = Instant::now() + Duration::from_secs(120);
        let upload_url = loop {
            if let Some(url) = running.upload_url() {
                break url;
            }
            ensure!(
                running.is_running(),
                "{what}: the client exited before creating its upload"
            );
            ensure!(
                Instant::now() < deadline,
                "{what}: no upload URL announced in time"
            );
            thread::sleep(Duration::from_millis(5));
        };
        let mut kills = Vec::new();
        let mut seen = 0;
        for mark in [size / 8, size * 3 / 8, size * 5 / 8] {
            let offset = loop {
                ensure!(
                    Instant::now() < deadline,
                    "{what}: the upload stalled at {seen}"
                );
                if !running.is_running() {
                    break None;
                }
                // The server may be restarting under us; a failed HEAD just means "not yet".
                if let Ok(head) = api.tus_head(&upload_url)
                    && let Some(offset) = head.offset
                {
                    ensure!(
                        offset >= seen,
                        "{what}: HEAD {upload_url} went back from {seen} to {offset}"
                    );
                    seen = offset;
                    if offset >= mark {
                        break Some(offset);
                    }
                }
                thread::sleep(Duration::from_millis(2));
            };
            let Some(offset) = offset else { break };
            if offset >= size {
                break;
            }
            server.kill9()?;
            // Stay down a moment so that the client's requests fail, not just stall.
            thread::sleep(Duration::from_millis(100));
            server.restart()?;
            kills.push(offset);
        }
        let url = running.wait(Duration::from_secs(300))?;
        eprintln!("{what}: finished; killed the server at offsets {kills:?}");
        ensure!(
            url == upload_url,
            "{what}: finished as {url}, but announced {upload_url}"
        );
        ensure!(
            kills.len() >= 2,
            "{what}: the upload finished after only {} kill(s) ({kills:?}); make the file larger",
            kills.len()
        );
        let id = file_id_from_url(&url)?;
        let info = api.file(&id)?;
        ensure!(
            info.state == "complete" && info.blake3.as_deref() == Some(source.blake3.as_str()),
            "{what}: GET /api/v1/files/{id} is {info:?}, source blake3 {}",
            source.blake3
        );
        let share = api.create_share(&[&id], &["a@x.eu"], None)?;
        download_and_compare(&share.file_url(&id), &source.path).with_context(|| what.clone())?;
    }
    Ok(())
}
