//! `ferry relay account create|revoke` and `ferry relay domain add|remove|list`, run as an
//! operator runs them beside a live `ferry serve`: the credentials are printed once (JSON with
//! `--json`), only their hash is kept, a domain relays for one tenant, each change is in the
//! tenant's audit chain, and mistakes fail with a message.

use anyhow::{Result, ensure};
use ferry_e2e::{Api, Server, run_ferry};

#[test]
fn the_operator_creates_and_revokes_relay_accounts() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-relay-").tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start_with_env(&data, &[])?;
    let tenant = server.create_tenant("law firm")?;

    let create = [
        "relay",
        "account",
        "create",
        "--tenant",
        &tenant.tenant_id,
        "--json",
    ];
    let run = run_ferry(&data, server.env(), &create)?.expect_success()?;
    let account: serde_json::Value = serde_json::from_str(run.stdout.trim())?;
    let username = account["username"].as_str().unwrap_or_default().to_owned();
    let password = account["password"].as_str().unwrap_or_default().to_owned();
    ensure!(
        username.starts_with("fr_") && password.len() == 43,
        "{account}"
    );

    // Only a hash is at rest: the password appears nowhere in the data directory.
    for entry in walk(&data)? {
        let bytes = std::fs::read(&entry)?;
        ensure!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "the password is stored in clear in {}",
            entry.display()
        );
    }

    let revoke = ["relay", "account", "revoke", "--username", &username];
    let run = run_ferry(&data, server.env(), &revoke)?.expect_success()?;
    ensure!(run.stdout.starts_with("revoked"), "{}", run.stdout);
    let again = run_ferry(&data, server.env(), &revoke)?.expect_success()?;
    ensure!(again.stdout.contains("already revoked"), "{}", again.stdout);

    let unknown = run_ferry(
        &data,
        server.env(),
        &[
            "relay",
            "account",
            "revoke",
            "--username",
            "fr_nosuchaccount",
        ],
    )?;
    ensure!(
        !unknown.success && unknown.stderr.contains("no relay account"),
        "{}",
        unknown.stderr
    );
    let nowhere = run_ferry(
        &data,
        server.env(),
        &[
            "relay",
            "account",
            "create",
            "--tenant",
            "7a1b2c3d-0000-4000-8000-000000000000",
        ],
    )?;
    ensure!(
        !nowhere.success,
        "an account for no tenant: {}",
        nowhere.stdout
    );

    let kinds: Vec<String> = Api::new(server.url(), &tenant.api_key)?
        .audit_events()?
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .filter(|k| k.starts_with("relay_account."))
        .collect();
    ensure!(
        kinds == ["relay_account.created", "relay_account.revoked"],
        "{kinds:?}"
    );
    let verify = run_ferry(&data, server.env(), &["audit", "verify"])?.expect_success()?;
    ensure!(verify.stdout.contains("chain intact"), "{}", verify.stdout);
    Ok(())
}

#[test]
fn the_operator_gives_each_domain_to_one_tenant() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-relay-").tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start_with_env(&data, &[])?;
    let firm = server.create_tenant("law firm")?;
    let other = server.create_tenant("other firm")?;
    let domain = |verb: &str, tenant: &str, name: &str| -> Result<ferry_e2e::CliRun> {
        run_ferry(
            &data,
            server.env(),
            &[
                "relay", "domain", verb, "--tenant", tenant, "--domain", name,
            ],
        )
    };
    let list = |tenant: &str| -> Result<serde_json::Value> {
        let run = run_ferry(
            &data,
            server.env(),
            &["relay", "domain", "list", "--tenant", tenant, "--json"],
        )?
        .expect_success()?;
        Ok(serde_json::from_str(run.stdout.trim())?)
    };

    let added = domain("add", &firm.tenant_id, "Firm.Example.")?.expect_success()?;
    ensure!(added.stdout.starts_with("added"), "{}", added.stdout);
    let again = domain("add", &firm.tenant_id, "firm.example")?.expect_success()?;
    ensure!(again.stdout.starts_with("already"), "{}", again.stdout);
    domain("add", &firm.tenant_id, "mail.firm.example")?.expect_success()?;
    ensure!(
        list(&firm.tenant_id)? == serde_json::json!(["firm.example", "mail.firm.example"]),
        "{}",
        list(&firm.tenant_id)?
    );
    // Another tenant cannot take it; not a name is refused; removing what is not there fails.
    let taken = domain("add", &other.tenant_id, "firm.example")?;
    ensure!(
        !taken.success && taken.stderr.contains("another tenant"),
        "{}",
        taken.stderr
    );
    let bad = domain("add", &firm.tenant_id, "not a domain")?;
    ensure!(
        !bad.success && bad.stderr.contains("not a domain name"),
        "{}",
        bad.stderr
    );
    let absent = domain("remove", &other.tenant_id, "firm.example")?;
    ensure!(!absent.success, "{}", absent.stdout);
    domain("remove", &firm.tenant_id, "mail.firm.example")?.expect_success()?;
    ensure!(list(&firm.tenant_id)? == serde_json::json!(["firm.example"]));
    ensure!(list(&other.tenant_id)? == serde_json::json!([]));

    let kinds: Vec<String> = Api::new(server.url(), &firm.api_key)?
        .audit_events()?
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .filter(|k| k.starts_with("relay.domain"))
        .collect();
    ensure!(
        kinds
            == [
                "relay.domain_added",
                "relay.domain_added",
                "relay.domain_removed"
            ],
        "{kinds:?}"
    );
    Ok(())
}

#[test]
fn the_operator_rotates_a_dkim_key_without_a_gap() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-relay-").tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start_with_env(&data, &[])?;
    let firm = server.create_tenant("law firm")?;
    let ferry = |args: &[&str]| run_ferry(&data, server.env(), args);
    let keygen = |selector: &str| -> Result<serde_json::Value> {
        let run = ferry(&[
            "relay",
            "dkim-keygen",
            "--tenant",
            &firm.tenant_id,
            "--domain",
            "firm.example",
            "--selector",
            selector,
            "--algorithm",
            "ed25519",
            "--json",
        ])?
        .expect_success()?;
        Ok(serde_json::from_str(run.stdout.trim())?)
    };
    let signing = || -> Result<Vec<(String, bool)>> {
        let run = ferry(&[
            "relay",
            "dkim-key",
            "list",
            "--tenant",
            &firm.tenant_id,
            "--json",
        ])?
        .expect_success()?;
        let keys: Vec<serde_json::Value> = serde_json::from_str(run.stdout.trim())?;
        Ok(keys
            .iter()
            .map(|k| {
                (
                    k["selector"].as_str().unwrap_or_default().to_owned(),
                    k["activated_at"].is_string(),
                )
            })
            .collect())
    };
    ensure!(
        keygen("s2025")?["active"] == true,
        "the first key signs at once"
    );
    let next = keygen("s2026")?;
    ensure!(next["active"] == false, "the next one waits: {next}");
    ensure!(
        signing()? == [("s2025".to_owned(), true), ("s2026".to_owned(), false)],
        "{:?}",
        signing()?
    );
    let reused = ferry(&[
        "relay",
        "dkim-keygen",
        "--tenant",
        &firm.tenant_id,
        "--domain",
        "firm.example",
        "--selector",
        "s2025",
    ])?;
    ensure!(
        !reused.success,
        "a selector is not reused: {}",
        reused.stdout
    );
    let key = |verb: &str, selector: &str| {
        ferry(&[
            "relay",
            "dkim-key",
            verb,
            "--tenant",
            &firm.tenant_id,
            "--domain",
            "firm.example",
            "--selector",
            selector,
        ])
    };
    key("activate", "s2026")?.expect_success()?;
    key("remove", "s2025")?.expect_success()?;
    ensure!(
        signing()? == [("s2026".to_owned(), true)],
        "{:?}",
        signing()?
    );
    ensure!(!key("remove", "s2025")?.success, "removed twice");
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}
