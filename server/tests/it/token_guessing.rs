//! Guessing link tokens: each client address (IPv4, or IPv6 /64) may fail a budget of
//! lookups on recipient routes, then gets 429 with `Retry-After` — before the database is
//! asked — while other addresses and valid lookups are unaffected. Loopback accepts all of
//! 127/8, so clients bound to 127.0.0.N are distinct clients. SQLite only: the budget lives
//! in the process, not in the database.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt as _;
use reqwest::{Client, Response, StatusCode};

use crate::harness::{ShareOptions, Stack, TestServer, error_code, random_bytes};

/// A client whose connections come from 127.0.0.`n`.
fn client_from(n: u8) -> Result<Client> {
    Ok(Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// A well-formed token nobody was given.
fn random_token() -> Result<String> {
    Ok(ferry::auth::mint_link_token()?.text)
}

/// The token of a share URL (`…/d/{token}`).
fn token_of(share_url: &str) -> Result<&str> {
    share_url.rsplit('/').next().context("token in share URL")
}

/// Asserts a 429 with `Retry-After` of at most an hour (every test here refills one failure
/// an hour), the recipient headers and the JSON error body.
async fn assert_too_many(response: Response) -> Result<()> {
    ensure!(
        response.status() == StatusCode::TOO_MANY_REQUESTS,
        "expected 429, got {}",
        response.status()
    );
    let wait: u64 = response
        .headers()
        .get("retry-after")
        .context("Retry-After")?
        .to_str()?
        .parse()?;
    ensure!((1..=3600).contains(&wait), "Retry-After {wait}");
    ensure!(
        response
            .headers()
            .get("referrer-policy")
            .map(|v| v.as_bytes())
            == Some(b"no-referrer"),
        "recipient headers on a 429"
    );
    ensure!(error_code(response).await? == "too_many_requests");
    Ok(())
}

#[tokio::test]
async fn a_thousand_guesses_are_404_then_429_while_other_addresses_download() -> Result<()> {
    // The default burst of 1,000; a refill of one an hour, so that a slow run cannot regain a
    // guess before the check (the default, 1,000 an hour, is one every 3.6 s).
    let server =
        TestServer::start_with_env(Stack::SqliteDisk, &[("FERRY_TOKEN_FAILURES_PER_HOUR", "1")])
            .await?;
    ensure!(
        server.state.config.token_failure_burst == 1000,
        "default burst"
    );
    let content = random_bytes(200_000, 4);
    let file = server.upload(&content, "plan.pdf").await?;
    let share = server.share(&[file]).await?;
    let valid_bytes = format!("{share}/f/{file}");

    // 1,000 random well-formed tokens from 127.0.0.1, on the page and the bytes route.
    let guesser = client_from(1)?;
    let mut urls = Vec::with_capacity(1000);
    for i in 0..1000 {
        let token = random_token()?;
        urls.push(if i % 2 == 0 {
            format!("{}/d/{token}", server.base)
        } else {
            format!("{}/d/{token}/f/{file}", server.base)
        });
    }
    let statuses: Vec<reqwest::Result<StatusCode>> = futures_util::stream::iter(urls)
        .map(|url| {
            let guesser = &guesser;
            async move { guesser.get(url).send().await.map(|r| r.status()) }
        })
        .buffer_unordered(25)
        .collect()
        .await;
    let mut not_found = 0;
    for status in statuses {
        let status = status?;
        ensure!(status == StatusCode::NOT_FOUND, "a guess answered {status}");
        not_found += 1;
    }
    ensure!(not_found == 1000);

    // The budget is spent: the next guess, and even a valid link, are refused from here
    // until one failure has refilled (an hour).
    let token = random_token()?;
    let next = guesser
        .get(format!("{}/d/{token}", server.base))
        .send()
        .await?;
    assert_too_many(next).await?;
    assert_too_many(guesser.get(&share).send().await?).await?;
    assert_too_many(guesser.get(&valid_bytes).send().await?).await?;

    // Another address is untouched: its page and bytes work.
    let other = client_from(2)?;
    let page = other.get(&share).send().await?;
    ensure!(page.status() == StatusCode::OK, "page: {}", page.status());
    let bytes = other.get(&valid_bytes).send().await?;
    ensure!(
        bytes.status() == StatusCode::OK,
        "bytes: {}",
        bytes.status()
    );
    ensure!(
        bytes.bytes().await?.as_ref() == content.as_slice(),
        "the right bytes"
    );

    // The refusal comes before any lookup: with the database gone, the spent address still
    // gets its 429, while a fresh address reaches the (closed) database.
    server.state.db.close().await;
    assert_too_many(guesser.get(&share).send().await?).await?;
    let fresh = client_from(3)?.get(&share).send().await?;
    ensure!(
        fresh.status() == StatusCode::SERVICE_UNAVAILABLE,
        "a fresh address looks the token up: {}",
        fresh.status()
    );
    Ok(())
}

#[tokio::test]
async fn only_failed_lookups_spend_the_budget() -> Result<()> {
    let server = TestServer::start_with_env(
        Stack::SqliteDisk,
        &[
            ("FERRY_TOKEN_FAILURE_BURST", "4"),
            ("FERRY_TOKEN_FAILURES_PER_HOUR", "1"),
        ],
    )
    .await?;
    let content = random_bytes(1000, 5);
    let file = server.upload(&content, "a.txt").await?;
    let share = server.share(&[file]).await?;
    let revoked = server
        .share_as(&server.key, &[file], &["b@x.eu"], ShareOptions::default())
        .await?;
    let revoked_id = revoked["id"].as_str().context("share id")?;
    let revoked_url = revoked["url"].as_str().context("share url")?;
    let deleted = server
        .client
        .delete(format!("{}/api/v1/shares/{revoked_id}", server.base))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(deleted.status() == StatusCode::NO_CONTENT, "revoke");

    // Valid lookups (page, bytes, ranges) and revoked links (410) cost nothing.
    let client = client_from(10)?;
    for _ in 0..10 {
        for url in [share.clone(), format!("{share}/f/{file}")] {
            let response = client.get(&url).send().await?;
            ensure!(response.status() == StatusCode::OK, "{url}");
        }
        let range = client
            .get(format!("{share}/f/{file}"))
            .header("Range", "bytes=0-0")
            .send()
            .await?;
        ensure!(range.status() == StatusCode::PARTIAL_CONTENT);
        let gone = client.get(revoked_url).send().await?;
        ensure!(
            gone.status() == StatusCode::GONE,
            "revoked: {}",
            gone.status()
        );
    }

    // Each kind of failed lookup costs one: a malformed token, the right selector with a
    // wrong secret, a file id that is no UUID, a file that is not in the share.
    let token = token_of(&share)?;
    let mut wrong_secret = token.to_owned();
    let last = if wrong_secret.ends_with('A') {
        'B'
    } else {
        'A'
    };
    wrong_secret.pop();
    wrong_secret.push(last);
    for url in [
        format!("{}/d/not-a-token", server.base),
        format!("{}/d/{wrong_secret}", server.base),
        format!("{share}/f/not-a-uuid"),
        format!("{share}/f/{}", uuid::Uuid::new_v4()),
    ] {
        let response = client.get(&url).send().await?;
        ensure!(response.status() == StatusCode::NOT_FOUND, "{url}");
    }
    // Four failures spend a burst of four; one failure an hour refills.
    assert_too_many(client.get(&share).send().await?).await?;
    let other = client_from(11)?.get(&share).send().await?;
    ensure!(other.status() == StatusCode::OK, "another address");
    Ok(())
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> Result<()> {
    let server = TestServer::start_with_env(
        Stack::SqliteDisk,
        &[
            ("FERRY_TOKEN_FAILURE_BURST", "1"),
            ("FERRY_TOKEN_FAILURES_PER_HOUR", "1"),
            ("FERRY_TRUSTED_PROXIES", "127.0.0.20"),
        ],
    )
    .await?;
    let file = server.upload(b"hello", "a.txt").await?;
    let share = server.share(&[file]).await?;
    let guess = format!("{}/d/{}", server.base, random_token()?);

    // Behind the proxy, each forwarded client has its own budget.
    let proxy = client_from(20)?;
    let via = |client: &str| {
        proxy
            .get(&guess)
            .header("X-Forwarded-For", format!("192.0.2.99, {client}"))
    };
    ensure!(via("203.0.113.7").send().await?.status() == StatusCode::NOT_FOUND);
    assert_too_many(via("203.0.113.7").send().await?).await?;
    let page = proxy
        .get(&share)
        .header("X-Forwarded-For", "203.0.113.8")
        .send()
        .await?;
    ensure!(page.status() == StatusCode::OK, "another forwarded client");

    // Anyone else's X-Forwarded-For is ignored: the peer is the client.
    let direct = client_from(21)?;
    for claimed in ["203.0.113.9", "203.0.113.10"] {
        let response = direct
            .get(&guess)
            .header("X-Forwarded-For", claimed)
            .send()
            .await?;
        if claimed == "203.0.113.9" {
            ensure!(response.status() == StatusCode::NOT_FOUND);
        } else {
            assert_too_many(response).await?;
        }
    }
    Ok(())
}
