//! Tenant isolation on every endpoint: tenant B's keys get 404 for tenant A's uploads, files
//! and shares, and see none of A's files, audit events or policy through the admin endpoints;
//! a sender key gets 403 on every admin endpoint; a sender sees only its own shares.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::harness::{TestServer, error_code, on_both_databases, random_bytes};

/// Sends `method url` with `key` (and tus headers, which non-tus routes ignore).
async fn call(
    server: &TestServer,
    method: Method,
    url: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> Result<reqwest::Response> {
    let mut request = server
        .client
        .request(method, url)
        .bearer_auth(key)
        .header("Tus-Resumable", "1.0.0");
    if let Some(body) = body {
        request = request.json(&body);
    }
    Ok(request.send().await?)
}

/// `GET path` with `key`, expecting 200 and JSON.
async fn get_json(server: &TestServer, path: &str, key: &str) -> Result<serde_json::Value> {
    let response = call(
        server,
        Method::GET,
        &format!("{}{path}", server.base),
        key,
        None,
    )
    .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "GET {path} answered {}",
        response.status()
    );
    Ok(response.json().await?)
}

async fn another_tenant_sees_nothing_of_this_one(server: TestServer) -> Result<()> {
    let base = server.base.clone();
    let content = random_bytes(100_000, 51);
    let file = server.upload(&content, "a-secret.pdf").await?;
    let unfinished = server.create(1 << 20, "a-unfinished.bin").await?;
    let share = server.share_created(&[file]).await?;
    let share_id = share["id"].as_str().context("share id")?.to_owned();
    let policy = call(
        &server,
        Method::PUT,
        &format!("{base}/api/v1/admin/policy"),
        &server.key,
        Some(serde_json::json!({"default_days": 2, "max_days": 5})),
    )
    .await?;
    ensure!(policy.status() == StatusCode::OK, "A's policy set");

    let other = server.other_tenant_key().await?;
    let file_url = format!("{base}/files/{file}");
    let not_found = [
        (Method::HEAD, unfinished.clone(), None),
        (Method::PATCH, unfinished.clone(), None),
        (Method::DELETE, unfinished.clone(), None),
        (Method::HEAD, file_url.clone(), None),
        (Method::DELETE, file_url.clone(), None),
        (Method::GET, format!("{base}/api/v1/files/{file}"), None),
        (
            Method::GET,
            format!("{base}/api/v1/shares/{share_id}"),
            None,
        ),
        (
            Method::DELETE,
            format!("{base}/api/v1/shares/{share_id}"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/api/v1/shares"),
            Some(serde_json::json!({"files": [file], "recipients": ["b@y.eu"]})),
        ),
    ];
    for (method, url, body) in not_found {
        let what = format!("{method} {url}");
        let mut request = server
            .client
            .request(method.clone(), &url)
            .bearer_auth(&other)
            .header("Tus-Resumable", "1.0.0");
        if method == Method::PATCH {
            request = request
                .header("Upload-Offset", "0")
                .header("Content-Type", "application/offset+octet-stream")
                .body(vec![0u8; 10]);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        ensure!(
            response.status() == StatusCode::NOT_FOUND,
            "{what} with another tenant's key answered {}",
            response.status()
        );
    }

    // B's admin views hold nothing of A's.
    let files = get_json(&server, "/api/v1/admin/files", &other).await?;
    ensure!(
        files["files"].as_array().is_some_and(Vec::is_empty),
        "B lists no files: {files}"
    );
    let audit = call(
        &server,
        Method::GET,
        &format!("{base}/api/v1/admin/audit"),
        &other,
        None,
    )
    .await?
    .text()
    .await?;
    for id in [file.to_string(), share_id.clone()] {
        ensure!(!audit.contains(&id), "B's audit log mentions A's {id}");
    }
    let b_policy = get_json(&server, "/api/v1/admin/policy", &other).await?;
    ensure!(
        b_policy["max_days"] == 90,
        "B keeps its own (default) policy: {b_policy}"
    );

    // And everything of A's is still there for A.
    let a_files = get_json(&server, "/api/v1/admin/files", &server.key).await?;
    ensure!(
        a_files["files"][0]["id"] == file.to_string(),
        "A lists its file: {a_files}"
    );
    let a_policy = get_json(&server, "/api/v1/admin/policy", &server.key).await?;
    ensure!(a_policy["max_days"] == 5, "A's policy: {a_policy}");
    let downloaded = server
        .client
        .get(format!(
            "{}/f/{file}",
            share["url"].as_str().context("url")?
        ))
        .send()
        .await?
        .bytes()
        .await?;
    ensure!(downloaded.as_ref() == content.as_slice(), "A's link works");
    Ok(())
}

async fn sender_keys_are_refused_on_admin_endpoints(server: TestServer) -> Result<()> {
    let base = server.base.clone();
    let sender = server.sender_key().await?;
    let admin_only = [
        (Method::GET, "/api/v1/admin/policy", None),
        (
            Method::PUT,
            "/api/v1/admin/policy",
            Some(serde_json::json!({"default_days": 1, "max_days": 1})),
        ),
        (Method::GET, "/api/v1/admin/files", None),
        (Method::GET, "/api/v1/admin/audit", None),
    ];
    for (method, path, body) in admin_only {
        let response = call(
            &server,
            method.clone(),
            &format!("{base}{path}"),
            &sender,
            body,
        )
        .await?;
        ensure!(
            response.status() == StatusCode::FORBIDDEN,
            "{method} {path} with a sender key answered {}",
            response.status()
        );
        ensure!(
            error_code(response).await? == "forbidden",
            "{method} {path}"
        );
    }
    let unchanged = get_json(&server, "/api/v1/admin/policy", &server.key).await?;
    ensure!(
        unchanged["max_days"] == 90,
        "the sender's PUT changed nothing"
    );

    // Senders see their own shares, not the admin's (nor another sender's).
    let file = server.upload(&random_bytes(1000, 52), "x.bin").await?;
    let admins = server.share_created(&[file]).await?;
    let admins_share = admins["id"].as_str().context("id")?;
    let seen = call(
        &server,
        Method::GET,
        &format!("{base}/api/v1/shares/{admins_share}"),
        &sender,
        None,
    )
    .await?;
    ensure!(
        seen.status() == StatusCode::NOT_FOUND,
        "a sender reading the admin's share: {}",
        seen.status()
    );
    let own = call(
        &server,
        Method::GET,
        &format!("{base}/api/v1/shares/{admins_share}"),
        &server.key,
        None,
    )
    .await?;
    ensure!(own.status() == StatusCode::OK, "the admin reads its share");
    let garbage = call(
        &server,
        Method::GET,
        &format!("{base}/api/v1/shares/{}", Uuid::new_v4()),
        &server.key,
        None,
    )
    .await?;
    ensure!(garbage.status() == StatusCode::NOT_FOUND, "unknown share");
    Ok(())
}

on_both_databases!(
    another_tenant_sees_nothing_of_this_one,
    sender_keys_are_refused_on_admin_endpoints,
);
