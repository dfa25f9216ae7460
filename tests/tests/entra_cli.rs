//! `ferry tenant link-entra` and `unlink-entra`, run as an operator runs them beside a live
//! `ferry serve` that has Entra sign-in configured (its signing keys served on 127.0.0.1 by
//! the test, as Entra serves them):
//!
//! - a person of a Microsoft 365 organisation is refused (401 `entra_tenant_not_linked`)
//!   until the operator links it, can then act as a sender at once (no restart), and is
//!   refused again from the request after `unlink-entra` returns;
//! - linking twice says so; unlinking what is not linked, or linking to a tenant that does
//!   not exist, fails with a message and a non-zero exit.

use anyhow::{Result, ensure};
use ferry_e2e::{Server, run_ferry};
use ferry_testkit::entra::{JwksServer, Signer};

const CLIENT_ID: &str = "0b6c9f5e-2b1d-4a7e-9a49-3c2f0d1e6a11";
const ORGANISATION: &str = "5d8e0c4b-7f2a-4e61-b0a3-91c2d4e5f607";

#[test]
fn the_operator_links_and_unlinks_an_organisation_beside_a_live_server() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let signer = Signer::new("key-1")?;
    let jwks = runtime.block_on(JwksServer::start(&[&signer]))?;
    let dir = tempfile::Builder::new().prefix("ferry-entra-").tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &data,
        &[
            ("FERRY_ENTRA_CLIENT_ID", CLIENT_ID),
            ("FERRY_ENTRA_JWKS_URL", &jwks.url),
        ],
    )?;
    let tenant = server.create_tenant("hospital")?;
    let token = signer.access_token(
        ORGANISATION,
        "1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "an@hospital.example",
        CLIENT_ID,
    )?;
    let http = reqwest::blocking::Client::new();
    let status_of = |path: &str| -> Result<(u16, serde_json::Value)> {
        let response = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth(&token)
            .send()?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or_default()))
    };
    let probe = "/api/v1/files/00000000-0000-0000-0000-000000000000";
    let (status, body) = status_of(probe)?;
    ensure!(
        status == 401 && body["error"] == "entra_tenant_not_linked",
        "before the link: {status} {body}"
    );

    let link = [
        "tenant",
        "link-entra",
        "--tenant",
        &tenant.tenant_id,
        "--entra-tenant",
        ORGANISATION,
    ];
    let run = run_ferry(&data, server.env(), &link)?.expect_success()?;
    ensure!(run.stdout.starts_with("linked"), "{}", run.stdout);
    let (status, _) = status_of(probe)?;
    ensure!(
        status == 404,
        "linked: a sender asking for a file that is not there, got {status}"
    );
    let again = run_ferry(&data, server.env(), &link)?.expect_success()?;
    ensure!(
        again.stdout.starts_with("already linked"),
        "{}",
        again.stdout
    );

    let unlink = [
        "tenant",
        "unlink-entra",
        "--tenant",
        &tenant.tenant_id,
        "--entra-tenant",
        ORGANISATION,
    ];
    run_ferry(&data, server.env(), &unlink)?.expect_success()?;
    let (status, body) = status_of(probe)?;
    ensure!(
        status == 401 && body["error"] == "entra_tenant_not_linked",
        "after the unlink: {status} {body}"
    );
    let twice = run_ferry(&data, server.env(), &unlink)?;
    ensure!(
        !twice.success && twice.stderr.contains("is not linked"),
        "{}",
        twice.stderr
    );

    let nowhere = [
        "tenant",
        "link-entra",
        "--tenant",
        "7a1b2c3d-0000-4000-8000-000000000000",
        "--entra-tenant",
        ORGANISATION,
    ];
    let refused = run_ferry(&data, server.env(), &nowhere)?;
    ensure!(
        !refused.success,
        "linking to no tenant succeeded: {}",
        refused.stdout
    );
    ensure!(refused.stderr.contains("linking"), "{}", refused.stderr);
    ensure!(jwks.hits() >= 1, "the server fetched the keys");
    drop(runtime);
    Ok(())
}
