//! The Outlook task pane as a sender uses it: Ferry's own pane, served by the real binary, in
//! headless Chromium with a stand-in for Office.js (`browser/office-standin.js`, answered for
//! Microsoft's CDN URL), driven by keyboard only by `browser/sender.mjs`; axe-core checks
//! every state; screenshots go to `FERRY_SCREENSHOTS` (default: a temporary directory).
//!
//! - `the_pane_sends_two_files_as_one_link`: at 320 px, in English and in Dutch, two files
//!   (200 MiB + 12,345 B and a small one named with non-ASCII letters) upload with
//!   tus-js-client, the large one is paused (no byte moves) and resumed, and when both are
//!   done one block is inserted with the link, names, sizes, expiry and BLAKE3s equal to the
//!   sources' — and a recipient following the link in the browser downloads both, byte for
//!   byte the sources. In Dutch the message is plain text (the block is text) and a third
//!   file, cancelled at once, is left out. A Bcc recipient gets the warning; the retention choices
//!   are the policy's.
//! - `an_upload_survives_a_server_kill_and_a_closed_pane`: ferry is SIGKILLed and restarted
//!   mid-upload (tus-js-client carries on by itself), then the pane is closed mid-upload and
//!   opened again on the same draft: it lists the file as unfinished, and picking it again
//!   resumes it past where it stopped; the inserted block's BLAKE3 is the source's.
//! - `a_person_signed_in_with_office_sso_sends_from_the_pane`: with Entra sign-in configured
//!   and the organisation linked, the pane signs in through `Office.auth.getAccessToken`
//!   (the stand-in answers a token signed like Entra's), sends a 64 MiB file in German, and the
//!   audit names the person.
//! - `the_served_scripts_are_the_locked_ones`: `/addin/tus.min.js` and `/addin/msal-browser.min.js`
//!   are byte for byte what `addin/package-lock.json` installs, and the pane's pages carry a
//!   strict Content-Security-Policy.
//! - `the_launch_handler_blocks_only_unfinished_drafts` and `every_string_exists_in_every_language`
//!   run `browser/launchevent.mjs` and `browser/strings.mjs` under Node.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use std::time::Duration;

use ferry_e2e::{Server, blake3_file, browser_dir, open_share_in_browser, random_file};
use ferry_testkit::entra::{JwksServer, Signer};
use serde_json::Value;

/// Where screenshots go: `FERRY_SCREENSHOTS`, else a directory under the system temp dir.
fn shots_dir() -> PathBuf {
    std::env::var_os("FERRY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ferry-pane-screenshots"))
}

/// A sender key of a new tenant whose policy offers 30 days by default, 60 at most.
fn sender(server: &Server) -> Result<String> {
    let tenant = server.create_tenant("clinic")?;
    let admin = server.api(&tenant)?;
    let response = admin
        .http()
        .put(format!("{}/api/v1/admin/policy", server.url()))
        .header("Authorization", admin.bearer())
        .json(&serde_json::json!({"default_days": 30, "max_days": 60}))
        .send()?;
    ensure!(
        response.status().is_success(),
        "policy: {}",
        response.status()
    );
    Ok(server.create_api_key(&tenant, "sender")?.api_key)
}

/// Runs `sender.mjs` with `args`; `on_event` sees each JSON line and may answer on stdin.
fn run_pane(
    args: &[String],
    mut on_event: impl FnMut(&Value) -> Result<Option<String>>,
) -> Result<Value> {
    let mut child = Command::new("node")
        .arg(browser_dir().join("sender.mjs"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run node (scripts/install-test-tools)")?;
    let guard_pid = child.id();
    let stdout = child.stdout.take().context("stdout")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let event: Value =
            serde_json::from_str(&line).with_context(|| format!("sender.mjs printed {line:?}"))?;
        if event["event"] == "result" {
            result = Some(event);
            continue;
        }
        if let Some(answer) = on_event(&event)? {
            writeln!(stdin, "{answer}")?;
        }
    }
    drop(stdin);
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "sender.mjs (pid {guard_pid}) failed ({}):\n{stderr}",
        output.status
    );
    result.context("sender.mjs printed no result")
}

/// The inserted HTML block's link and (name, blake3) pairs, checked against what the block
/// must say.
fn check_block(block: &Value, sources: &[(&str, &str, u64)]) -> Result<String> {
    let data = block["data"].as_str().context("block data")?;
    for (name, blake3, _) in sources {
        ensure!(data.contains(name), "the block names {name}: {data}");
        ensure!(
            data.contains(blake3),
            "the block has {name}'s BLAKE3 {blake3}: {data}"
        );
    }
    if block["coercionType"] == "text" {
        ensure!(!data.contains('<'), "a text block holds no markup: {data}");
        let start = data.find("http").context("a link")?;
        let end = start
            + data[start..]
                .find(char::is_whitespace)
                .context("end of the link")?;
        return Ok(data[start..end].to_owned());
    }
    ensure!(block["coercionType"] == "html", "{block}");
    let start = data.find("href=\"").context("a link")? + 6;
    let end = start + data[start..].find('"').context("end of the link")?;
    Ok(data[start..end].replace("&amp;", "&"))
}

fn pane_args(
    server: &Server,
    key: &str,
    files: &[&Path],
    lang: &str,
    extra: &[&str],
) -> Vec<String> {
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec![
        "--base".to_owned(),
        server.url().to_owned(),
        "--key".to_owned(),
        key.to_owned(),
        "--files".to_owned(),
        paths.join(","),
        "--shots".to_owned(),
        shots_dir().display().to_string(),
        "--lang".to_owned(),
        lang.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[test]
fn the_pane_sends_two_files_as_one_link() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-pane-").tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let key = sender(&server)?;
    let big = random_file(dir.path(), "scan.bin", 200 * 1024 * 1024 + 12_345)?;
    let small = random_file(dir.path(), "Übersicht 2026.pdf", 1_048_576 + 7)?;
    // A third file, cancelled at once in the Dutch run (a plain-text message there).
    let extra_file = random_file(dir.path(), "extra.bin", 100 * 1024 * 1024)?;
    for (lang, bcc) in [("en-US", "secret@elsewhere.example"), ("nl-NL", "")] {
        let mut extra = vec!["--scenario", "send", "--cc", "colleague@praktijk.example"];
        let mut files = vec![big.path.as_path(), small.path.as_path()];
        if bcc.is_empty() {
            extra.extend(["--body", "text", "--cancel", "extra.bin"]);
            files.push(extra_file.path.as_path());
        } else {
            extra.extend(["--bcc", bcc]);
        }
        let args = pane_args(&server, &key, &files, lang, &extra);
        let result = run_pane(&args, |_| Ok(None))?;
        let blocks = result["inserted"].as_array().context("inserted")?;
        ensure!(blocks.len() == 1, "{lang}: one block, got {blocks:?}");
        let kind = if bcc.is_empty() { "text" } else { "html" };
        ensure!(blocks[0]["coercionType"] == kind, "{lang}: a {kind} block");
        let data = blocks[0]["data"].as_str().unwrap_or_default();
        ensure!(
            !data.contains("extra.bin"),
            "{lang}: the cancelled file is not shared"
        );
        let link = check_block(
            &blocks[0],
            &[
                ("scan.bin", &big.blake3, big.size),
                ("Übersicht 2026.pdf", &small.blake3, small.size),
            ],
        )?;
        ensure!(link.starts_with(&format!("{}/d/", server.url())), "{link}");
        // A recipient follows the link in the browser and downloads both files: byte for
        // byte the sources (BLAKE3 of what the browser saved).
        let out = dir.path().join(format!("downloads-{lang}"));
        let visit = open_share_in_browser(&link, &out, None, Duration::from_secs(180))?;
        ensure!(
            visit.files.len() == 2,
            "{lang}: two downloads: {:?}",
            visit.files
        );
        for source in [&big, &small] {
            let name = source
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let saved = visit
                .files
                .iter()
                .find(|f| f.name == name)
                .with_context(|| format!("{lang}: {name} was not downloaded"))?;
            ensure!(
                blake3_file(&saved.path)? == source.blake3,
                "{lang}: {name} downloaded differs from the source"
            );
        }
        let states = result["states"].as_array().context("states")?;
        ensure!(
            states.iter().all(|s| s == "done"),
            "{lang}: every file done: {states:?}"
        );
        let retention: Vec<&str> = result["retention"]
            .as_array()
            .context("retention")?
            .iter()
            .filter_map(|o| o["value"].as_str())
            .collect();
        assert_eq!(
            retention,
            ["1", "7", "14", "30", "60"],
            "{lang}: the policy's choices"
        );
        let selected: Vec<&Value> = result["retention"]
            .as_array()
            .context("retention")?
            .iter()
            .filter(|o| o["selected"] == true)
            .collect();
        ensure!(
            selected.len() == 1 && selected[0]["value"] == "30",
            "{lang}: {selected:?}"
        );
        let alerts = result["alerts"].as_str().unwrap_or_default();
        ensure!(
            alerts.contains("Bcc") != bcc.is_empty(),
            "{lang}: the Bcc warning shows only with a Bcc recipient: {alerts:?}"
        );
        if lang.starts_with("nl") {
            let html = blocks[0]["data"].as_str().unwrap_or_default();
            ensure!(
                html.contains("Downloaden") && html.contains("Beschikbaar tot"),
                "{html}"
            );
            let message = result["message"].as_str().unwrap_or_default();
            ensure!(message.contains("De link staat in uw bericht"), "{message}");
        }
        let draft = result["draft"].as_str().unwrap_or("{}");
        let draft: Value = serde_json::from_str(draft)?;
        let unfinished: Value = serde_json::from_str(draft["ferry"].as_str().unwrap_or("{}"))?;
        ensure!(
            unfinished["unfinished"]
                .as_array()
                .is_some_and(Vec::is_empty),
            "{lang}: nothing left unfinished in the draft: {unfinished}"
        );
        let csp = result["headers"]["content-security-policy"]
            .as_str()
            .unwrap_or_default();
        ensure!(csp.contains("default-src 'none'"), "{csp}");
    }
    eprintln!("screenshots in {}", shots_dir().display());
    Ok(())
}

#[test]
fn an_upload_survives_a_server_kill_and_a_closed_pane() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-pane-").tempdir()?;
    let mut server = Server::start(dir.path().join("data"))?;
    let key = sender(&server)?;
    let big = random_file(dir.path(), "archive.bin", 200 * 1024 * 1024 + 4_321)?;
    let args = pane_args(
        &server,
        &key,
        &[&big.path],
        "en-US",
        &["--scenario", "interrupt"],
    );
    let mut killed = false;
    let result = run_pane(&args, |event| {
        if event["event"] == "kill" {
            server.restart()?;
            killed = true;
            return Ok(Some("restarted".to_owned()));
        }
        Ok(None)
    })?;
    ensure!(killed, "the script never asked for the kill");
    let unfinished = result["unfinished"].as_str().unwrap_or_default();
    ensure!(
        unfinished.contains("archive.bin"),
        "the reopened pane lists it: {unfinished:?}"
    );
    let resumed_at = result["resumedAt"].as_u64().unwrap_or(0);
    ensure!(
        resumed_at >= 64 * 1024 * 1024,
        "picked again, it resumes where it stopped (≥ 64 MiB), not from {resumed_at}"
    );
    let blocks = result["inserted"].as_array().context("inserted")?;
    ensure!(blocks.len() == 1, "one block: {blocks:?}");
    let link = check_block(&blocks[0], &[("archive.bin", &big.blake3, big.size)])?;
    let page = reqwest::blocking::get(&link)?;
    ensure!(
        page.status().as_u16() == 200,
        "the link answers {}",
        page.status()
    );
    Ok(())
}

/// Signed in with Microsoft 365 (Office SSO: the stand-in's `Office.auth.getAccessToken`
/// answers a token signed like Entra's, whose keys the test serves on 127.0.0.1), a person of
/// a linked organisation sends a file from the pane, in German, and is its owner.
#[test]
fn a_person_signed_in_with_office_sso_sends_from_the_pane() -> Result<()> {
    const CLIENT_ID: &str = "0b6c9f5e-2b1d-4a7e-9a49-3c2f0d1e6a11";
    const ORGANISATION: &str = "5d8e0c4b-7f2a-4e61-b0a3-91c2d4e5f607";
    let runtime = tokio::runtime::Runtime::new()?;
    let signer = Signer::new("key-1")?;
    let jwks = runtime.block_on(JwksServer::start(&[&signer]))?;
    let dir = tempfile::Builder::new().prefix("ferry-pane-").tempdir()?;
    let server = Server::start_with_env(
        dir.path().join("data"),
        &[
            ("FERRY_ENTRA_CLIENT_ID", CLIENT_ID),
            ("FERRY_ENTRA_JWKS_URL", &jwks.url),
        ],
    )?;
    let tenant = server.create_tenant("hospital")?;
    server
        .run_cli(&[
            "tenant",
            "link-entra",
            "--tenant",
            &tenant.tenant_id,
            "--entra-tenant",
            ORGANISATION,
        ])?
        .expect_success()?;
    let token = signer.access_token(
        ORGANISATION,
        "1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "an@hospital.example",
        CLIENT_ID,
    )?;
    let file = random_file(dir.path(), "Befund.pdf", 64 * 1024 * 1024 + 99)?;
    let args = vec![
        "--base".to_owned(),
        server.url().to_owned(),
        "--token".to_owned(),
        token,
        "--files".to_owned(),
        file.path.display().to_string(),
        "--shots".to_owned(),
        shots_dir().display().to_string(),
        "--lang".to_owned(),
        "de-DE".to_owned(),
        // Slow enough that the pause of the `send` scenario comes before the end.
        "--throttle".to_owned(),
        (8 * 1024 * 1024).to_string(),
    ];
    let result = run_pane(&args, |_| Ok(None))?;
    let blocks = result["inserted"].as_array().context("inserted")?;
    ensure!(blocks.len() == 1, "one block: {blocks:?}");
    check_block(&blocks[0], &[("Befund.pdf", &file.blake3, file.size)])?;
    let html = blocks[0]["data"].as_str().unwrap_or_default();
    ensure!(html.contains("Herunterladen"), "{html}");
    // The admin's audit export names the person as the uploader.
    let admin = server.api(&tenant)?;
    let audit = admin
        .http()
        .get(format!("{}/api/v1/admin/audit", server.url()))
        .header("Authorization", admin.bearer())
        .send()?
        .text()?;
    let added = audit
        .lines()
        .find(|line| line.contains("\"person.added\""))
        .context("a person.added event")?;
    ensure!(added.contains("an@hospital.example"), "{added}");
    let uploaded = audit
        .lines()
        .find(|line| line.contains("\"upload.completed\""))
        .context("an upload.completed event")?;
    ensure!(
        uploaded.contains("\"person:"),
        "the upload is the person's: {uploaded}"
    );
    drop(runtime);
    Ok(())
}

#[test]
fn the_served_scripts_are_the_locked_ones() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-pane-").tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let addin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../addin");
    for (served, installed) in [
        ("tus.min.js", "node_modules/tus-js-client/dist/tus.min.js"),
        (
            "msal-browser.min.js",
            "node_modules/@azure/msal-browser/lib/msal-browser.min.js",
        ),
    ] {
        let locked = std::fs::read(addin.join(installed)).with_context(|| {
            format!("{installed} is missing: run scripts/install-test-tools (npm ci in addin/)")
        })?;
        let response = reqwest::blocking::get(format!("{}/addin/{served}", server.url()))?;
        ensure!(
            response.status().as_u16() == 200,
            "{served}: {}",
            response.status()
        );
        let bytes = response.bytes()?;
        ensure!(
            bytes.as_ref() == locked.as_slice(),
            "/addin/{served} differs from {installed} as addin/package-lock.json installs it \
             (run scripts/vendor-addin)"
        );
    }
    for page in ["taskpane.html", "launchevent.html"] {
        let response = reqwest::blocking::get(format!("{}/addin/{page}", server.url()))?;
        let csp = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        for rule in [
            "default-src 'none'",
            "script-src 'self' https://appsforoffice.microsoft.com;",
            "frame-ancestors",
        ] {
            ensure!(csp.contains(rule), "{page}: CSP lacks {rule:?}: {csp}");
        }
        let html = response.text()?;
        for script in html.match_indices("<script src=\"") {
            let rest = &html[script.0 + 13..];
            let src = &rest[..rest.find('"').unwrap_or(0)];
            ensure!(
                !src.contains("://")
                    || src == "https://appsforoffice.microsoft.com/lib/1/hosted/office.js",
                "{page} loads a third-party script {src}"
            );
        }
    }
    let missing = reqwest::blocking::get(format!("{}/addin/nothing.js", server.url()))?;
    ensure!(missing.status().as_u16() == 404);
    Ok(())
}

fn node_check(script: &str) -> Result<String> {
    let out = Command::new("node")
        .arg(browser_dir().join(script))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../addin/pane"))
        .output()
        .context("cannot run node")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{script} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[test]
fn the_launch_handler_blocks_only_unfinished_drafts() -> Result<()> {
    let out = node_check("launchevent.mjs")?;
    ensure!(out.contains("ok"), "{out}");
    Ok(())
}

#[test]
fn every_string_exists_in_every_language() -> Result<()> {
    let out = node_check("strings.mjs")?;
    ensure!(out.contains("ok"), "{out}");
    Ok(())
}
