//! Revoking a share: `DELETE /api/v1/shares/{id}` ends its link at once (page and bytes answer
//! 410), admins revoke any share of their tenant, senders only their own, and nobody reaches
//! another tenant's.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;

use crate::harness::{ShareOptions, TestServer, on_every_backend, random_bytes};

/// Shares `file` with `key` (expecting 201): the share's id and link.
async fn create_share(
    server: &TestServer,
    key: &str,
    file: uuid::Uuid,
) -> Result<(String, String)> {
    let body = server
        .share_as(key, &[file], &["a@x.eu"], ShareOptions::default())
        .await?;
    Ok((
        body["id"].as_str().context("id")?.to_owned(),
        body["url"].as_str().context("url")?.to_owned(),
    ))
}

async fn revoke(server: &TestServer, key: &str, id: &str) -> Result<StatusCode> {
    Ok(server
        .client
        .delete(format!("{}/api/v1/shares/{id}", server.base))
        .bearer_auth(key)
        .send()
        .await?
        .status())
}

async fn a_revoked_link_is_gone_at_once(server: TestServer) -> Result<()> {
    let content = random_bytes(100_000, 9);
    let file = server.upload(&content, "report.pdf").await?;
    let (id, url) = create_share(&server, &server.key, file).await?;
    let bytes = server.client.get(format!("{url}/f/{file}")).send().await?;
    ensure!(
        bytes.status() == StatusCode::OK,
        "before: {}",
        bytes.status()
    );

    // Another tenant's admin and a sender who did not create it cannot revoke it.
    let other = server.other_tenant_key().await?;
    ensure!(
        revoke(&server, &other, &id).await? == StatusCode::NOT_FOUND,
        "other tenant"
    );
    let sender = server.sender_key().await?;
    ensure!(
        revoke(&server, &sender, &id).await? == StatusCode::NOT_FOUND,
        "another sender"
    );
    ensure!(
        revoke(&server, &server.key, "not-a-uuid").await? == StatusCode::NOT_FOUND,
        "bad id"
    );
    let still = server.client.get(format!("{url}/f/{file}")).send().await?;
    ensure!(
        still.status() == StatusCode::OK,
        "refused revocations change nothing: {}",
        still.status()
    );

    ensure!(
        revoke(&server, &server.key, &id).await? == StatusCode::NO_CONTENT,
        "the admin revokes"
    );
    for target in [url.clone(), format!("{url}/f/{file}")] {
        let response = server.client.get(&target).send().await?;
        ensure!(
            response.status() == StatusCode::GONE,
            "{target} answered {}",
            response.status()
        );
    }
    // A malformed file id names nothing, whatever the link's state (found by schemathesis:
    // it was the link's 410).
    let malformed = server.client.get(format!("{url}/f/0")).send().await?;
    ensure!(
        malformed.status() == StatusCode::NOT_FOUND,
        "a malformed file id under a revoked link answered {}",
        malformed.status()
    );
    ensure!(
        revoke(&server, &server.key, &id).await? == StatusCode::NO_CONTENT,
        "idempotent"
    );

    // A sender revokes its own share (of its own upload: uploads belong to their creator).
    let own_file = server.upload_as(&sender, &content, "own.pdf").await?;
    let (own, own_url) = create_share(&server, &sender, own_file).await?;
    ensure!(
        revoke(&server, &sender, &own).await? == StatusCode::NO_CONTENT,
        "own share"
    );
    let gone = server.client.get(&own_url).send().await?;
    ensure!(
        gone.status() == StatusCode::GONE,
        "own share's page answered {}",
        gone.status()
    );
    Ok(())
}

on_every_backend!(a_revoked_link_is_gone_at_once);
