//! A recipient in a real browser: two files (1 B named with spaces and non-ASCII, and a
//! ~5 MiB `scan.pdf`) are uploaded with tus-js-client and shared; headless Chromium (Debian's,
//! driven by `tests/browser/recipient.mjs`) opens the share link, clicks each Download button
//! and saves each file under the name it suggests. Every download must be byte-identical to
//! its source (independent BLAKE3) and carry the original name, each table row must show its
//! file's BLAKE3, the page must log no console error and be served with
//! `Referrer-Policy: no-referrer`.
//!
//! `FERRY_SCREENSHOT=/path/page.png` keeps the page's screenshot (by default it goes to the
//! test's temporary directory and is only checked to be a PNG).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    BrowserVisit, ClientUpload, Server, SourceFile, TusClient, blake3_file, file_id_from_url,
    http_client, open_share_in_browser, random_file, run_client,
};

const MIB: u64 = 1 << 20;

/// The files a sender shares: a name with a space and a non-ASCII letter (its
/// `Content-Disposition` needs the RFC 8187 `filename*`), and a few MiB that do not fill the
/// last 64 KiB segment.
const FILES: [(&str, u64); 2] = [("Übersicht 2026.txt", 1), ("scan.pdf", 5 * MIB + 12_345)];

#[test]
fn recipient_downloads_in_chromium_are_identical() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let result = check(dir.path(), &server);
    server.explain(result)
}

/// A shared source file and the id the server gave it.
struct Shared {
    name: &'static str,
    source: SourceFile,
    id: String,
}

fn check(dir: &Path, server: &Server) -> Result<()> {
    let tenant = server.create_tenant("acme")?;
    let api = server.api(&tenant)?;
    let endpoint = server.tus_endpoint();
    let sources = dir.join("sources");
    std::fs::create_dir(&sources)?;

    let mut shared = Vec::new();
    for (name, size) in FILES {
        let source = random_file(&sources, name, size)?;
        let what = format!("uploading {name:?} ({size} B, rng seed {})", source.seed);
        let url = run_client(
            TusClient::Js,
            &ClientUpload {
                endpoint: &endpoint,
                key: &tenant.api_key,
                file: &source.path,
                chunk_size: MIB + 7,
                name: Some(name),
                extra: &[],
                timeout: Duration::from_secs(120),
            },
        )
        .with_context(|| what.clone())?;
        let id = file_id_from_url(&url)?;
        let info = api.file(&id).with_context(|| what.clone())?;
        ensure!(
            info.name == name && info.state == "complete" && info.size == size,
            "{what}: the API reports {info:?}"
        );
        shared.push(Shared { name, source, id });
    }
    let ids: Vec<&str> = shared.iter().map(|f| f.id.as_str()).collect();
    let share = api.create_share(&ids, &["recipient@example.eu"], None)?;

    // What the server sends, seen without a browser: the page and each file's disposition.
    let http = http_client()?;
    let page = http
        .get(&share.url)
        .send()
        .with_context(|| format!("GET {}", share.url))?;
    let page_policy = header(&page, "referrer-policy");
    ensure!(
        page.status().as_u16() == 200 && page_policy.as_deref() == Some("no-referrer"),
        "GET {} answered {} with Referrer-Policy {page_policy:?}, expected 200 and no-referrer",
        share.url,
        page.status()
    );
    let mut dispositions = Vec::new();
    for file in &shared {
        let url = share.file_url(&file.id);
        let resp = http
            .get(&url)
            .header("Range", "bytes=0-0")
            .send()
            .with_context(|| format!("GET {url}"))?;
        dispositions.push(format!(
            "{:?}: Content-Disposition {:?}",
            file.name,
            header(&resp, "content-disposition")
        ));
    }

    // The recipient, in Chromium.
    let out = dir.join("downloads");
    let screenshot = std::env::var_os("FERRY_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("page.png"));
    let started = Instant::now();
    let visit = open_share_in_browser(
        &share.url,
        &out,
        Some(&screenshot),
        Duration::from_secs(180),
    )?;
    eprintln!(
        "chromium: page and {} downloads in {:.1?} (screenshot {})",
        visit.files.len(),
        started.elapsed(),
        screenshot.display()
    );
    check_visit(&visit, &shared, &share.url, &out, &dispositions.join("\n"))?;

    let png = std::fs::read(&screenshot)
        .with_context(|| format!("no screenshot at {}", screenshot.display()))?;
    ensure!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot {} is not a PNG image ({} bytes)",
        screenshot.display(),
        png.len()
    );
    Ok(())
}

fn check_visit(
    visit: &BrowserVisit,
    shared: &[Shared],
    share_url: &str,
    out: &Path,
    dispositions: &str,
) -> Result<()> {
    let context =
        || format!("share {share_url}, as the browser saw it: {visit:#?}\n{dispositions}");
    ensure!(
        visit.status == 200,
        "the page answered {}\n{}",
        visit.status,
        context()
    );
    ensure!(
        visit.headers.get("referrer-policy").map(String::as_str) == Some("no-referrer"),
        "the browser received the page without Referrer-Policy: no-referrer\n{}",
        context()
    );
    let errors: Vec<_> = visit
        .console
        .iter()
        .filter(|m| m.kind != "warning")
        .collect();
    ensure!(
        errors.is_empty(),
        "console errors: {errors:#?}\n{}",
        context()
    );
    for warning in &visit.console {
        eprintln!("chromium console {}: {}", warning.kind, warning.text);
    }
    ensure!(
        visit.title.starts_with("Files for you — "),
        "page title {:?}\n{}",
        visit.title,
        context()
    );

    let names: Vec<&str> = visit.files.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> = shared.iter().map(|f| f.name).collect();
    ensure!(
        names == expected,
        "the browser suggested the file names {names:?}, expected the originals {expected:?} \
         in share order\n{}",
        context()
    );
    for (download, file) in visit.files.iter().zip(shared) {
        let what = format!(
            "{:?} ({} B, rng seed {})",
            file.name, file.source.size, file.source.seed
        );
        ensure!(
            download.path == out.join(file.name),
            "{what} was saved to {}, expected {}",
            download.path.display(),
            out.join(file.name).display()
        );
        ensure!(
            download.url.ends_with(&format!("/f/{}", file.id)),
            "the Download button in the row of {what} fetched {}, not file {}\n{}",
            download.url,
            file.id,
            context()
        );
        let got = blake3_file(&download.path)?;
        let len = std::fs::metadata(&download.path)?.len();
        ensure!(
            got == file.source.blake3 && len == file.source.size,
            "{what}: the browser's download has {len} B and BLAKE3 {got}, the source {}\n{}",
            file.source.blake3,
            context()
        );
        ensure!(
            download.row_text.contains(&file.source.blake3)
                && download.row_text.contains(file.name),
            "the table row of {what} does not show its name and BLAKE3 {}: {:?}",
            file.source.blake3,
            download.row_text
        );
    }
    Ok(())
}

fn header(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
