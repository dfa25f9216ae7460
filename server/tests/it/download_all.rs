//! "Download all" (`GET /d/{token}/all.zip`) against a real server on every backend: the
//! archive holds every file byte for byte with the CRC-32 each upload computed (read back by
//! Python's `zipfile`, an independent reader), answers ranges, `If-Range` and HEAD like a
//! single file with an `ETag` that stays the same, counts toward each file's download limit
//! as the single files do, and gives a file uploaded before CRC-32 was kept its CRC once.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::harness::{TestServer, on_every_backend, random_bytes};

on_every_backend!(
    the_archive_holds_every_file_and_ranges_rebuild_it,
    the_archive_counts_toward_each_files_limit,
    a_file_from_before_crc32_gets_one_computed_once,
);

/// Files of every awkward size: empty, one byte short of a segment, several segments and a
/// bit, and a name that would leave the archive's folder.
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty.txt", Vec::new()),
        ("almost-a-segment.bin", random_bytes(65_535, 1)),
        ("scan.dcm", random_bytes(3 * 65_536 + 4_321, 2)),
        ("../../etc/passwd", random_bytes(17, 3)),
    ]
}

async fn share_all(server: &TestServer, files: &[(&str, Vec<u8>)]) -> Result<serde_json::Value> {
    let mut ids = Vec::new();
    for (name, content) in files {
        ids.push(server.upload(content, name).await?);
    }
    server.share_created(&ids).await
}

async fn get(
    server: &TestServer,
    method: Method,
    url: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
    let mut request = server.client.request(method, url);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

/// Python's `zipfile` reads `archive`: every CRC checked (`testzip`), and per entry its name,
/// size, CRC and bytes; they must be `files`, in order, under `names`.
fn python_reads(archive: &[u8], files: &[(&str, Vec<u8>)], names: &[&str]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("all.zip");
    std::fs::write(&path, archive)?;
    const READ: &str = r#"
import sys, zipfile, json, zlib
with zipfile.ZipFile(sys.argv[1]) as z:
    out = {"bad": z.testzip(), "entries": [[i.filename, i.file_size, i.compress_type, i.CRC,
            zlib.crc32(z.read(i)), z.read(i).hex()] for i in z.infolist()]}
print(json.dumps(out))
"#;
    let output = Command::new("/usr/bin/python3")
        .args(["-c", READ])
        .arg(&path)
        .output()
        .context("python3 runs")?;
    ensure!(
        output.status.success(),
        "Python's zipfile refused the archive: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(read["bad"].is_null(), "a CRC is wrong: {}", read["bad"]);
    let entries = read["entries"].as_array().context("entries")?;
    ensure!(entries.len() == files.len(), "{} entries", entries.len());
    for ((entry, (_, content)), name) in entries.iter().zip(files).zip(names) {
        ensure!(entry[0] == *name, "entry {} is not {name}", entry[0]);
        ensure!(entry[1] == content.len(), "{name}: size {}", entry[1]);
        ensure!(entry[2] == 0, "{name}: stored, not compressed");
        ensure!(
            entry[3] == entry[4],
            "{name}: header CRC {} vs data",
            entry[3]
        );
        ensure!(entry[5] == hex::encode(content), "{name}: the bytes differ");
    }
    Ok(())
}

async fn the_archive_holds_every_file_and_ranges_rebuild_it(server: TestServer) -> Result<()> {
    let files = sample_files();
    let share = share_all(&server, &files).await?;
    let url = format!("{}/all.zip", share["url"].as_str().context("url")?);

    let (status, headers, whole) = get(&server, Method::GET, &url, &[]).await?;
    ensure!(status == StatusCode::OK, "all.zip answered {status}");
    ensure!(headers[CONTENT_TYPE] == "application/zip");
    ensure!(headers[CONTENT_LENGTH] == whole.len().to_string().as_str());
    ensure!(headers["accept-ranges"] == "bytes");
    ensure!(headers["referrer-policy"] == "no-referrer");
    let disposition = headers["content-disposition"].to_str()?;
    ensure!(
        disposition.starts_with("attachment; filename=\"ferry-") && disposition.contains(".zip"),
        "{disposition}"
    );
    let etag = headers[ETAG].to_str()?.to_owned();
    ensure!(etag.starts_with("\"zip-") && etag.ends_with('"'), "{etag}");
    let names = [
        "empty.txt",
        "almost-a-segment.bin",
        "scan.dcm",
        ".._.._etc_passwd",
    ];
    python_reads(&whole, &files, &names)?;

    // The same share gives the same bytes and the same tag; HEAD says so without a body.
    let (_, again_headers, again) = get(&server, Method::GET, &url, &[]).await?;
    ensure!(again == whole && again_headers[ETAG] == etag.as_str());
    let (head, head_headers, body) = get(&server, Method::HEAD, &url, &[]).await?;
    ensure!(head == StatusCode::OK && body.is_empty());
    ensure!(head_headers[CONTENT_LENGTH] == whole.len().to_string().as_str());
    ensure!(head_headers[ETAG] == etag.as_str());

    // Ranges anywhere (headers, file bytes, across both) are the same bytes as the whole.
    let len = whole.len();
    let mut seed = 0x5eed_u64;
    let mut next = |bound: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % bound
    };
    for _ in 0..12 {
        let start = next(len);
        let end = (start + next(150_000)).min(len - 1);
        let range = format!("bytes={start}-{end}");
        let (status, headers, body) = get(
            &server,
            Method::GET,
            &url,
            &[(RANGE, &range), (IF_RANGE, &etag)],
        )
        .await?;
        ensure!(status == StatusCode::PARTIAL_CONTENT, "{range}: {status}");
        ensure!(headers[CONTENT_RANGE] == format!("bytes {start}-{end}/{len}").as_str());
        ensure!(body == whole[start..=end], "{range}: other bytes");
    }
    // A resumed download: pieces from five cut points reassemble the archive.
    let mut cuts: Vec<usize> = (0..5).map(|_| 1 + next(len - 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut rebuilt = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([len]) {
        let range = format!("bytes={from}-{}", cut - 1);
        let (status, _, body) = get(&server, Method::GET, &url, &[(RANGE, &range)]).await?;
        ensure!(status == StatusCode::PARTIAL_CONTENT, "{range}: {status}");
        rebuilt.extend(body);
        from = cut;
    }
    ensure!(rebuilt == whole, "the pieces do not rebuild the archive");

    // A stale validator gets the whole archive; a range past the end gets 416.
    let (stale, _, body) = get(
        &server,
        Method::GET,
        &url,
        &[(RANGE, "bytes=5-"), (IF_RANGE, "\"zip-0\"")],
    )
    .await?;
    ensure!(
        stale == StatusCode::OK && body == whole,
        "stale If-Range: {stale}"
    );
    let past = format!("bytes={len}-");
    let (status, headers, _) = get(&server, Method::GET, &url, &[(RANGE, &past)]).await?;
    ensure!(
        status == StatusCode::RANGE_NOT_SATISFIABLE,
        "{past}: {status}"
    );
    ensure!(headers[CONTENT_RANGE] == format!("bytes */{len}").as_str());

    // The page offers it.
    let (_, _, page) = get(
        &server,
        Method::GET,
        share["url"].as_str().context("url")?,
        &[],
    )
    .await?;
    let page = String::from_utf8(page)?;
    ensure!(page.contains("/all.zip\""), "the page links the archive");
    Ok(())
}

async fn the_archive_counts_toward_each_files_limit(server: TestServer) -> Result<()> {
    server
        .set_policy(
            serde_json::json!({"default_days": 7, "max_days": 30, "max_downloads_per_file": 2}),
        )
        .await?;
    let report = random_bytes(100_000, 9);
    let files = vec![("report.pdf", report.clone()), ("empty.txt", Vec::new())];
    let share = share_all(&server, &files).await?;
    let link = share["url"].as_str().context("url")?;
    let share_id = share["id"].as_str().context("id")?;
    let report_id = share["files"][0]["id"].as_str().context("file id")?;
    let url = format!("{link}/all.zip");

    // A mail scanner's HEADs and first bytes of the page cost nothing.
    for _ in 0..3 {
        let (status, _, _) = get(&server, Method::HEAD, &url, &[]).await?;
        ensure!(status == StatusCode::OK, "HEAD answered {status}");
    }
    // One archive, one single download: the report has served its two copies.
    let (status, _, whole) = get(&server, Method::GET, &url, &[]).await?;
    ensure!(
        status == StatusCode::OK,
        "the first archive answered {status}"
    );
    let (status, _, single) =
        get(&server, Method::GET, &format!("{link}/f/{report_id}"), &[]).await?;
    ensure!(status == StatusCode::OK && single == report);
    let view = server.share_view(share_id).await?;
    ensure!(
        view["files"][0]["downloads"] == 2 && view["files"][1]["downloads"] == 1,
        "after one archive and one single copy: {view}"
    );
    // A second archive would be the report's third copy: refused, and the empty file's count
    // is given back (nothing reserved when one file cannot be served).
    let (status, _, _) = get(&server, Method::GET, &url, &[]).await?;
    ensure!(
        status == StatusCode::GONE,
        "a third copy through the archive: {status}"
    );
    let view = server.share_view(share_id).await?;
    ensure!(
        view["files"][1]["downloads"] == 1,
        "the refused archive reserved nothing: {view}"
    );
    // Bytes of the archive's own structure cost nothing: its end records are still served.
    let (status, _, tail) = get(&server, Method::GET, &url, &[(RANGE, "bytes=-22")]).await?;
    ensure!(status == StatusCode::PARTIAL_CONTENT && tail == whole[whole.len() - 22..]);

    // Each file's download through the archive is recorded, marked as such.
    let events = server.audit_events("").await?;
    let through_archive: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "file.downloaded" && e["details"]["archive"] == true)
        .collect();
    ensure!(
        through_archive.len() == 2
            && through_archive
                .iter()
                .any(|e| e["subject"] == report_id && e["details"]["complete"] == true),
        "archive downloads in the audit log: {through_archive:?}"
    );
    Ok(())
}

async fn a_file_from_before_crc32_gets_one_computed_once(server: TestServer) -> Result<()> {
    let files = vec![("old.bin", random_bytes(200_001, 4))];
    let share = share_all(&server, &files).await?;
    let id: Uuid = share["files"][0]["id"]
        .as_str()
        .context("file id")?
        .parse()?;
    let crc_of = "SELECT COALESCE(CAST(crc32 AS TEXT), 'none') FROM uploads WHERE id = $1";
    let kept = server.query_text(crc_of, id).await?;
    // As a file completed before migration 0010 is (this server holds no other upload).
    server
        .execute_sql("UPDATE uploads SET crc32 = NULL")
        .await?;
    ensure!(
        server.query_text(crc_of, id).await? == "none",
        "CRC cleared"
    );

    let url = format!("{}/all.zip", share["url"].as_str().context("url")?);
    let (status, _, whole) = get(&server, Method::GET, &url, &[]).await?;
    ensure!(status == StatusCode::OK, "all.zip answered {status}");
    python_reads(&whole, &files, &["old.bin"])?;
    ensure!(
        server.query_text(crc_of, id).await? == kept,
        "the computed CRC-32 is recorded and equals the one the upload kept ({kept})"
    );
    Ok(())
}
