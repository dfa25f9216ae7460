//! The recipient's page against a real server on both databases: in the recipient's language
//! (by `Accept-Language`, and by the page's switch, which keeps the link), every name escaped,
//! under a CSP that allows nothing but the page's own style and `data:` images; the pages for
//! links that do not work say which case it is, in the recipient's language, and what to do;
//! tenant admins set the name and logo their recipients see.

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_SECURITY_POLICY, VARY};

use crate::harness::{TestServer, on_both_databases, random_bytes};

on_both_databases!(
    the_page_speaks_the_recipients_language,
    links_that_do_not_work_say_why_in_every_language,
    admins_brand_their_tenants_pages,
);

async fn page(server: &TestServer, url: &str, language: &str) -> Result<(StatusCode, String)> {
    let response = server
        .client
        .get(url)
        .header(ACCEPT_LANGUAGE, language)
        .send()
        .await?;
    let status = response.status();
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .context("a CSP")?
        .to_str()?
        .to_owned();
    ensure!(
        csp.starts_with("default-src 'none'; style-src 'sha256-") && !csp.contains("unsafe"),
        "{csp}"
    );
    ensure!(response.headers()["x-robots-tag"] == "noindex, nofollow");
    ensure!(response.headers()["referrer-policy"] == "no-referrer");
    Ok((status, response.text().await?))
}

async fn the_page_speaks_the_recipients_language(server: TestServer) -> Result<()> {
    let hostile = server
        .upload(&random_bytes(1536, 1), "<script>alert(1)</script>.pdf")
        .await?;
    let plain = server.upload(&random_bytes(100, 2), "scan.dcm").await?;
    let link = server.share(&[hostile, plain]).await?;
    let cases = [
        ("en-GB,en;q=0.9", "en", "Files for you", "Download"),
        (
            "nl-NL,nl;q=0.9,en;q=0.5",
            "nl",
            "Bestanden voor u",
            "Downloaden",
        ),
        ("de-AT, en;q=0.3", "de", "Dateien für Sie", "Herunterladen"),
        ("fr-BE", "fr", "Des fichiers pour vous", "Télécharger"),
        ("es, it", "en", "Files for you", "Download"),
    ];
    for (accept, lang, title, button) in cases {
        let (status, html) = page(&server, &link, accept).await?;
        ensure!(status == StatusCode::OK, "{accept}: {status}");
        ensure!(
            html.contains(&format!("<html lang=\"{lang}\">")),
            "{accept}"
        );
        ensure!(
            html.contains(&format!("<h1>{title}</h1>")),
            "{accept}: {html}"
        );
        ensure!(html.contains(&format!(">{button}</a>")), "{accept}");
        ensure!(
            !html.contains("<script"),
            "{accept}: markup from a file name: {html}"
        );
        ensure!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;.pdf"),
            "{accept}: the name is shown as text"
        );
        ensure!(html.contains("/all.zip\""), "{accept}: download all");
    }
    // The switch: `?lang=` wins over the header and keeps the link.
    let (_, html) = page(&server, &format!("{link}?lang=fr"), "de").await?;
    ensure!(
        html.contains("<html lang=\"fr\">"),
        "the switch chose French"
    );
    ensure!(
        html.contains("href=\"?lang=nl\""),
        "the switch offers Dutch on the same link"
    );
    let response = server.client.get(&link).send().await?;
    ensure!(response.headers()[VARY] == "Accept-Language");
    Ok(())
}

async fn links_that_do_not_work_say_why_in_every_language(server: TestServer) -> Result<()> {
    server
        .set_policy(
            serde_json::json!({"default_days": 7, "max_days": 30, "max_downloads_per_file": 1}),
        )
        .await?;
    let base = server.base.clone();
    let (status, unknown) = page(
        &server,
        &format!("{base}/d/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "nl",
    )
    .await?;
    ensure!(status == StatusCode::NOT_FOUND && unknown.contains("Deze link werkt niet"));
    ensure!(
        unknown.contains("vraag de afzender om een nieuwe link"),
        "{unknown}"
    );

    // Exhausted: the one allowed copy went out.
    let id = server.upload(&random_bytes(1000, 3), "once.pdf").await?;
    let share = server.share_created(&[id]).await?;
    let link = share["url"].as_str().context("url")?.to_owned();
    let file = format!("{link}/f/{id}");
    ensure!(server.client.get(&file).send().await?.status() == StatusCode::OK);
    let (status, exhausted) = page(&server, &file, "de").await?;
    ensure!(status == StatusCode::GONE && exhausted.contains("Download-Grenze erreicht"));

    // Revoked by its sender.
    let share_id = share["id"].as_str().context("id")?;
    let revoked = server
        .client
        .delete(format!("{base}/api/v1/shares/{share_id}"))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(revoked.status() == StatusCode::NO_CONTENT);
    let (status, html) = page(&server, &link, "fr").await?;
    ensure!(
        status == StatusCode::GONE && html.contains("Ce lien a été retiré"),
        "{html}"
    );

    // Expired.
    let id = server.upload(&random_bytes(10, 4), "late.pdf").await?;
    let link = server.share(&[id]).await?;
    server
        .execute_sql("UPDATE shares SET ended_at = expires_at WHERE revoked_at IS NULL")
        .await?;
    let (status, html) = page(&server, &link, "en").await?;
    ensure!(
        status == StatusCode::GONE && html.contains("This link has expired"),
        "{html}"
    );
    ensure!(html.contains("Ask the sender to share them again"));
    Ok(())
}

async fn admins_brand_their_tenants_pages(server: TestServer) -> Result<()> {
    let url = format!("{}/api/v1/admin/branding", server.base);
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    let logo = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    let body = serde_json::json!({"display_name": "Ziekenhuis <Rivierenland>", "logo": logo});

    let sender = server.sender_key().await?;
    let refused = server
        .client
        .put(&url)
        .bearer_auth(&sender)
        .json(&body)
        .send()
        .await?;
    ensure!(
        refused.status() == StatusCode::FORBIDDEN,
        "a sender key: {}",
        refused.status()
    );
    for bad in [
        serde_json::json!({"display_name": "", "logo": null}),
        serde_json::json!({"display_name": null, "logo": "data:image/svg+xml;base64,PHN2Zy8+"}),
        serde_json::json!({"display_name": "x", "logo": null, "colour": "red"}),
        // serde would read a struct from an array; the API takes objects only (schemathesis).
        serde_json::json!([null, null]),
    ] {
        let response = server
            .client
            .put(&url)
            .bearer_auth(&server.key)
            .json(&bad)
            .send()
            .await?;
        ensure!(
            response.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            response.status()
        );
    }
    let stored = server
        .client
        .put(&url)
        .bearer_auth(&server.key)
        .json(&body)
        .send()
        .await?;
    ensure!(stored.status() == StatusCode::OK, "{}", stored.status());
    let read: serde_json::Value = server
        .client
        .get(&url)
        .bearer_auth(&server.key)
        .send()
        .await?
        .json()
        .await?;
    ensure!(read == body, "read back: {read}");

    let id = server.upload(&random_bytes(10, 5), "a.pdf").await?;
    let link = server.share(&[id]).await?;
    let (_, html) = page(&server, &link, "nl").await?;
    ensure!(html.contains("Ziekenhuis &#60;Rivierenland&#62;"), "{html}");
    ensure!(
        html.contains(&format!("<img src=\"{logo}\"")),
        "the logo as a data: URL"
    );

    // A withdrawn link of the tenant's is still its page; an unknown one names nobody.
    let share_id = server.share_created(&[id]).await?;
    let withdrawn = share_id["url"].as_str().context("url")?.to_owned();
    let revoke = server
        .client
        .delete(format!(
            "{}/api/v1/shares/{}",
            server.base,
            share_id["id"].as_str().context("id")?
        ))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(revoke.status() == StatusCode::NO_CONTENT);
    let (status, html) = page(&server, &withdrawn, "en").await?;
    ensure!(
        status == StatusCode::GONE && html.contains("Rivierenland"),
        "{html}"
    );
    let (status, html) = page(
        &server,
        &format!(
            "{}{}",
            &withdrawn[..withdrawn.len() - 1],
            if withdrawn.ends_with('A') { 'B' } else { 'A' }
        ),
        "en",
    )
    .await?;
    ensure!(
        status == StatusCode::NOT_FOUND && !html.contains("Rivierenland"),
        "{html}"
    );

    // Another tenant's pages keep their own name.
    let other = server.other_tenant_key().await?;
    let file = server
        .upload_as(&other, &random_bytes(10, 6), "b.pdf")
        .await?;
    let theirs = server
        .share_as(&other, &[file], &["a@x.eu"], Default::default())
        .await?;
    let (_, html) = page(&server, theirs["url"].as_str().context("url")?, "en").await?;
    ensure!(
        !html.contains("Rivierenland") && !html.contains("<img"),
        "{html}"
    );

    let events = server.audit_events("").await?;
    ensure!(
        events.iter().any(|e| e["kind"] == "branding.changed"
            && e["details"]["logo"]["content_type"] == "image/png"),
        "the change is in the audit log"
    );
    let cleared = serde_json::json!({"display_name": null, "logo": null});
    let response = server
        .client
        .put(&url)
        .bearer_auth(&server.key)
        .json(&cleared)
        .send()
        .await?;
    ensure!(response.status() == StatusCode::OK);
    let (_, html) = page(&server, &link, "en").await?;
    ensure!(
        !html.contains("Rivierenland") && !html.contains("<img"),
        "cleared"
    );
    Ok(())
}
