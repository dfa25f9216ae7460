//! One link per recipient: a message carrying a share link (as Outlook sends it — a
//! quoted-printable text part whose link is cut by a soft line break, and a base64 HTML part)
//! reaches each recipient with a link of their own, DKIM-signed after the rewrite; a
//! recipient who is not on the share gets none that works. Each link works, names its
//! recipient in the audit log, and is revoked alone. The copies are read back by Python's
//! `email` package, not by the relay's own decoder.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_e2e::{Api, base64, download_bytes, file_id_from_url, patch_expect_204, random_file};

use crate::bed::{Bed, dkim_verify, ensure_queued, wait_delivered};

/// Outlook's way of sending a link: multipart/alternative, the text part quoted-printable with
/// the URL cut by a soft line break, the HTML part base64.
fn outlook_message(link: &str) -> String {
    let text =
        format!("Dear colleague,\r\n\r\nThe scans are ready: {link}\r\n\r\nRegards,\r\nWard 5\r\n");
    let mut qp = String::new();
    for line in text.split("\r\n") {
        // Soft line breaks every 60 characters, the way a mail client folds long lines.
        let chars: Vec<char> = line.chars().collect();
        let pieces: Vec<String> = chars.chunks(60).map(|c| c.iter().collect()).collect();
        qp.push_str(&pieces.join("=\r\n"));
        qp.push_str("\r\n");
    }
    let html = format!(
        "<html><body><p>Dear colleague,</p><p>The scans are ready: \
         <a href=\"{link}\">download</a></p><p>Regards,<br>Ward 5</p></body></html>"
    );
    let encoded = base64(html.as_bytes());
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "From: Ward 5 <ward@hospital.test>\r\n\
         To: bob@example.test, carol@example.test\r\n\
         Subject: scans\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"=_alt_1\"\r\n\
         \r\n\
         --=_alt_1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         {qp}\
         --=_alt_1\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {html}\r\n\
         --=_alt_1--\r\n",
        html = lines.join("\r\n")
    )
}

/// Each delivered copy as Python's `email` package reads it: its `Delivered-To` and, per text
/// part, the link tokens in it.
fn links_per_copy(messages: &[Vec<u8>]) -> Result<Vec<(String, Vec<Vec<String>>)>> {
    const READ: &str = r#"
import sys, json, re, email
from email import policy
out = []
for path in sys.argv[1:]:
    m = email.message_from_bytes(open(path, 'rb').read(), policy=policy.default)
    parts = [sorted(set(re.findall(r'/d/([A-Za-z0-9_-]+)', p.get_content())))
             for p in m.walk() if p.get_content_maintype() == 'text']
    out.append([str(m['Delivered-To']), parts])
print(json.dumps(out))
"#;
    let dir = tempfile::tempdir()?;
    let mut paths = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let path = dir.path().join(format!("{n}.eml"));
        std::fs::write(&path, message)?;
        paths.push(path);
    }
    let out = Command::new("/usr/bin/python3")
        .args(["-c", READ])
        .args(&paths)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn each_recipient_gets_a_link_of_their_own_and_outsiders_none_that_works() -> Result<()> {
    let bed = Bed::new()?;
    let (mx, mx_port, _) = bed.example_mx()?;
    let published = bed.dkim_key("ed25519")?;

    // The sender shares a file with bob and carol (not dave) and mails the link to all three.
    let api = Api::new(bed.server.url(), &bed.tenant.api_key)?;
    let dir = tempfile::tempdir()?;
    let size = 300_000;
    let source = random_file(dir.path(), "scan.dcm", size)?;
    let upload = api.tus_create(size, "scan.dcm")?;
    patch_expect_204(
        &api,
        &upload,
        &source.path,
        0,
        size,
        Duration::from_secs(10),
    )?;
    let file_id = file_id_from_url(&upload)?;
    let share = api.create_share(
        &[&file_id],
        &["bob@example.test", "Carol@Example.test"],
        None,
    )?;
    let share_token = share.url.rsplit('/').next().unwrap_or_default().to_owned();
    let message = dir.path().join("message.eml");
    std::fs::write(&message, outlook_message(&share.url))?;
    let (_relay, smtp) = bed.relay(mx_port, &[])?;
    let transcript = bed.submit_with(
        smtp,
        "ward@hospital.test",
        "bob@example.test,carol@example.test,dave@example.test",
        &["--data", &format!("@{}", message.display())],
    )?;
    ensure_queued(&transcript)?;

    let delivered = wait_delivered(&mx, 3, Duration::from_secs(60))?;
    let copies = links_per_copy(&delivered)?;
    let token_of = |to: &str| -> Result<String> {
        let (_, parts) = copies
            .iter()
            .find(|(delivered_to, _)| delivered_to == to)
            .with_context(|| format!("no copy for {to}: {copies:?}"))?;
        ensure!(parts.len() == 2, "{to}: {parts:?}");
        ensure!(
            parts[0] == parts[1] && parts[0].len() == 1,
            "{to}: one link, the same in the text and the HTML part: {parts:?}"
        );
        Ok(parts[0][0].clone())
    };
    let (bob, carol, dave) = (
        token_of("bob@example.test")?,
        token_of("carol@example.test")?,
        token_of("dave@example.test")?,
    );
    ensure!(
        bob != carol && bob != share_token && carol != share_token,
        "own links: {bob} {carol} (share {share_token})"
    );
    ensure!(dave == "withheld", "an outsider's copy: {dave}");
    for copy in &delivered {
        ensure!(
            !String::from_utf8_lossy(copy).contains(&share_token),
            "the share's own token left in a copy"
        );
        // Signed after the rewrite: an independent verifier accepts each copy.
        let verdict = dkim_verify(
            copy,
            published["name"].as_str().unwrap_or_default(),
            published["record"].as_str().unwrap_or_default(),
        )?;
        ensure!(verdict == "ok", "DKIM: {verdict}");
    }

    // Each link opens the share and serves the file; the outsider's does not.
    let base = bed.server.url();
    let page = |token: &str| -> Result<u16> {
        Ok(api
            .http()
            .get(format!("{base}/d/{token}"))
            .send()?
            .status()
            .as_u16())
    };
    ensure!(page(&bob)? == 200 && page(&carol)? == 200);
    ensure!(page(&dave)? == 404);
    let (_, bytes) = download_bytes(&format!("{base}/d/{bob}/f/{file_id}"))?;
    ensure!(
        bytes == std::fs::read(&source.path)?,
        "bob's download differs"
    );
    let recorded = ferry_testkit::eventually(Duration::from_secs(10), || {
        let events = bed.audit()?;
        let download = events
            .into_iter()
            .find(|e| e["kind"] == "file.downloaded")
            .context("no download recorded yet")?;
        Ok(download)
    })?;
    ensure!(
        recorded["details"]["recipient"] == "bob@example.test",
        "{recorded:#}"
    );

    // The sender sees both links and revokes bob's alone.
    let status: serde_json::Value = api
        .http()
        .get(format!("{base}/api/v1/shares/{}", share.id))
        .header("Authorization", api.bearer())
        .send()?
        .error_for_status()?
        .json()?;
    let links = status["links"].as_array().cloned().unwrap_or_default();
    let mut recipients: Vec<&str> = links
        .iter()
        .filter_map(|l| l["recipient"].as_str())
        .collect();
    recipients.sort_unstable();
    ensure!(
        recipients == ["bob@example.test", "carol@example.test"],
        "{status:#}"
    );
    let bobs = links
        .iter()
        .find(|l| l["recipient"] == "bob@example.test")
        .and_then(|l| l["id"].as_str())
        .unwrap_or_default();
    let revoked = api
        .http()
        .delete(format!("{base}/api/v1/shares/{}/links/{bobs}", share.id))
        .header("Authorization", api.bearer())
        .send()?;
    ensure!(revoked.status() == 204, "{}", revoked.status());
    ensure!(page(&bob)? == 410, "bob's revoked link");
    ensure!(page(&carol)? == 200, "carol's link still works");
    ensure!(page(&share_token)? == 200, "the share itself still works");
    Ok(())
}

#[test]
fn senders_outside_the_tenants_domains_and_clients_without_an_account_are_refused() -> Result<()> {
    let bed = Bed::new()?;
    let (_relay, smtp) = bed.relay(25, &[])?;
    let transcript = bed.submit(smtp, "someone@elsewhere.test", "bob@example.test")?;
    ensure!(
        transcript.contains("550 5.7.1 Sender address rejected"),
        "{transcript}"
    );
    // No account at all: STARTTLS, then MAIL without AUTH.
    let output = Command::new("swaks")
        .args(["--server", &smtp.to_string(), "--timeout", "20", "-tls"])
        .args(["--from", "ward@hospital.test", "--to", "bob@example.test"])
        .output()?;
    let anonymous = String::from_utf8_lossy(&output.stdout);
    ensure!(
        anonymous.contains("530 5.7.0 Authentication required"),
        "{anonymous}"
    );
    let accepted = bed
        .audit()?
        .iter()
        .filter(|e| e["kind"] == "relay.accepted")
        .count();
    ensure!(accepted == 0, "{accepted} messages queued");
    Ok(())
}
