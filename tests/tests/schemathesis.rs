//! schemathesis (pinned in `tests/openapi/requirements.txt`) fuzzes the real `ferry` binary
//! from its own `GET /api/openapi.json`, with an admin key, and must find no 5xx and no
//! response the document does not describe (status, content type, headers, body schema),
//! while requests that break the schema must be refused with a 4xx.
//!
//! So that the fuzzer reaches past the 404s of random ids, the tenant owns two complete files,
//! a live share of both and a revoked share of one, and a generated config file
//! (`schemathesis.toml`) offers their ids, both link tokens and a valid recipient as dictionary
//! values for the matching parameters, half of the time (`DELETE` gets the revoked share's id
//! a fifth of the time, so the live link stays live); the rest stays random.
//! `PUT /api/v1/admin/policy` changes the tenant's policy as it goes, which is fine: nothing
//! may answer 5xx whatever the policy.
//!
//! `FERRY_SCHEMATHESIS_EXAMPLES` (default 200) sets the examples per operation and phase,
//! `FERRY_SCHEMATHESIS_SEED` (default fixed) the seed; the seed is printed to rerun a failure.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ferry_e2e::{
    Api, ChildGuard, Server, ensure_client_tools, file_id_from_url, patch_expect_204, random_file,
    schemathesis,
};

/// The longest the fuzzer may run before it is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The checks that apply to a single-tenant, single-key run. Left out:
/// `positive_data_acceptance`, since schema-valid data is still refused by rules a schema
/// cannot state (a random file id is 404; `default_days` above `max_days`); and
/// `use_after_free`, since `DELETE /api/v1/shares/{id}` revokes a share's links and keeps the
/// share, so that its sender can still read it (`state: revoked`, its download counts) — by
/// design `GET` answers 200 after it, not 404 (its links do answer 410, tested in `revoke`).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      negative_data_rejection,missing_required_header,unsupported_method,\
                      allow_header_conformance,ignored_auth,ensure_resource_availability";

/// A file uploaded with raw tus and complete.
fn upload(api: &Api, dir: &Path, name: &str, size: u64) -> Result<String> {
    let source = random_file(dir, name, size)?;
    let url = api.tus_create(size, name)?;
    patch_expect_204(api, &url, &source.path, 0, size, Duration::from_secs(10))?;
    file_id_from_url(&url)
}

/// The config file: dictionaries of real ids for the parameters that name them.
fn config(files: &[String], tokens: &[&str], revoked_share: &str) -> String {
    let quoted = |values: &[&str]| {
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let file_ids: Vec<&str> = files.iter().map(String::as_str).collect();
    format!(
        r#"# Written by tests/tests/schemathesis.rs for one run.
[dictionaries]
file_ids = {{ values = [{files}] }}
tokens = {{ values = [{tokens}] }}
share_ids = {{ values = ["{revoked_share}"] }}
recipients = {{ values = ["dr.x@klinik.example.eu"] }}

[[operations]]
include-path = "/api/v1/files/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "file_ids", probability = 0.5 }} }}

[[operations]]
include-path = "/api/v1/shares"
parameters = {{ "body.files[*]" = {{ dictionary = "file_ids", probability = 0.5 }}, "body.recipients[*]" = {{ dictionary = "recipients", probability = 0.5 }} }}

[[operations]]
include-path = "/api/v1/shares/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "share_ids", probability = 0.2 }} }}

[[operations]]
include-path = "/api/v1/shares/{{id}}/links"
parameters = {{ "path.id" = {{ dictionary = "share_ids", probability = 0.5 }}, "body.recipient" = {{ dictionary = "recipients", probability = 0.5 }} }}

[[operations]]
include-path = "/api/v1/shares/{{id}}/links/{{link_id}}"
parameters = {{ "path.id" = {{ dictionary = "share_ids", probability = 0.5 }} }}

[[operations]]
include-path = "/d/{{token}}"
parameters = {{ "path.token" = {{ dictionary = "tokens", probability = 0.5 }} }}

[[operations]]
include-path = "/d/{{token}}/f/{{file}}"
parameters = {{ "path.token" = {{ dictionary = "tokens", probability = 0.5 }}, "path.file" = {{ dictionary = "file_ids", probability = 0.5 }} }}
"#,
        files = quoted(&file_ids),
        tokens = quoted(tokens),
    )
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_response() -> Result<()> {
    ensure_client_tools()?;
    let bin = schemathesis()?;
    ensure!(
        bin.is_file(),
        "no schemathesis at {}: run scripts/install-test-tools or set FERRY_SCHEMATHESIS",
        bin.display()
    );
    let examples = std::env::var("FERRY_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "200".into());
    let seed = std::env::var("FERRY_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261124".into());

    let dir = tempfile::Builder::new()
        .prefix("ferry-openapi-")
        .tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let tenant = server.create_tenant("fuzzed")?;
    let api = server.api(&tenant)?;
    let files = vec![
        upload(&api, dir.path(), "small.txt", 1_000)?,
        upload(&api, dir.path(), "two segments.bin", 65_537)?,
    ];
    let file_refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let recipients = ["dr.x@klinik.example.eu"];
    let live = api.create_share(&file_refs, &recipients, Some(7))?;
    let revoked = api.create_share(&file_refs[..1], &recipients, None)?;
    let revocation = api
        .http()
        .delete(format!("{}/api/v1/shares/{}", server.url(), revoked.id))
        .header("Authorization", api.bearer())
        .send()?;
    ensure!(
        revocation.status().as_u16() == 204,
        "revoking {} answered {}",
        revoked.id,
        revocation.status()
    );
    let token = |url: &str| {
        url.rsplit('/')
            .next()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token in {url}"))
    };
    let tokens = [token(&live.url)?, token(&revoked.url)?];
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let config_path = dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, config(&files, &token_refs, &revoked.id))?;

    let document = format!("{}/api/openapi.json", server.url());
    let mut command = Command::new(&bin);
    command
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", &document])
        .args(["--header", &format!("Authorization: {}", api.bearer())])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "2", "--generation-database", "none"])
        .args(["--request-timeout", "30", "--no-color"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // (Not the command itself: its arguments carry the API key.)
    eprintln!(
        "running {} run {document} --checks {CHECKS} --max-examples {examples} --seed {seed}",
        bin.display()
    );
    let started = Instant::now();
    let (status, stdout, stderr) = run(command, TIMEOUT)?;
    let took = started.elapsed();
    let output = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let Some(status) = status else {
        bail!("schemathesis did not finish within {TIMEOUT:?} (seed {seed})\n{output}");
    };
    ensure!(
        status.success(),
        "schemathesis found problems ({status}, seed {seed}, {examples} examples, {took:?}); \
         fix the server or, if the document is wrong, the annotations in server/src/http/\n\
         {output}"
    );
    eprintln!("schemathesis passed in {took:?} (seed {seed}, {examples} examples)\n{stdout}");
    Ok(())
}

/// Runs `command` to its end or until `timeout` (then kills it and answers `None`), collecting
/// its output.
fn run(
    mut command: Command,
    timeout: Duration,
) -> Result<(Option<std::process::ExitStatus>, String, String)> {
    let mut child = ChildGuard::new(command.spawn().context("cannot start schemathesis")?);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = child.wait_timeout(timeout)?;
    let joined = |h: thread::JoinHandle<String>| {
        h.join()
            .map_err(|_| anyhow!("an output reader of schemathesis panicked"))
    };
    Ok((status, joined(stdout)?, joined(stderr)?))
}
