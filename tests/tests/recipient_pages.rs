//! The recipient's pages in a real browser, against the real binary: the share page in
//! English, Dutch, German and French (by `Accept-Language`, and French by the page's switch),
//! and the pages of an expired, a revoked and an exhausted link, each at 1280 px and 375 px,
//! screenshot and checked by axe-core with no violation and nothing wider than the screen;
//! with JavaScript disabled every download link still gives its file, and the keyboard alone
//! reaches and presses a Download button. A tenant's name and logo (set through the admin
//! API) head the page, and a file named like markup shows as text.
//!
//! Screenshots go to `FERRY_SCREENSHOT_DIR` if set (look at them), else a temporary directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    Server, browser_dir, chromium, ensure_client_tools, file_id_from_url, http_client,
    patch_expect_204, random_file,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A 96 × 96 PNG (a blue square with a white bar), made by Python's zlib at test time.
fn logo_png() -> Result<Vec<u8>> {
    const PNG: &str = r#"
import struct, sys, zlib
w = h = 96
rows = b"".join(b"\x00" + b"".join(
    (b"\xff\xff\xff" if 40 <= y < 56 and 16 <= x < 80 else b"\x0b\x53\x94") for x in range(w))
    for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
sys.stdout.buffer.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
"#;
    let output = Command::new("/usr/bin/python3")
        .args(["-c", PNG])
        .output()?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

#[test]
fn recipient_pages_in_four_languages_pass_axe_at_both_widths() -> Result<()> {
    ensure_client_tools()?;
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(dir.path().join("data"))?;
    let result = pages(&mut server, dir.path());
    server.explain(result)
}

fn pages(server: &mut Server, dir: &std::path::Path) -> Result<()> {
    let (_, api) = server.tenant_api("rivierenland")?;
    let http = http_client()?;
    let logo = format!("data:image/png;base64,{}", ferry_e2e::base64(&logo_png()?));
    let branded = http
        .put(api.absolute("/api/v1/admin/branding"))
        .header("Authorization", api.bearer())
        .json(&json!({"display_name": "Ziekenhuis Rivierenland", "logo": logo}))
        .send()?;
    ensure!(
        branded.status().as_u16() == 200,
        "branding: {}",
        branded.status()
    );

    let upload = |name: &str, size: u64| -> Result<String> {
        let source = random_file(dir, &format!("src-{size}"), size)?;
        let url = api.tus_create(size, name)?;
        patch_expect_204(&api, &url, &source.path, 0, size, Duration::ZERO)?;
        file_id_from_url(&url)
    };
    let files = [
        upload("<script>alert(1)</script>.pdf", 2_345_678)?,
        upload("MRI scan 2026-11-30 — left knee.dcm", 734_003)?,
        upload("ontslagbrief.docx", 48_213)?,
    ];
    let ids: Vec<&str> = files.iter().map(String::as_str).collect();
    let created: Value = http
        .post(api.absolute("/api/v1/shares"))
        .header("Authorization", api.bearer())
        .json(&json!({
            "files": ids,
            "recipients": ["patient@example.eu"],
            "retention_days": 7,
            "note": "Dear Ms de Vries,\n\nHere are the scans we discussed. Kind regards,\nDr. Jansen",
        }))
        .send()?
        .json()?;
    let normal_url = created["url"]
        .as_str()
        .context("the share's url")?
        .to_owned();

    let expiring = upload("verlopen.pdf", 1_000)?;
    let expired = api.create_share(&[&expiring], &["patient@example.eu"], Some(1))?;
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(49)).format(&Rfc3339)?;
    server
        .run_cli(&["expire", "--now", &later])?
        .expect_success()?;

    let withdrawn = upload("ingetrokken.pdf", 1_000)?;
    let revoked = api.create_share(&[&withdrawn], &["patient@example.eu"], Some(7))?;
    let deleted = http
        .delete(api.absolute(&format!("/api/v1/shares/{}", revoked.id)))
        .header("Authorization", api.bearer())
        .send()?;
    ensure!(deleted.status().as_u16() == 204);

    // Three copies per file: enough for the downloads below (each file once, the archive,
    // the keyboard's one), and spent on one file to show the exhausted page.
    api.update_policy(&[("max_downloads_per_file", json!(3))])?;
    let once = upload("eenmalig.pdf", 1_000)?;
    let exhausted = api.create_share(&[&once], &["patient@example.eu"], Some(7))?;
    let file_url = exhausted.file_url(&once);
    for _ in 0..3 {
        ensure!(http.get(&file_url).send()?.status().as_u16() == 200);
    }
    let fresh = api.create_share(&ids, &["patient@example.eu"], Some(7))?;

    let page = |name: &str, url: &str, lang: &str, status: u16| json!({"name": name, "url": url, "accept_language": lang, "status": status});
    let spec = json!({
        "pages": [
            page("normal-en", &normal_url, "en-GB,en;q=0.9", 200),
            page("normal-nl", &normal_url, "nl-NL,nl;q=0.9", 200),
            page("normal-de", &normal_url, "de-DE", 200),
            page("normal-fr-switch", &format!("{}?lang=fr", normal_url), "de-DE", 200),
            page("expired-en", &expired.url, "en", 410),
            page("revoked-nl", &revoked.url, "nl", 410),
            page("exhausted-de", &file_url, "de", 410),
            page("unknown-fr", &format!("{}/d/nothing-here", server.url()), "fr", 404),
        ],
        "download": fresh.url,
    });
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let shots = std::env::var_os("FERRY_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("shots"));
    let output = Command::new("node")
        .current_dir(browser_dir())
        .arg("recipient-pages.mjs")
        .arg("--spec")
        .arg(&spec_path)
        .arg("--shots")
        .arg(&shots)
        .env("FERRY_CHROMIUM", chromium())
        .output()
        .context("node runs")?;
    ensure!(
        output.status.success(),
        "recipient-pages.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|line| !line.is_empty())
            .context("a report")?,
    )?;
    eprintln!("screenshots in {}", shots.display());

    let seen: Vec<(String, String, String)> = report["pages"]
        .as_array()
        .context("pages")?
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["lang"].as_str().unwrap_or_default().to_owned(),
                p["h1"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (name, lang, h1) in [
        ("normal-en", "en", "Files for you"),
        ("normal-nl", "nl", "Bestanden voor u"),
        ("normal-de", "de", "Dateien für Sie"),
        ("normal-fr-switch", "fr", "Des fichiers pour vous"),
        ("expired-en", "en", "This link has expired"),
        ("revoked-nl", "nl", "Deze link is ingetrokken"),
        ("exhausted-de", "de", "Download-Grenze erreicht"),
        ("unknown-fr", "fr", "Ce lien ne fonctionne pas"),
    ] {
        let both = seen
            .iter()
            .filter(|(n, l, h)| n == name && l == lang && h == h1)
            .count();
        ensure!(
            both == 2,
            "{name}: lang {lang}, h1 {h1:?} at both widths; saw {seen:?}"
        );
    }
    for shot in report["pages"].as_array().context("pages")? {
        let path = shot["screenshot"].as_str().context("screenshot")?;
        let png = std::fs::read(path)?;
        ensure!(png.starts_with(b"\x89PNG"), "{path} is a PNG");
    }

    // JavaScript off: three files and the archive, each whole.
    let mut downloads: Vec<(String, u64)> = report["downloads"]
        .as_array()
        .context("downloads")?
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_owned(),
                d["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    downloads.sort();
    let sizes: Vec<u64> = downloads.iter().map(|(_, b)| *b).collect();
    ensure!(downloads.len() == 4, "{downloads:?}");
    ensure!(
        sizes.contains(&2_345_678) && sizes.contains(&734_003) && sizes.contains(&48_213),
        "{downloads:?}"
    );
    ensure!(
        downloads
            .iter()
            .any(|(n, b)| n.ends_with(".zip") && *b > 2_345_678 + 734_003 + 48_213),
        "the archive: {downloads:?}"
    );
    ensure!(
        report["keyboard"]["bytes"] == 2_345_678,
        "the keyboard's download: {}",
        report["keyboard"]
    );
    Ok(())
}
