//! Recipients' downloads against a real server: byte ranges, validators, the page, and
//! what is at rest (ciphertext only, in the documented format, tamper-evident). Every
//! scenario runs three times: on SQLite with the disk store (`NAME::sqlite`), on PostgreSQL
//! with the disk store (`NAME::postgres`), and on PostgreSQL with the S3 store on a real
//! Garage (`NAME::postgres_garage`), where the object is read and damaged through S3.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_testkit::eventually_async;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE};

use crate::harness::{TestServer, file_id, on_every_backend, random_bytes};

on_every_backend!(
    ranges_cover_boundaries_suffixes_and_errors,
    etag_is_the_blake3_and_if_range_guards_ranges,
    the_share_page_lists_files_and_bad_links_are_404,
    stored_objects_are_ciphertext_in_format_v1,
    unfinished_uploads_keep_only_sealed_segments_at_rest,
    a_tampered_object_is_never_served,
);

const S: u64 = 65_536;

async fn shared_file(server: &TestServer, content: &[u8]) -> Result<(String, uuid::Uuid)> {
    let id = server.upload(content, "data.bin").await?;
    let share = server.share(&[id]).await?;
    Ok((format!("{share}/f/{id}"), id))
}

async fn ranges_cover_boundaries_suffixes_and_errors(server: TestServer) -> Result<()> {
    let content = random_bytes(3 * S as usize + 1234, 11);
    let len = content.len() as u64;
    let (url, _) = shared_file(&server, &content).await?;

    let cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        (format!("bytes={}-{}", len - 1, len - 1), len - 1, len - 1),
        (format!("bytes={}-{}", S - 1, S), S - 1, S),
        (
            format!("bytes={}-{}", S - 10, 2 * S + 10),
            S - 10,
            2 * S + 10,
        ),
        (format!("bytes={}-", 3 * S), 3 * S, len - 1),
        ("bytes=-1".into(), len - 1, len - 1),
        ("bytes=-70000".into(), len - 70_000, len - 1),
        (format!("bytes=5-{}", len + 100), 5, len - 1),
    ];
    for (range, start, end) in cases {
        let response = server.client.get(&url).header(RANGE, &range).send().await?;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            response.headers()[CONTENT_RANGE],
            format!("bytes {start}-{end}/{len}").as_str(),
            "{range}"
        );
        let body = response.bytes().await?;
        assert_eq!(
            &body[..],
            &content[start as usize..=end as usize],
            "{range}"
        );
    }
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 9),
        "bytes=-0".into(),
    ] {
        let response = server.client.get(&url).header(RANGE, &range).send().await?;
        assert_eq!(
            response.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}"
        );
        assert_eq!(
            response.headers()[CONTENT_RANGE],
            format!("bytes */{len}").as_str()
        );
    }
    Ok(())
}

async fn etag_is_the_blake3_and_if_range_guards_ranges(server: TestServer) -> Result<()> {
    let content = random_bytes(100_000, 12);
    let (url, _) = shared_file(&server, &content).await?;
    let etag = format!("\"{}\"", blake3::hash(&content).to_hex());

    let full = server.client.get(&url).send().await?;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()[ETAG], etag.as_str());
    let disposition = full.headers()["content-disposition"].to_str()?.to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"data.bin\""),
        "{disposition}"
    );
    assert_eq!(full.headers()["referrer-policy"], "no-referrer");
    assert_eq!(&full.bytes().await?[..], &content[..]);

    let fresh = server
        .client
        .get(&url)
        .header(RANGE, "bytes=10-19")
        .header(IF_RANGE, &etag)
        .send()
        .await?;
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&fresh.bytes().await?[..], &content[10..20]);
    let stale = server
        .client
        .get(&url)
        .header(RANGE, "bytes=10-19")
        .header(IF_RANGE, "\"0000\"")
        .send()
        .await?;
    assert_eq!(
        stale.status(),
        StatusCode::OK,
        "a stale If-Range gets the whole file"
    );
    assert_eq!(&stale.bytes().await?[..], &content[..]);
    Ok(())
}

async fn the_share_page_lists_files_and_bad_links_are_404(server: TestServer) -> Result<()> {
    let id = server
        .upload(b"<b>hello</b>", "<script>x</script>.txt")
        .await?;
    let share = server.share(&[id]).await?;
    let page = server.client.get(&share).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await?;
    assert!(
        html.contains("&#60;script&#62;x&#60;/script&#62;.txt"),
        "names are escaped"
    );
    assert!(!html.contains("<script>"));
    assert!(html.contains(&blake3::hash(b"<b>hello</b>").to_hex().to_string()));
    assert!(html.contains(&format!("/f/{id}")));

    let token = share.rsplit('/').next().context("token")?;
    let mut forged = token.as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged)?;
    for bad in [forged.as_str(), "short", &"A".repeat(55)] {
        let response = server
            .client
            .get(format!("{}/d/{bad}", server.base))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
        let response = server
            .client
            .get(format!("{}/d/{bad}/f/{id}", server.base))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    let other = server.upload(b"not shared", "other.txt").await?;
    let response = server
        .client
        .get(format!("{share}/f/{other}"))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "a file outside the share"
    );
    Ok(())
}

/// Reads the stored object and decrypts it with the `aes-gcm` crate from the documented
/// format alone: the format is proven by an independent implementation.
async fn stored_objects_are_ciphertext_in_format_v1(server: TestServer) -> Result<()> {
    let content = random_bytes(2 * S as usize + 5000, 13);
    let (_, id) = shared_file(&server, &content).await?;
    let object = server.read_object(id).await?;
    assert_eq!(object.len(), content.len() + 3 * 28);

    // No 32-byte window of the plaintext appears anywhere in the object.
    let windows: std::collections::HashSet<&[u8]> = object.windows(32).collect();
    for start in (0..content.len() - 32).step_by(97) {
        assert!(
            !windows.contains(&content[start..start + 32]),
            "plaintext at {start} is stored in clear"
        );
    }

    let wrapped = server.state.db.wrapped_dek(server.tenant_id, id).await?;
    let dek = server
        .state
        .tenant_kek(server.tenant_id)?
        .unwrap(&wrapped, id)?;
    let cipher = Aes256Gcm::new_from_slice(dek.as_bytes())?;
    let mut plaintext = Vec::new();
    let mut at = 0usize;
    let mut index = 0u64;
    while at < object.len() {
        let stored = (object.len() - at).min(S as usize + 28);
        let last = at + stored == object.len();
        let segment = &object[at..at + stored];
        let mut aad = b"ferry/v1".to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(&index.to_be_bytes());
        aad.push(u8::from(last));
        let opened = cipher
            .decrypt(
                Nonce::from_slice(&segment[..12]),
                Payload {
                    msg: &segment[12..],
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("aes-gcm refused segment {index}"))?;
        plaintext.extend_from_slice(&opened);
        at += stored;
        index += 1;
    }
    assert_eq!(plaintext, content);
    Ok(())
}

/// What an unfinished upload leaves in the store is ciphertext too, and only its whole
/// segments: the partial segment at the end of a PATCH is sealed into the database, never
/// written to the store in clear nor as a segment. On S3 the store's share is the pending
/// pieces of the part being filled (no part is full yet).
async fn unfinished_uploads_keep_only_sealed_segments_at_rest(server: TestServer) -> Result<()> {
    let content = random_bytes(500_000, 15);
    let url = server.create(content.len() as u64, "partial.bin").await?;
    for (from, to) in [(0usize, 100_001usize), (100_001, 200_001)] {
        let response = server
            .patch(&url, from as u64, content[from..to].to_vec())
            .await?;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let id = file_id(&url)?;
    let blobs = server.stored_blobs_of(id).await?;
    let names: Vec<(&str, usize)> = blobs.iter().map(|(n, b)| (n.as_str(), b.len())).collect();
    eprintln!("{:?} holds {names:?}", server.stack);
    let whole_segments = 200_001 / S as usize;
    assert_eq!(
        blobs.iter().map(|(_, b)| b.len()).sum::<usize>(),
        whole_segments * (S as usize + 28),
        "the store holds exactly the {whole_segments} sealed whole segments: {names:?}"
    );
    for (name, blob) in &blobs {
        let windows: std::collections::HashSet<&[u8]> = blob.windows(32).collect();
        for start in (0..200_001 - 32).step_by(97) {
            assert!(
                !windows.contains(&content[start..start + 32]),
                "plaintext at {start} is stored in clear in {name}"
            );
        }
    }
    // The upload still completes to the right bytes, and then the store holds the object
    // alone: pending pieces are cleaned up (in the background; give it a few seconds).
    let response = server
        .patch(&url, 200_001, content[200_001..].to_vec())
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(server.share_and_download(id).await? == content);
    let object_len = content.len() + content.len().div_ceil(S as usize) * 28;
    eventually_async(Duration::from_secs(10), async || {
        let blobs = server.stored_blobs_of(id).await?;
        let names: Vec<(&str, usize)> = blobs.iter().map(|(n, b)| (n.as_str(), b.len())).collect();
        ensure!(
            names.len() == 1 && names[0].1 == object_len,
            "10 s after completion the store holds {names:?}, not just the {object_len}-byte \
             object"
        );
        Ok(())
    })
    .await
}

async fn a_tampered_object_is_never_served(server: TestServer) -> Result<()> {
    let content = random_bytes(40 * S as usize, 14);
    let (url, id) = shared_file(&server, &content).await?;
    let pristine = server.read_object(id).await?;

    // A flipped byte in the first segment: refused before any byte is sent.
    let mut object = pristine.clone();
    object[100] ^= 0x01;
    server.write_object(id, &object).await?;
    let response = server.client.get(&url).send().await?;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = server
        .client
        .get(&url)
        .header(RANGE, "bytes=0-0")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // A flipped byte deep in the file: the stream aborts, the client never gets it all.
    let mut object = pristine.clone();
    let deep = 30 * (S as usize + 28) + 7;
    object[deep] ^= 0x80;
    server.write_object(id, &object).await?;
    assert!(
        never_whole(&server, &url, content.len()).await,
        "a damaged file was served whole"
    );
    // Ranges that avoid the damage still work; ranges that touch it do not.
    let ok = server
        .client
        .get(&url)
        .header(RANGE, "bytes=0-99")
        .send()
        .await?;
    assert_eq!(&ok.bytes().await?[..], &content[..100]);
    let bad = server
        .client
        .get(&url)
        .header(RANGE, format!("bytes={}-{}", 30 * S, 30 * S + 1))
        .send()
        .await?;
    assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // A truncated object (its final segment missing) is never served whole either.
    server
        .write_object(id, &pristine[..pristine.len() - 28])
        .await?;
    assert!(
        never_whole(&server, &url, content.len()).await,
        "a truncated file was served whole"
    );
    Ok(())
}

/// True if a full download of `url` fails at the transport or delivers less than `len`.
async fn never_whole(server: &TestServer, url: &str, len: usize) -> bool {
    match server.client.get(url).send().await {
        Ok(response) if response.status().is_success() => match response.bytes().await {
            Ok(body) => body.len() < len,
            Err(_) => true,
        },
        _ => true,
    }
}
