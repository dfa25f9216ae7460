//! The relay end to end, as a tenant's mail server uses it: swaks submits over STARTTLS with
//! the tenant's relay account to `ferry relay serve`, which queues the message (sealed in the
//! store), resolves the recipient's MX through a DNS server on loopback and delivers to a real
//! Postfix over TLS verified against a test CA; the tenant's audit chain holds the proof, with
//! the MX certificate's real SHA-256.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ferry_e2e::{Api, run_ferry};
use ferry_testkit::ca::self_signed;
use ferry_testkit::capture::Capture;
use ferry_testkit::dns::{Answer, RecordType};
use ferry_testkit::postfix::{MxTls, free_port_on, loopback_ip};

use crate::bed::{Bed, dkim_verify, ensure_queued, wait_delivered};

#[test]
fn a_message_submitted_with_swaks_reaches_a_real_mx_over_verified_tls_with_proof() -> Result<()> {
    let bed = Bed::new()?;
    let (mx, mx_port, leaf) = bed.example_mx()?;
    // The tenant signs mail from its domain.
    let published = bed.dkim_key("rsa")?;
    ensure!(
        published["name"] == "ferry1._domainkey.hospital.test",
        "{published}"
    );
    let (_relay, smtp) = bed.relay(mx_port, &[])?;

    let transcript = bed.submit(smtp, "ward@hospital.test", "bob@example.test")?;
    ensure_queued(&transcript)?;

    let delivered = wait_delivered(&mx, 1, Duration::from_secs(60))?;
    let text = String::from_utf8_lossy(&delivered[0]);
    ensure!(text.contains("The results are ready."), "{text}");
    ensure!(text.contains("Subject: your results"), "{text}");
    ensure!(
        mx.log().contains("TLS connection established"),
        "{}",
        mx.log()
    );
    // An independent verifier (Debian's python3-dkim) accepts the signature as received.
    let verdict = dkim_verify(
        &delivered[0],
        published["name"].as_str().unwrap_or_default(),
        published["record"].as_str().unwrap_or_default(),
    )?;
    ensure!(verdict == "ok", "DKIM: {verdict}\n{text}");

    // The proof, in the tenant's audit chain.
    let events = ferry_testkit::eventually(Duration::from_secs(20), || {
        let events = bed.audit()?;
        ensure!(
            events.iter().any(|e| e["kind"] == "relay.delivery"),
            "no delivery recorded yet"
        );
        Ok(events)
    })?;
    ensure!(
        events.iter().any(|e| e["kind"] == "relay.accepted"),
        "{events:#?}"
    );
    let proof = events
        .iter()
        .find(|e| e["kind"] == "relay.delivery")
        .map(|e| e["details"].clone())
        .unwrap_or_default();
    ensure!(proof["outcome"]["status"] == "delivered", "{proof:#}");
    ensure!(proof["method"] == "webpki", "{proof:#}");
    ensure!(proof["mx_host"] == "mx1.example.test", "{proof:#}");
    ensure!(proof["envelope_to"] == "bob@example.test", "{proof:#}");
    ensure!(
        proof["dkim"]["d"] == "hospital.test" && proof["dkim"]["s"] == "ferry1",
        "{proof:#}"
    );
    let fingerprint = openssl_sha256(&leaf.cert_pem)?;
    ensure!(
        proof["tls"]["certificate"]["leaf_sha256"] == fingerprint.as_str(),
        "{proof:#} vs openssl {fingerprint}"
    );
    // The admin's view of the same message.
    let message_id = events
        .iter()
        .find(|e| e["kind"] == "relay.accepted")
        .and_then(|e| e["details"]["message_id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let api = Api::new(bed.server.url(), &bed.tenant.api_key)?;
    let view: serde_json::Value = api
        .http()
        .get(format!(
            "{}/api/v1/admin/deliveries?message_id={}",
            bed.server.url(),
            percent_encode(&message_id)
        ))
        .header("Authorization", api.bearer())
        .send()?
        .error_for_status()?
        .json()?;
    ensure!(
        view["recipients"][0]["recipient"] == "bob@example.test",
        "{view:#}"
    );
    ensure!(view["recipients"][0]["status"] == "delivered", "{view:#}");
    ensure!(view["attempts"][0]["details"] == proof, "{view:#}");
    let missing = api
        .http()
        .get(format!("{}/api/v1/admin/deliveries", bed.server.url()))
        .header("Authorization", api.bearer())
        .send()?;
    ensure!(missing.status() == 400, "{}", missing.status());
    // The queue in /metrics: nothing waiting, one recipient delivered under the WebPKI.
    let metrics = api
        .http()
        .get(format!("{}/metrics", bed.server.url()))
        .send()?
        .text()?;
    ensure!(
        metrics.contains("ferry_relay_queued_recipients 0"),
        "{metrics}"
    );
    ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("ferry_relay_recipients_finished{")
                && l.contains("outcome=\"delivered\"")
                && l.contains("method=\"webpki\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let verify = run_ferry(&bed.data, bed.server.env(), &["audit", "verify"])?.expect_success()?;
    ensure!(verify.stdout.contains("chain intact"), "{}", verify.stdout);
    Ok(())
}

#[test]
fn unsafe_mx_hosts_get_nothing_and_the_sender_gets_a_report_when_the_hold_ends() -> Result<()> {
    let bed = Bed::new()?;
    let ips: Vec<_> = (1..=5).map(loopback_ip).collect();
    let port = free_port_on(&ips)?;
    // example.test has only MX hosts that cannot prove themselves: no STARTTLS, a certificate
    // no CA vouches for, one for another name, one that expired.
    let unsafe_hosts = [
        ("plain.example.test", MxTls::Off),
        (
            "selfsigned.example.test",
            MxTls::On(self_signed(&["selfsigned.example.test"])?),
        ),
        (
            "wrongname.example.test",
            MxTls::On(bed.ca.leaf(&["someone-else.example.test"])?),
        ),
        (
            "expired.example.test",
            MxTls::On(bed.ca.expired_leaf(&["expired.example.test"])?),
        ),
    ];
    let mut unsafe_mx = Vec::new();
    let mut preferences = Vec::new();
    for (n, (host, tls)) in unsafe_hosts.into_iter().enumerate() {
        unsafe_mx.push(bed.mx(host, "example.test", port, ips[n], tls)?);
        preferences.push((10 * (n as u16 + 1), host));
    }
    bed.dns.mx("example.test", &preferences)?;
    // The sender's own domain, where the report goes.
    let home = bed.mx(
        "mx.hospital.test",
        "hospital.test",
        port,
        ips[4],
        MxTls::On(bed.ca.leaf(&["mx.hospital.test"])?),
    )?;
    bed.dns.mx("hospital.test", &[(10, "mx.hospital.test")])?;
    // The wire to the four, captured from before the first attempt to the report.
    let dir = tempfile::tempdir()?;
    let capture = Capture::start(dir.path(), &ips[..4], port)?;
    let (_relay, smtp) = bed.relay(
        port,
        &[
            ("FERRY_RELAY_HOLD_SECONDS", "4"),
            ("FERRY_RELAY_RETRY_SECONDS", "1"),
        ],
    )?;

    // A message far larger than anything a refused session may carry.
    let body = format!(
        "The results are ready.\n{}",
        "Patient record line.\n".repeat(5000)
    );
    let transcript = bed.submit_with(
        smtp,
        "ward@hospital.test",
        "bob@example.test",
        &["--body", &body],
    )?;
    ensure_queued(&transcript)?;

    let reports = ferry_testkit::eventually(Duration::from_secs(60), || {
        let found = home.delivered();
        ensure!(!found.is_empty(), "no report yet");
        Ok(found)
    })
    .with_context(|| {
        let events: Vec<String> = bed
            .audit()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["kind"], e["details"]["envelope_to"], e["details"]["outcome"]
                )
            })
            .collect();
        format!(
            "--- sender's MX log:\n{}\n--- audit:\n{}",
            home.log(),
            events.join("\n")
        )
    })?;
    let flows = capture.stop()?;
    let report = String::from_utf8_lossy(&reports[0]);
    ensure!(report.contains("report-type=delivery-status"), "{report}");
    ensure!(
        report.contains("Final-Recipient: rfc822; bob@example.test"),
        "{report}"
    );
    ensure!(report.contains("Action: failed"), "{report}");
    ensure!(report.contains("TLS"), "the reason is named: {report}");
    ensure!(
        !report.contains("The results are ready") && !report.contains("your results"),
        "no content: {report}"
    );

    // Each MX's own account: no message was ever started.
    for mx in &unsafe_mx {
        let log = mx.log();
        ensure!(!log.contains("client="), "a message was started:\n{log}");
        ensure!(mx.delivered().is_empty());
    }
    ensure!(
        unsafe_mx[0].log().contains("ehlo=1 quit=1 commands=2"),
        "{}",
        unsafe_mx[0].log()
    );
    // The wire's: every session to each of the four, and what the relay sent in it.
    for (n, ip) in ips[..4].iter().enumerate() {
        let sessions: Vec<_> = flows
            .iter()
            .filter(|f| f.server.is_some_and(|s| s.ip() == ip))
            .collect();
        ensure!(
            sessions.len() >= 2,
            "MX {n}: {} sessions captured",
            sessions.len()
        );
        for session in sessions {
            nothing_but_a_refused_starttls(&session.to_server, n == 0)
                .with_context(|| format!("to MX {n} ({ip})"))?;
        }
    }
    let deferred = bed
        .audit()?
        .iter()
        .filter(|e| {
            e["kind"] == "relay.delivery" && e["details"]["envelope_to"] == "bob@example.test"
        })
        .filter(|e| e["details"]["outcome"]["status"] == "deferred")
        .count();
    ensure!(
        deferred >= 8,
        "four MX hosts, retried: {deferred} attempts recorded"
    );
    Ok(())
}

/// What a relay may send an MX that cannot prove itself: `EHLO`, then `STARTTLS` and a TLS
/// handshake it abandons (a few records, far smaller than the message), or — without STARTTLS
/// on offer — `QUIT`. Never an envelope command or a byte of content in clear.
fn nothing_but_a_refused_starttls(sent: &[u8], plain: bool) -> Result<()> {
    let text = String::from_utf8_lossy(sent);
    ensure!(
        !text.contains("MAIL FROM") && !text.contains("RCPT TO") && !text.contains("DATA"),
        "an envelope command went out: {text:?}"
    );
    ensure!(
        !text.contains("results are ready") && !text.contains("Patient record"),
        "content went out in clear"
    );
    let ehlo = b"EHLO relay.ferry.test\r\n";
    let rest = sent
        .strip_prefix(ehlo.as_slice())
        .context("not EHLO first")?;
    if plain {
        ensure!(
            rest == b"QUIT\r\n",
            "after EHLO: {:?}",
            String::from_utf8_lossy(rest)
        );
        return Ok(());
    }
    let mut records = rest
        .strip_prefix(b"STARTTLS\r\n".as_slice())
        .context("no STARTTLS")?;
    // Only TLS records follow (content types 20–23, TLS 1.0–1.2 record versions), and all of
    // them together are a handshake's worth, not a 100 KB message.
    ensure!(
        records.len() < 4096,
        "{} bytes after STARTTLS",
        records.len()
    );
    while let Some(header) = records.get(..5) {
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        ensure!(
            (20..=23).contains(&header[0]) && header[1] == 3 && header[2] <= 3,
            "not a TLS record: {header:?}"
        );
        records = records
            .get(5 + length..)
            .context("a truncated TLS record")?;
    }
    ensure!(records.is_empty(), "bytes after the last TLS record");
    Ok(())
}

/// Every byte but letters and digits as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The Message-ID headers of what an MX received.
fn message_ids(messages: &[Vec<u8>]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m).lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("message-id:")
                    .then(|| l[11..].trim().to_owned())
            })
        })
        .collect()
}

#[test]
fn messages_queued_when_the_relay_is_killed_are_delivered_once_after_restart() -> Result<()> {
    let bed = Bed::new()?;
    let (mx, mx_port, _) = bed.example_mx()?;
    // DNS fails at first: every message is held after its first attempt.
    bed.dns
        .set("example.test", RecordType::MX, Answer::ServFail);
    let settings = [("FERRY_RELAY_RETRY_SECONDS", "15")];
    let (mut relay, smtp) = bed.relay(mx_port, &settings)?;
    for n in 0..5 {
        let id = format!("<kill-{n}@hospital.test>");
        let transcript = bed.submit_with(
            smtp,
            "ward@hospital.test",
            "bob@example.test",
            &["--header", &format!("Message-ID: {id}")],
        )?;
        ensure_queued(&transcript)?;
    }
    ferry_testkit::eventually(Duration::from_secs(30), || {
        let held = bed
            .audit()?
            .iter()
            .filter(|e| e["kind"] == "relay.delivery")
            .count();
        ensure!(held >= 5, "{held} of 5 first attempts recorded");
        Ok(())
    })?;
    relay.kill()?;

    bed.dns.mx("example.test", &[(10, "mx1.example.test")])?;
    let (_relay, _) = bed.relay(mx_port, &settings)?;
    let delivered = wait_delivered(&mx, 5, Duration::from_secs(90))?;
    std::thread::sleep(Duration::from_secs(3));
    let mut ids = message_ids(&mx.delivered());
    ensure!(
        ids.len() == 5 && delivered.len() == 5,
        "delivered more than once: {ids:?}"
    );
    ids.sort();
    ids.dedup();
    ensure!(ids.len() == 5, "{ids:?}");
    Ok(())
}

#[test]
fn two_relays_on_one_postgresql_never_deliver_a_message_twice() -> Result<()> {
    let scratch = ferry_testkit::ScratchDb::create()?;
    let bed = Bed::with_env(&[("FERRY_DATABASE_URL", scratch.url())])?;
    let (mx, mx_port, _) = bed.example_mx()?;
    let (_one, first) = bed.relay(mx_port, &[])?;
    let (_two, second) = bed.relay(mx_port, &[])?;
    let total = 12;
    for n in 0..total {
        let smtp = if n % 2 == 0 { first } else { second };
        let recipients = format!("bob{n}@example.test,carol{n}@example.test");
        let transcript = bed.submit(smtp, "ward@hospital.test", &recipients)?;
        ensure_queued(&transcript)?;
    }
    wait_delivered(&mx, 2 * total, Duration::from_secs(90))?;
    std::thread::sleep(Duration::from_secs(3));
    // Postfix files one copy per recipient, each with its Delivered-To.
    let delivered = mx.delivered();
    let mut copies: Vec<(String, String)> = delivered
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            let header = |name: &str| {
                text.lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .starts_with(name)
                            .then(|| l[name.len()..].trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            (header("message-id:"), header("delivered-to:"))
        })
        .collect();
    copies.sort();
    copies.dedup();
    let mut ids = message_ids(&delivered);
    ids.sort();
    ids.dedup();
    ensure!(
        delivered.len() == 2 * total && copies.len() == 2 * total && ids.len() == total,
        "{} copies, {} distinct, {} messages",
        delivered.len(),
        copies.len(),
        ids.len()
    );
    let recorded = bed
        .audit()?
        .iter()
        .filter(|e| {
            e["kind"] == "relay.delivery" && e["details"]["outcome"]["status"] == "delivered"
        })
        .count();
    ensure!(
        recorded == 2 * total,
        "{recorded} delivery records for {} recipients",
        2 * total
    );
    drop(bed);
    drop(scratch);
    Ok(())
}

/// `openssl x509 -fingerprint -sha256` of a PEM certificate, lower-case hex without colons.
fn openssl_sha256(pem: &str) -> Result<String> {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, pem.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    let Some((_, hex)) = text.trim().split_once('=') else {
        bail!("openssl said {text:?}");
    };
    Ok(hex.replace(':', "").to_ascii_lowercase())
}
