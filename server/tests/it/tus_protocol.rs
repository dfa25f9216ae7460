//! The tus protocol against a real server: the happy paths of every extension and every
//! kind of bad input, which must get a clear error and leave the upload intact. Every
//! scenario runs three times: on SQLite with the disk store (`NAME::sqlite`), on PostgreSQL
//! with the disk store (`NAME::postgres`), and on PostgreSQL with the S3 store on a real
//! Garage (`NAME::postgres_garage`).

use std::time::Duration;

use anyhow::{Result, ensure};
use ferry_testkit::eventually_async;
use reqwest::{Method, StatusCode};

use crate::harness::{
    TestServer, b64, error_code, file_id, header_u64, location, on_every_backend, random_bytes,
};

on_every_backend!(
    options_advertises_extensions_and_limits,
    resumes_across_patches_that_split_segments,
    creation_with_upload_and_deferred_length,
    checksums_are_verified_and_a_mismatch_stores_nothing,
    bad_requests_get_clear_errors_and_change_nothing,
    termination_shreds_the_upload,
    keys_are_required_and_tenants_are_isolated,
    racing_patches_never_corrupt_an_upload,
    empty_uploads_complete_at_creation,
    a_stalled_body_commits_what_arrived,
    a_client_that_vanishes_mid_body_keeps_what_arrived,
);

async fn options_advertises_extensions_and_limits(server: TestServer) -> Result<()> {
    let response = server
        .client
        .request(Method::OPTIONS, format!("{}/files", server.base))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let h = response.headers();
    assert_eq!(h["tus-version"], "1.0.0");
    let extensions = h["tus-extension"].to_str()?;
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
    ] {
        assert!(
            extensions.split(',').any(|e| e == ext),
            "missing {ext} in {extensions}"
        );
    }
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256,blake3");
    assert_eq!(h["tus-max-size"], (5u64 << 40).to_string().as_str());
    Ok(())
}

async fn resumes_across_patches_that_split_segments(server: TestServer) -> Result<()> {
    let content = random_bytes(200_000, 1);
    let url = server.create(content.len() as u64, "a.bin").await?;
    let mut offset = 0;
    for piece in [1usize, 65_534, 3, 70_000, 12] {
        let response = server
            .patch(
                &url,
                offset,
                content[offset as usize..offset as usize + piece].to_vec(),
            )
            .await?;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        offset += piece as u64;
        assert_eq!(header_u64(&response, "upload-offset")?, offset);
        assert!(
            response.headers().contains_key("upload-expires"),
            "expiration extension"
        );
        assert_eq!(server.head_offset(&url).await?, offset);
    }
    let response = server
        .patch(&url, offset, content[offset as usize..].to_vec())
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let status: serde_json::Value = server.file_status(&url).await?;
    assert_eq!(status["state"], "complete");
    assert_eq!(status["size"], 200_000);
    assert_eq!(status["blake3"], blake3::hash(&content).to_hex().as_str());
    Ok(())
}

async fn creation_with_upload_and_deferred_length(server: TestServer) -> Result<()> {
    let content = random_bytes(100_000, 2);
    // Creation with upload: the first 70,000 bytes ride on the POST.
    let response = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Defer-Length", "1")
        .header("Content-Type", "application/offset+octet-stream")
        .body(content[..70_000].to_vec())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header_u64(&response, "upload-offset")?, 70_000);
    let url = location(&response)?;
    let head = server.tus(Method::HEAD, &url).send().await?;
    assert_eq!(head.headers()["upload-defer-length"], "1");
    // The length arrives with the last PATCH.
    let response = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", 70_000)
        .header("Upload-Length", 100_000)
        .header("Content-Type", "application/offset+octet-stream")
        .body(content[70_000..].to_vec())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let body = server.share_and_download(file_id(&url)?).await?;
    assert_eq!(&body[..], &content[..]);
    Ok(())
}

async fn checksums_are_verified_and_a_mismatch_stores_nothing(server: TestServer) -> Result<()> {
    use sha1::Digest as _;
    let content = random_bytes(150_000, 3);
    let url = server.create(content.len() as u64, "c.bin").await?;
    let piece = &content[..100_000];
    let good = [
        format!("sha1 {}", b64(&sha1::Sha1::digest(piece))),
        format!("sha256 {}", b64(&sha2::Sha256::digest(piece))),
        format!("blake3 {}", b64(blake3::hash(piece).as_bytes())),
    ];
    for header in &good {
        let mut wrong = piece.to_vec();
        wrong[99_999] ^= 1;
        let response = server
            .tus(Method::PATCH, &url)
            .header("Upload-Offset", 0)
            .header("Upload-Checksum", header)
            .header("Content-Type", "application/offset+octet-stream")
            .body(wrong)
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 460, "{header}");
        assert_eq!(error_code(response).await?, "checksum_mismatch");
        assert_eq!(
            server.head_offset(&url).await?,
            0,
            "the offset does not move"
        );
    }
    let response = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", 0)
        .header("Upload-Checksum", &good[2])
        .header("Content-Type", "application/offset+octet-stream")
        .body(piece.to_vec())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", 100_000)
        .header("Upload-Checksum", "md5 AAAAAAAAAAAAAAAAAAAAAA==")
        .header("Content-Type", "application/offset+octet-stream")
        .body(content[100_000..].to_vec())
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "unsupported algorithm"
    );
    let response = server
        .patch(&url, 100_000, content[100_000..].to_vec())
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let status: serde_json::Value = server.file_status(&url).await?;
    assert_eq!(
        status["blake3"],
        blake3::hash(&content).to_hex().as_str(),
        "rejected bodies left no trace"
    );
    Ok(())
}

async fn bad_requests_get_clear_errors_and_change_nothing(server: TestServer) -> Result<()> {
    let content = random_bytes(1000, 4);
    let url = server.create(1000, "bad.bin").await?;
    assert_eq!(
        server
            .patch(&url, 0, content[..100].to_vec())
            .await?
            .status(),
        StatusCode::NO_CONTENT
    );
    bad_patches_are_refused(&server, &url, &content).await?;
    bad_creations_are_refused(&server).await?;
    unknown_uploads_are_not_found(&server).await?;
    the_upload_did_not_move_and_still_completes(&server, &url, &content).await
}

/// On an upload at offset 100 of 1000: a wrong offset, a wrong content type, too much data
/// (declared or streamed), a missing `Tus-Resumable`.
async fn bad_patches_are_refused(server: &TestServer, url: &str, content: &[u8]) -> Result<()> {
    // Wrong offset.
    let response = server.patch(url, 50, content[50..150].to_vec()).await?;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await?, "offset_mismatch");
    // Wrong content type.
    let response = server
        .tus(Method::PATCH, url)
        .header("Upload-Offset", 100)
        .header("Content-Type", "application/octet-stream")
        .body(content[100..200].to_vec())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(response).await?, "unsupported_media_type");
    // More data than Upload-Length (declared by Content-Length).
    let response = server.patch(url, 100, vec![7u8; 901]).await?;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // More data than Upload-Length, streamed without Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1u8; 600]), Ok(vec![2u8; 600])];
    let response = server
        .tus(Method::PATCH, url)
        .header("Upload-Offset", 100)
        .header("Content-Type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    assert!(
        [StatusCode::PAYLOAD_TOO_LARGE, StatusCode::BAD_REQUEST].contains(&response.status()),
        "{}",
        response.status()
    );
    // Missing Tus-Resumable.
    let response = server
        .client
        .head(url)
        .bearer_auth(&server.key)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    Ok(())
}

/// Malformed metadata, neither length nor deferral, a length above `Tus-Max-Size`.
async fn bad_creations_are_refused(server: &TestServer) -> Result<()> {
    // Malformed metadata at creation.
    let response = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Length", 10)
        .header("Upload-Metadata", "filename not*base64")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Neither length nor deferral; a length above Tus-Max-Size.
    let response = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Length", (5u64 << 40) + 1)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    Ok(())
}

async fn unknown_uploads_are_not_found(server: &TestServer) -> Result<()> {
    let response = server
        .patch(
            &format!("{}/files/{}", server.base, uuid::Uuid::new_v4()),
            0,
            vec![1],
        )
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = server
        .patch(&format!("{}/files/not-a-uuid", server.base), 0, vec![1])
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// None of the bad requests moved the upload; it still completes correctly.
async fn the_upload_did_not_move_and_still_completes(
    server: &TestServer,
    url: &str,
    content: &[u8],
) -> Result<()> {
    assert_eq!(server.head_offset(url).await?, 100);
    let stored_bytes = {
        let mut c = content.to_vec();
        c.truncate(1000);
        c
    };
    assert_eq!(
        server
            .patch(url, 100, stored_bytes[100..].to_vec())
            .await?
            .status(),
        StatusCode::NO_CONTENT
    );
    let body = server.share_and_download(file_id(url)?).await?;
    assert_eq!(&body[..], &stored_bytes[..]);
    Ok(())
}

async fn termination_shreds_the_upload(server: TestServer) -> Result<()> {
    let url = server.create(100_000, "t.bin").await?;
    assert_eq!(
        server
            .patch(&url, 0, random_bytes(70_000, 5))
            .await?
            .status(),
        StatusCode::NO_CONTENT
    );
    let id = file_id(&url)?;
    assert!(
        server.store_holds_anything_of(id).await?,
        "the acknowledged bytes are in the store ({:?})",
        server.stack
    );
    let response = server.tus(Method::DELETE, &url).send().await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        !server.store_holds_anything_of(id).await?,
        "object deleted, with anything an unfinished upload left ({:?})",
        server.stack
    );
    assert!(
        server
            .state
            .db
            .wrapped_dek(server.tenant_id, id)
            .await
            .is_err(),
        "key shredded"
    );
    assert_eq!(
        server.tus(Method::HEAD, &url).send().await?.status(),
        StatusCode::GONE
    );
    assert_eq!(
        server.patch(&url, 70_000, vec![1]).await?.status(),
        StatusCode::GONE
    );
    assert_eq!(
        server.tus(Method::DELETE, &url).send().await?.status(),
        StatusCode::GONE
    );
    Ok(())
}

async fn keys_are_required_and_tenants_are_isolated(server: TestServer) -> Result<()> {
    let url = server.create(10, "mine.bin").await?;
    let id = file_id(&url)?;

    let anonymous = server
        .client
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let anonymous = server
        .client
        .get(format!("{}/api/v1/files/{id}", server.base))
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(anonymous).await?, "unauthorized");
    let forged = format!("{}x", &server.key[..server.key.len() - 1]);
    for key in [forged.as_str(), "fk_short", "not-a-key"] {
        let response = server
            .client
            .head(&url)
            .bearer_auth(key)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key}");
    }
    let response = server
        .client
        .post(format!("{}/files", server.base))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", 1)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let other = server.other_tenant_key().await?;
    let as_other = |method: Method, url: &str| {
        server
            .client
            .request(method, url)
            .bearer_auth(&other)
            .header("Tus-Resumable", "1.0.0")
    };
    assert_eq!(
        as_other(Method::HEAD, &url).send().await?.status(),
        StatusCode::NOT_FOUND
    );
    let response = as_other(Method::PATCH, &url)
        .header("Upload-Offset", 0)
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        as_other(Method::DELETE, &url).send().await?.status(),
        StatusCode::NOT_FOUND
    );
    let files_url = format!("{}/api/v1/files/{id}", server.base);
    assert_eq!(
        as_other(Method::GET, &files_url).send().await?.status(),
        StatusCode::NOT_FOUND
    );
    // The owner still has it, untouched.
    assert_eq!(server.head_offset(&url).await?, 0);
    assert_eq!(
        server.patch(&url, 0, vec![9u8; 10]).await?.status(),
        StatusCode::NO_CONTENT
    );
    let response = as_other(Method::POST, &format!("{}/api/v1/shares", server.base))
        .json(&serde_json::json!({"files": [id], "recipients": ["a@x.eu"]}))
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "another tenant cannot share it (nor learn that it exists)"
    );
    Ok(())
}

async fn racing_patches_never_corrupt_an_upload(server: TestServer) -> Result<()> {
    let len = 4 << 20;
    let a = random_bytes(len, 6);
    let b = random_bytes(len, 7);
    let url = server.create(len as u64, "race.bin").await?;
    // Both bodies trickle in, so the two requests overlap.
    let slow = |content: Vec<u8>| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = content
            .chunks(64 * 1024 + 17)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures_util::StreamExt::then(
            futures_util::stream::iter(chunks),
            |c| async {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                c
            },
        ))
    };
    let send = |content: Vec<u8>| {
        server
            .tus(Method::PATCH, &url)
            .header("Upload-Offset", 0)
            .header("Content-Type", "application/offset+octet-stream")
            .body(slow(content))
            .send()
    };
    let (ra, rb) = tokio::join!(send(a.clone()), async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        send(b.clone()).await
    });
    eprintln!(
        "race outcomes: {:?} / {:?}",
        ra.as_ref()
            .map(|r| (r.status(), r.headers().get("upload-offset").cloned())),
        rb.as_ref()
            .map(|r| (r.status(), r.headers().get("upload-offset").cloned()))
    );
    let mut winner: Option<(u64, &Vec<u8>)> = None;
    for (response, content) in [(ra, &a), (rb, &b)] {
        match response {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                let offset = header_u64(&r, "upload-offset")?;
                if winner.is_none_or(|(o, _)| offset > o) {
                    winner = Some((offset, content));
                }
            }
            Ok(r) => assert!(
                [StatusCode::CONFLICT, StatusCode::LOCKED].contains(&r.status()),
                "the loser gets 409 or 423, not {}",
                r.status()
            ),
            // A request stopped mid-body may see its connection closed; that is fine.
            Err(e) => eprintln!("a racing request failed at the transport: {e}"),
        }
    }
    let (offset, content) = winner.expect("one request wins");
    assert_eq!(server.head_offset(&url).await?, offset);
    if offset < len as u64 {
        let rest = content[offset as usize..].to_vec();
        assert_eq!(
            server.patch(&url, offset, rest).await?.status(),
            StatusCode::NO_CONTENT
        );
    }
    let body = server.share_and_download(file_id(&url)?).await?;
    assert!(
        body[..] == content[..],
        "the stored file is exactly the winner's bytes"
    );
    Ok(())
}

async fn empty_uploads_complete_at_creation(server: TestServer) -> Result<()> {
    let url = server.create(0, "empty.txt").await?;
    let status: serde_json::Value = server.file_status(&url).await?;
    assert_eq!(status["state"], "complete");
    assert_eq!(status["blake3"], blake3::hash(b"").to_hex().as_str());
    let share = server.share(&[file_id(&url)?]).await?;
    let response = server
        .client
        .get(format!("{share}/f/{}", file_id(&url)?))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await?.is_empty());
    Ok(())
}

async fn a_stalled_body_commits_what_arrived(server: TestServer) -> Result<()> {
    let content = random_bytes(300_000, 8);
    let url = server.create(content.len() as u64, "stall.bin").await?;
    let (tx, patch) = server.streamed_patch(&url, 0);
    tx.send(Ok(content[..100_001].to_vec())).await?;
    // While the body is stalled, the server commits what it has (HEAD shows it).
    eventually_async(Duration::from_secs(5), async || {
        let seen = server.head_offset(&url).await?;
        ensure!(
            seen == 100_001,
            "a stalled PATCH commits the bytes it received: HEAD says {seen}"
        );
        Ok(())
    })
    .await?;
    tx.send(Ok(content[100_001..].to_vec())).await?;
    drop(tx);
    let response = patch.await??;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_u64(&response, "upload-offset")?, 300_000);
    let body = server.share_and_download(file_id(&url)?).await?;
    assert!(body[..] == content[..]);
    Ok(())
}

async fn a_client_that_vanishes_mid_body_keeps_what_arrived(server: TestServer) -> Result<()> {
    let content = random_bytes(500_000, 9);
    let url = server.create(content.len() as u64, "gone.bin").await?;
    let (tx, patch) = server.streamed_patch(&url, 0);
    tx.send(Ok(content[..200_001].to_vec())).await?;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    patch.abort(); // the connection closes mid-body
    let started = std::time::Instant::now();
    let mut seen = 0;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        seen = server.head_offset(&url).await?;
        if seen == 200_001 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("offset {seen} after {:?}", started.elapsed());
    assert_eq!(
        seen, 200_001,
        "bytes that reached the server before the client vanished are kept"
    );
    assert_eq!(
        server
            .patch(&url, seen, content[seen as usize..].to_vec())
            .await?
            .status(),
        StatusCode::NO_CONTENT
    );
    let body = server.share_and_download(file_id(&url)?).await?;
    assert!(body[..] == content[..]);
    Ok(())
}
