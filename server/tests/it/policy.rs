//! Tenant policy over real HTTP on SQLite and PostgreSQL: admins read and set it within
//! Ferry's limits, senders are refused, tenants never see each other's, and shares and uploads
//! obey it.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::{TestServer, b64, location, on_both_databases, random_bytes};

async fn get_policy(server: &TestServer, key: &str) -> Result<(StatusCode, Value)> {
    let response = server
        .client
        .get(format!("{}/api/v1/admin/policy", server.base))
        .bearer_auth(key)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn put_policy(server: &TestServer, key: &str, policy: &Value) -> Result<(StatusCode, Value)> {
    let response = server
        .client
        .put(format!("{}/api/v1/admin/policy", server.base))
        .bearer_auth(key)
        .json(policy)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn share(server: &TestServer, body: &Value) -> Result<(StatusCode, Value)> {
    let response = server
        .client
        .post(format!("{}/api/v1/shares", server.base))
        .bearer_auth(&server.key)
        .json(body)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn admins_set_the_policy_within_ferry_s_limits(server: TestServer) -> Result<()> {
    let (status, defaults) = get_policy(&server, &server.key).await?;
    ensure!(status == StatusCode::OK, "GET answered {status}");
    ensure!(
        defaults
            == json!({"default_days": 14, "max_days": 90, "max_upload_bytes": null,
                      "allowed_recipient_domains": null, "max_downloads_per_file": null,
                      "relay_hold_hours": null}),
        "defaults: {defaults}"
    );

    let policy = json!({"default_days": 7, "max_days": 30, "max_upload_bytes": 1_000_000,
                        "allowed_recipient_domains": ["Klinik.de", "klinik.de"],
                        "max_downloads_per_file": 3, "relay_hold_hours": 24});
    let (status, saved) = put_policy(&server, &server.key, &policy).await?;
    ensure!(status == StatusCode::OK, "PUT answered {status}: {saved}");
    ensure!(
        saved["allowed_recipient_domains"] == json!(["klinik.de"]),
        "normalised: {saved}"
    );
    let (_, read) = get_policy(&server, &server.key).await?;
    ensure!(read == saved, "read back {read}, saved {saved}");

    for (bad, names) in [
        (
            json!({"default_days": 7, "max_days": 91, "max_upload_bytes": null, "allowed_recipient_domains": null}),
            "90",
        ),
        (
            json!({"default_days": 31, "max_days": 30, "max_upload_bytes": null, "allowed_recipient_domains": null}),
            "default_days",
        ),
        (
            json!({"default_days": 1, "max_days": 1, "max_upload_bytes": 0, "allowed_recipient_domains": null}),
            "max_upload_bytes",
        ),
        (
            json!({"default_days": 1, "max_days": 1, "max_upload_bytes": null, "allowed_recipient_domains": ["no domain"]}),
            "domain",
        ),
        (
            json!({"default_days": 1, "max_days": 1, "max_downloads_per_file": 0}),
            "max_downloads_per_file",
        ),
        (
            json!({"default_days": 1, "max_days": 1, "relay_hold_hours": 169}),
            "relay_hold_hours",
        ),
    ] {
        let (status, error) = put_policy(&server, &server.key, &bad).await?;
        ensure!(
            status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} answered {status}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        ensure!(
            error["error"] == "invalid_policy" && message.contains(names),
            "{bad}: {error}"
        );
    }
    let (_, unchanged) = get_policy(&server, &server.key).await?;
    ensure!(
        unchanged == saved,
        "refused policies change nothing: {unchanged}"
    );

    // Senders may not read or set it; another tenant has its own.
    let sender = server.sender_key().await?;
    let (status, error) = get_policy(&server, &sender).await?;
    ensure!(
        status == StatusCode::FORBIDDEN && error["error"] == "forbidden",
        "{status} {error}"
    );
    let (status, _) = put_policy(&server, &sender, &policy).await?;
    ensure!(
        status == StatusCode::FORBIDDEN,
        "a sender's PUT answered {status}"
    );
    let other = server.other_tenant_key().await?;
    let (status, theirs) = get_policy(&server, &other).await?;
    ensure!(
        status == StatusCode::OK && theirs == defaults,
        "the other tenant sees {theirs}"
    );
    Ok(())
}

async fn shares_and_uploads_obey_the_policy(server: TestServer) -> Result<()> {
    let file = server.upload(&random_bytes(1000, 3), "a.bin").await?;
    let policy = json!({"default_days": 3, "max_days": 10, "max_upload_bytes": 5000,
                        "allowed_recipient_domains": ["klinik.de"]});
    let (status, _) = put_policy(&server, &server.key, &policy).await?;
    ensure!(status == StatusCode::OK, "PUT answered {status}");

    let before = OffsetDateTime::now_utc();
    let (status, created) = share(
        &server,
        &json!({"files": [file], "recipients": ["dr.x@klinik.de"], "retention_days": 365}),
    )
    .await?;
    ensure!(
        status == StatusCode::CREATED,
        "share answered {status}: {created}"
    );
    let expires = OffsetDateTime::parse(
        created["expires_at"].as_str().context("expires_at")?,
        &Rfc3339,
    )?;
    ensure!(
        expires <= OffsetDateTime::now_utc() + time::Duration::days(10)
            && expires >= before + time::Duration::days(10) - time::Duration::minutes(1),
        "365 days clamped to the policy's 10: {expires}"
    );
    let (_, default) = share(
        &server,
        &json!({"files": [file], "recipients": ["a@klinik.de"]}),
    )
    .await?;
    let expires = OffsetDateTime::parse(
        default["expires_at"].as_str().context("expires_at")?,
        &Rfc3339,
    )?;
    ensure!(
        expires <= OffsetDateTime::now_utc() + time::Duration::days(3),
        "no retention asked: the policy's default of 3 days, got {expires}"
    );
    let (status, refused) = share(
        &server,
        &json!({"files": [file], "recipients": ["a@gmail.com"]}),
    )
    .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "outside domain answered {status}"
    );
    ensure!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a@gmail.com"),
        "{refused}"
    );

    // Uploads beyond the tenant's maximum: refused at creation, and when a deferred length
    // is declared.
    let too_big = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Length", 5001)
        .header("Upload-Metadata", format!("filename {}", b64(b"big.bin")))
        .send()
        .await?;
    ensure!(
        too_big.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "creation answered {}",
        too_big.status()
    );
    let deferred = server
        .tus(Method::POST, &format!("{}/files", server.base))
        .header("Upload-Defer-Length", "1")
        .send()
        .await?;
    ensure!(
        deferred.status() == StatusCode::CREATED,
        "deferred creation answered {}",
        deferred.status()
    );
    let url = location(&deferred)?;
    let declared = server
        .tus(Method::PATCH, &url)
        .header("Upload-Offset", 0)
        .header("Upload-Length", 6000)
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await?;
    ensure!(
        declared.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "declaring 6000 answered {}",
        declared.status()
    );
    let fits = server.upload(&random_bytes(5000, 4), "fits.bin").await;
    ensure!(fits.is_ok(), "an upload at the maximum is fine: {fits:?}");
    Ok(())
}

on_both_databases!(
    admins_set_the_policy_within_ferry_s_limits,
    shares_and_uploads_obey_the_policy,
);
