//! The relay end to end, as a tenant's mail server uses it: swaks submits over STARTTLS with
//! the tenant's relay account to `ferry relay serve`, which queues the message (sealed in the
//! store), resolves the recipient's MX through a DNS server on loopback and delivers to a real
//! Postfix over TLS verified against a test CA; the tenant's audit chain holds the proof, with
//! the MX certificate's real SHA-256.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ferry_e2e::{Api, Server, ferry_bin, run_ferry};
use ferry_testkit::ChildGuard;
use ferry_testkit::ca::TestCa;
use ferry_testkit::dns::DnsServer;
use ferry_testkit::postfix::{MxTls, PostfixMx, free_port_on, loopback_ip};

/// `ferry relay serve` as a child; the SMTP address it printed.
fn start_relay(
    data: &std::path::Path,
    env: &[(String, String)],
) -> Result<(ChildGuard, SocketAddr)> {
    let mut child = Command::new(ferry_bin()?)
        .args(["relay", "serve"])
        .env("FERRY_DATA_DIR", data)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting ferry relay serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = ChildGuard::new(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("ferry relay listening on smtp://") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("ferry relay serve did not start listening")?;
    Ok((guard, addr.parse()?))
}

#[test]
fn a_message_submitted_with_swaks_reaches_a_real_mx_over_verified_tls_with_proof() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::Builder::new()
        .prefix("ferry-relay-e2e-")
        .tempdir()?;
    let data = dir.path().join("data");
    let ca = TestCa::new()?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem())?;

    // The recipient's world: DNS and a Postfix MX with a certificate from the test CA.
    let dns = runtime.block_on(DnsServer::start())?;
    let mx_ip = loopback_ip(1);
    let mx_port = free_port_on(&[mx_ip])?;
    let leaf = ca.leaf(&["mx1.example.test"])?;
    let mx = PostfixMx::start(
        SocketAddr::new(mx_ip.into(), mx_port),
        "mx1.example.test",
        &["example.test"],
        MxTls::On(leaf.clone()),
    )?;
    dns.mx("example.test", &[(10, "mx1.example.test")])?;
    dns.address("mx1.example.test", IpAddr::V4(mx_ip));

    // Ferry: the HTTP service (for the admin's audit view) and the relay, one data directory.
    let server = Server::start_with_env(&data, &[])?;
    let tenant = server.create_tenant("hospital")?;
    let created = run_ferry(
        &data,
        server.env(),
        &[
            "relay",
            "account",
            "create",
            "--tenant",
            &tenant.tenant_id,
            "--json",
        ],
    )?
    .expect_success()?;
    let account: serde_json::Value = serde_json::from_str(created.stdout.trim())?;
    let (user, password) = (
        account["username"].as_str().unwrap_or_default().to_owned(),
        account["password"].as_str().unwrap_or_default().to_owned(),
    );
    let mut env: Vec<(String, String)> = server.env().to_vec();
    for (key, value) in [
        ("FERRY_RELAY_LISTEN", "127.0.0.1:0".to_owned()),
        ("FERRY_RELAY_HOSTNAME", "relay.ferry.test".to_owned()),
        ("FERRY_RELAY_RESOLVER", dns.addr().to_string()),
        ("FERRY_RELAY_MX_PORT", mx_port.to_string()),
        ("FERRY_RELAY_CA_FILE", ca_file.display().to_string()),
    ] {
        env.push((key.to_owned(), value));
    }
    let (_relay, smtp) = start_relay(&data, &env)?;

    let output = Command::new("swaks")
        .args(["--server", &smtp.to_string(), "--timeout", "20", "-tls"])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            &user,
            "--auth-password",
            &password,
        ])
        .args(["--from", "ward@hospital.test", "--to", "bob@example.test"])
        .args([
            "--header",
            "Subject: your results",
            "--body",
            "The results are ready.",
        ])
        .output()?;
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );

    let delivered = ferry_testkit::eventually(Duration::from_secs(60), || {
        let found = mx.delivered();
        ensure!(!found.is_empty(), "not delivered yet");
        Ok(found)
    })
    .with_context(|| format!("--- MX log:\n{}", mx.log()))?;
    let text = String::from_utf8_lossy(&delivered[0]);
    ensure!(text.contains("The results are ready."), "{text}");
    ensure!(text.contains("Subject: your results"), "{text}");
    ensure!(
        mx.log().contains("TLS connection established"),
        "{}",
        mx.log()
    );

    // The proof, in the tenant's audit chain.
    let api = Api::new(server.url(), &tenant.api_key)?;
    let events = ferry_testkit::eventually(Duration::from_secs(20), || {
        let events = api.audit_events()?;
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
    let fingerprint = openssl_sha256(&leaf.cert_pem)?;
    ensure!(
        proof["tls"]["certificate"]["leaf_sha256"] == fingerprint.as_str(),
        "{proof:#} vs openssl {fingerprint}"
    );
    let verify = run_ferry(&data, server.env(), &["audit", "verify"])?.expect_success()?;
    ensure!(verify.stdout.contains("chain intact"), "{}", verify.stdout);
    drop(runtime);
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
