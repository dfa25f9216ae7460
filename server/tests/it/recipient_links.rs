//! `POST /api/v1/shares/{id}/links` and `DELETE …/links/{link_id}`: a recipient of a share gets
//! a link of their own (the same page and bytes, downloads naming them), only recipients get
//! one, only the share's sender mints them, and each is revoked alone.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_testkit::eventually_async;
use reqwest::StatusCode;

use crate::harness::{Backend, ShareOptions, TestServer, on_both_databases, random_bytes};

/// `POST …/links {recipient}` as `key`: status and body.
async fn mint(
    server: &TestServer,
    key: &str,
    share: &str,
    recipient: serde_json::Value,
) -> Result<(StatusCode, serde_json::Value)> {
    let response = server
        .client
        .post(format!("{}/api/v1/shares/{share}/links", server.base))
        .bearer_auth(key)
        .json(&serde_json::json!({ "recipient": recipient }))
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or_default()))
}

async fn status_of(server: &TestServer, url: &str) -> Result<StatusCode> {
    Ok(server.client.get(url).send().await?.status())
}

async fn recipients_get_links_of_their_own(server: TestServer) -> Result<()> {
    let content = random_bytes(70_000, 3);
    let sender = server.sender_key().await?;
    let file = server.upload_as(&sender, &content, "scan.dcm").await?;
    let share = server
        .share_as(
            &sender,
            &[file],
            &["a@x.eu", "b@x.eu"],
            ShareOptions::default(),
        )
        .await?;
    let id = share["id"].as_str().context("id")?.to_owned();
    let share_url = share["url"].as_str().context("url")?.to_owned();

    let (status, a) = mint(&server, &sender, &id, " A@X.eu ".into()).await?;
    ensure!(status == StatusCode::CREATED, "{status} {a}");
    ensure!(a["recipient"] == "a@x.eu", "{a}");
    let a_url = a["url"].as_str().context("url")?.to_owned();
    ensure!(a_url != share_url && a_url.starts_with(&format!("{}/d/", server.base)));
    let (_, b) = mint(&server, &sender, &id, "b@x.eu".into()).await?;
    let b_url = b["url"].as_str().context("url")?.to_owned();

    // The same files behind every link; the download names its recipient.
    let bytes = server
        .client
        .get(format!("{a_url}/f/{file}"))
        .send()
        .await?;
    ensure!(bytes.status() == StatusCode::OK);
    ensure!(bytes.bytes().await?.as_ref() == content.as_slice());
    // A download is recorded when its response ends, in the background.
    let events = eventually_async(Duration::from_secs(5), async || {
        let events = server.audit_events("").await?;
        ensure!(
            events.iter().any(|e| e["kind"] == "file.downloaded"),
            "no download recorded yet"
        );
        Ok(events)
    })
    .await?;
    let download = events
        .iter()
        .find(|e| e["kind"] == "file.downloaded")
        .context("no download recorded")?;
    ensure!(
        download["details"]["recipient"] == "a@x.eu" && download["details"]["link"] == a["id"],
        "{download:#}"
    );
    ensure!(
        events
            .iter()
            .filter(|e| e["kind"] == "share_link.created")
            .count()
            == 2
    );
    let serialized = serde_json::to_string(&events)?;
    ensure!(
        !serialized.contains(a_url.rsplit('/').next().unwrap_or("-")),
        "a link token in the audit log"
    );

    // Refusals: not a recipient, not an address, someone else's share, another tenant's.
    let (status, body) = mint(&server, &sender, &id, "c@x.eu".into()).await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && body["error"] == "not_a_recipient",
        "{status} {body}"
    );
    let (status, _) = mint(&server, &sender, &id, 7.into()).await?;
    ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let colleague = server.sender_key().await?;
    let (status, _) = mint(&server, &colleague, &id, "a@x.eu".into()).await?;
    ensure!(status == StatusCode::NOT_FOUND, "another sender: {status}");
    let other = server.other_tenant_key().await?;
    let (status, _) = mint(&server, &other, &id, "a@x.eu".into()).await?;
    ensure!(status == StatusCode::NOT_FOUND, "another tenant: {status}");

    // The sender's view lists both; revoking one leaves the other and the share working.
    let view = server.share_view(&id).await?;
    ensure!(
        view["links"].as_array().map(Vec::len) == Some(2),
        "{view:#}"
    );
    let revoke = |key: String, link: String| {
        let request = server
            .client
            .delete(format!("{}/api/v1/shares/{id}/links/{link}", server.base))
            .bearer_auth(key);
        async move { Ok::<_, anyhow::Error>(request.send().await?.status()) }
    };
    let a_id = a["id"].as_str().context("id")?.to_owned();
    ensure!(revoke(other.clone(), a_id.clone()).await? == StatusCode::NOT_FOUND);
    ensure!(revoke(colleague.clone(), a_id.clone()).await? == StatusCode::NOT_FOUND);
    ensure!(revoke(sender.clone(), a_id.clone()).await? == StatusCode::NO_CONTENT);
    ensure!(revoke(sender.clone(), a_id.clone()).await? == StatusCode::NO_CONTENT);
    ensure!(status_of(&server, &a_url).await? == StatusCode::GONE);
    ensure!(status_of(&server, &b_url).await? == StatusCode::OK);
    ensure!(status_of(&server, &share_url).await? == StatusCode::OK);
    let view = server.share_view(&id).await?;
    let revoked_at = view["links"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["id"] == a["id"]))
        .map(|l| l["revoked_at"].clone());
    ensure!(revoked_at.is_some_and(|at| at.is_string()), "{view:#}");

    // A share has at most 10,000 links: fill it up to the bound, one more is refused.
    let random_id = match server.backend {
        Backend::Sqlite => "randomblob(16)",
        Backend::Postgres => "gen_random_uuid()",
    };
    server
        .execute_sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9998)
             INSERT INTO share_links (id, share_id, tenant_id, recipient, token_selector,
                                      token_hash, created_at)
             SELECT {random_id}, l.share_id, l.tenant_id, l.recipient, 'fill-' || n.i,
                    l.token_hash, l.created_at
             FROM n, share_links l WHERE l.recipient = 'b@x.eu'"
        ))
        .await?;
    let (status, body) = mint(&server, &sender, &id, "b@x.eu".into()).await?;
    ensure!(
        status == StatusCode::CONFLICT && body["error"] == "conflict",
        "the 10,001st link: {status} {body}"
    );

    // A revoked share's links all end with it, and it gets no new ones.
    let gone = server
        .client
        .delete(format!("{}/api/v1/shares/{id}", server.base))
        .bearer_auth(&sender)
        .send()
        .await?;
    ensure!(gone.status() == StatusCode::NO_CONTENT);
    ensure!(status_of(&server, &b_url).await? == StatusCode::GONE);
    let (status, body) = mint(&server, &sender, &id, "b@x.eu".into()).await?;
    ensure!(
        status == StatusCode::CONFLICT && body["error"] == "share_inactive",
        "{status} {body}"
    );
    Ok(())
}

on_both_databases!(recipients_get_links_of_their_own);
