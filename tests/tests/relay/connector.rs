//! Microsoft 365 connectors, as Exchange Online relays: no SMTP AUTH, a client certificate
//! named `*.mail.protection.outlook.com` (here issued by the test CA, which the relay is told
//! to trust for client certificates), and `X-MS-Exchange-CrossTenant-Id` naming the sending
//! organisation. A message is taken only with all three right: a certificate under the name
//! pattern that chains to the roots, an organisation linked to a Ferry tenant, and an envelope
//! sender in that tenant's domains.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use ferry_e2e::run_ferry;
use ferry_testkit::ca::{Leaf, self_signed};

use crate::bed::{Bed, ensure_queued, wait_delivered};

/// The organisation linked to the bed's tenant.
const ORGANISATION: &str = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

/// swaks as Exchange Online: STARTTLS with `cert`, no AUTH, `headers` added as given.
fn as_exchange(
    smtp: std::net::SocketAddr,
    dir: &Path,
    cert: &Leaf,
    from: &str,
    headers: &[&str],
) -> Result<String> {
    let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert_file, &cert.cert_pem)?;
    std::fs::write(&key_file, &cert.key_pem)?;
    let mut command = Command::new("swaks");
    command
        .args(["--server", &smtp.to_string(), "--timeout", "20", "-tls"])
        .arg("--tls-cert")
        .arg(&cert_file)
        .arg("--tls-key")
        .arg(&key_file)
        .args(["--from", from, "--to", "bob@example.test"])
        .args(["--header", "Subject: from Exchange Online"]);
    for header in headers {
        command.args(["--add-header", header]);
    }
    let output = command.output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_microsoft_365_connector_relays_only_for_its_linked_organisation() -> Result<()> {
    let bed = Bed::new()?;
    let (mx, mx_port, _) = bed.example_mx()?;
    let link = [
        "tenant",
        "link-entra",
        "--tenant",
        &bed.tenant.tenant_id,
        "--entra-tenant",
        ORGANISATION,
    ];
    run_ferry(&bed.data, bed.server.env(), &link)?.expect_success()?;
    // Another tenant owns other.test.
    let other = bed.server.create_tenant("other")?;
    run_ferry(
        &bed.data,
        bed.server.env(),
        &[
            "relay",
            "domain",
            "add",
            "--tenant",
            &other.tenant_id,
            "--domain",
            "other.test",
        ],
    )?
    .expect_success()?;
    let ca_file = bed.ca_file.display().to_string();
    let (_relay, smtp) = bed.relay(mx_port, &[("FERRY_RELAY_CLIENT_CA_FILE", &ca_file)])?;
    let dir = tempfile::tempdir()?;
    let exchange = bed
        .ca
        .leaf(&["hospital-test.mail.protection.outlook.com"])?;
    let stamp = format!("X-MS-Exchange-CrossTenant-Id: {ORGANISATION}");

    // Refused: a certificate under another name, or the right name that no CA vouches for.
    for cert in [
        bed.ca.leaf(&["mail.partner.test"])?,
        self_signed(&["hospital-test.mail.protection.outlook.com"])?,
    ] {
        let transcript = as_exchange(smtp, dir.path(), &cert, "ward@hospital.test", &[&stamp])?;
        ensure!(
            transcript.contains("530 5.7.0 Authentication required"),
            "{transcript}"
        );
    }
    // Refused: no organisation, two, one not linked, a sender of a domain nobody has, and a
    // sender of another tenant's domain.
    let unlinked = "X-MS-Exchange-CrossTenant-Id: 0b9e3f2a-1111-4222-8333-944455556666";
    for (from, headers, expected) in [
        ("ward@hospital.test", vec![], "554 5.7.1"),
        (
            "ward@hospital.test",
            vec![stamp.as_str(), unlinked],
            "554 5.7.1",
        ),
        ("ward@hospital.test", vec![unlinked], "554 5.7.1"),
        ("ward@nowhere.test", vec![stamp.as_str()], "550 5.7.1"),
        ("ward@other.test", vec![stamp.as_str()], "554 5.7.1"),
    ] {
        let transcript = as_exchange(smtp, dir.path(), &exchange, from, &headers)?;
        ensure!(
            transcript.contains(expected),
            "{from} {headers:?}: {transcript}"
        );
    }
    ensure!(
        !bed.audit()?.iter().any(|e| e["kind"] == "relay.accepted"),
        "a refused message was queued"
    );

    // Taken: the certificate, the linked organisation, a sender of its tenant.
    let transcript = as_exchange(smtp, dir.path(), &exchange, "ward@hospital.test", &[&stamp])?;
    ensure_queued(&transcript)?;
    let delivered = wait_delivered(&mx, 1, Duration::from_secs(60))?;
    let text = String::from_utf8_lossy(&delivered[0]);
    ensure!(text.contains("Subject: from Exchange Online"), "{text}");
    let accepted = bed
        .audit()?
        .into_iter()
        .filter(|e| e["kind"] == "relay.accepted")
        .count();
    ensure!(accepted == 1, "{accepted} messages queued for the tenant");
    Ok(())
}
