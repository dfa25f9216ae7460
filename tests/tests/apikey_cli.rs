//! `ferry apikey create` and `ferry apikey revoke`, run as an operator runs them: beside a
//! running `ferry serve`, on its data directory and database.
//!
//! - `a_sender_key_from_the_cli_uploads_but_cannot_read_the_policy`: an admin mints a sender
//!   key for its tenant from the command line; the key uploads and shares, and is refused on
//!   admin endpoints; a tenant that does not exist gets no key.
//! - `a_key_revoked_from_the_cli_is_refused_on_its_next_request`: a key that has just worked
//!   (on a kept-alive connection) is answered 401 on its very next request once
//!   `ferry apikey revoke --key-id` has returned — no restart, no cache delay — on the tus and
//!   the JSON endpoints alike, while another sender key and the admin key of the tenant go on
//!   working; revoking it again says so and changes nothing.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{Api, Server, ferry_bin, file_id_from_url};

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

#[test]
fn a_key_revoked_from_the_cli_is_refused_on_its_next_request() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-revoke-").tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let result = revoke_beside_a_running_server(&server);
    server.explain(result)
}

fn revoke_beside_a_running_server(server: &Server) -> Result<()> {
    let tenant = server.create_tenant("clinic")?;
    let admin = server.api(&tenant)?;
    let doomed_key = server.create_api_key(&tenant, "sender")?;
    let doomed = Api::new(server.url(), &doomed_key.api_key)?;
    let colleague = Api::new(
        server.url(),
        &server.create_api_key(&tenant, "sender")?.api_key,
    )?;

    // The key works (and its client keeps the connection for the next request).
    let url = doomed.tus_create(10, "before.txt")?;
    let id = file_id_from_url(&url)?;
    doomed.file(&id).context("the key reads its own upload")?;

    let revoked = server
        .run_cli(&["apikey", "revoke", "--key-id", &doomed_key.key_id])?
        .expect_success()?;
    eprintln!("{}: {}", revoked.command, revoked.stdout.trim());

    // Its very next request, of each kind, is 401.
    let status = |resp: reqwest::blocking::Response| resp.status().as_u16();
    let files = format!("{}/files", server.url());
    let create = status(
        doomed
            .http()
            .post(&files)
            .header("Authorization", doomed.bearer())
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "10")
            .send()
            .with_context(|| format!("POST {files}"))?,
    );
    ensure!(
        create == 401,
        "POST /files with a key revoked by the CLI answered {create}"
    );
    let head = doomed.tus_head(&url)?;
    ensure!(
        head.status == 401,
        "HEAD of its own upload with a revoked key answered {}",
        head.status
    );
    let info_url = format!("{}/api/v1/files/{id}", server.url());
    let info = status(
        doomed
            .http()
            .get(&info_url)
            .header("Authorization", doomed.bearer())
            .send()
            .with_context(|| format!("GET {info_url}"))?,
    );
    ensure!(
        info == 401,
        "GET {info_url} with a revoked key answered {info}"
    );

    // The tenant's other keys are untouched.
    colleague
        .tus_create(10, "colleague.txt")
        .context("another sender key of the tenant after the revocation")?;
    admin
        .file(&id)
        .context("the admin reads the revoked key's upload")?;

    // Revoking twice is harmless and says so; the key stays refused.
    let again = server
        .run_cli(&["apikey", "revoke", "--key-id", &doomed_key.key_id])?
        .expect_success()?;
    ensure!(
        again.stdout.contains("already revoked"),
        "a second revoke printed {:?}",
        again.stdout
    );
    let head = doomed.tus_head(&url)?;
    ensure!(
        head.status == 401,
        "HEAD with a key revoked twice answered {}",
        head.status
    );
    // An unknown key id is an error.
    let unknown = server.run_cli(&[
        "apikey",
        "revoke",
        "--key-id",
        "00000000-0000-4000-8000-000000000000",
    ])?;
    ensure!(
        !unknown.success,
        "revoking a key id that does not exist succeeded: {}",
        unknown.stdout
    );
    Ok(())
}
