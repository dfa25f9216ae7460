//! `ferry apikey create`: an admin mints a sender key for its tenant from the command line;
//! the key uploads and shares, and is refused on admin endpoints.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{Server, ferry_bin};

#[test]
fn a_sender_key_from_the_cli_uploads_but_cannot_read_the_policy() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-apikey-").tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start(&data)?;
    let tenant = server.create_tenant("clinic")?;
    let out = Command::new(ferry_bin()?)
        .args([
            "apikey",
            "create",
            "--tenant",
            &tenant.tenant_id,
            "--role",
            "sender",
            "--json",
        ])
        .env("FERRY_DATA_DIR", &data)
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "apikey create failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_str(stdout.trim())?;
    ensure!(created["role"] == "sender", "{created}");
    let key = created["api_key"].as_str().context("api_key")?;

    let sender = ferry_e2e::Api::new(server.url(), key)?;
    let url = sender.tus_create(10, "note.txt")?;
    ensure!(
        url.contains("/files/"),
        "the sender key creates uploads: {url}"
    );
    let policy = sender
        .http()
        .get(format!("{}/api/v1/admin/policy", server.url()))
        .header("Authorization", sender.bearer())
        .send()?;
    ensure!(
        policy.status().as_u16() == 403,
        "a sender reading the policy got {}",
        policy.status()
    );
    let admin = server.api(&tenant)?;
    let policy = admin
        .http()
        .get(format!("{}/api/v1/admin/policy", server.url()))
        .header("Authorization", admin.bearer())
        .send()?;
    ensure!(
        policy.status().as_u16() == 200,
        "the admin reading the policy got {}",
        policy.status()
    );

    // A tenant that does not exist gets no key.
    let missing = Command::new(ferry_bin()?)
        .args([
            "apikey",
            "create",
            "--tenant",
            "00000000-0000-4000-8000-000000000000",
            "--role",
            "admin",
        ])
        .env("FERRY_DATA_DIR", &data)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        !missing.status.success(),
        "a key for an unknown tenant was created"
    );
    Ok(())
}
