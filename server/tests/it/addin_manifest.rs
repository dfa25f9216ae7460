//! The Outlook add-in's manifest: valid against Microsoft's schemas (copied into
//! `addin/office-schemas/`, validated offline with `xmllint`), and right where the schemas
//! cannot tell — every `resid` names a resource of the right kind, ids fit Office's 32
//! characters, every URL is https and inside `AppDomains`, and the icons it names are served
//! at the sizes it names. The one at the repository root is the one `ferry manifest` prints
//! for local sideloading, and a server serves its deployment's own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use ferry::addin::Manifest;
use ferry::addin::manifest::ICON_SIZES;

use crate::harness::{Stack, TestServer};

/// The deployment the root `manifest.xml` is for (README: sideloading against a local Ferry
/// behind a TLS proxy).
const SIDELOAD_URL: &str = "https://localhost:3000";
const PUBLIC_URL: &str = "https://files.example.eu";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_root_manifest_is_what_ferry_manifest_prints_for_sideloading() -> Result<()> {
    let root = std::fs::read_to_string(repo_root().join("manifest.xml"))?;
    let printed = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["manifest", "--public-url", SIDELOAD_URL])
        .env("FERRY_DATA_DIR", std::env::temp_dir())
        .output()?;
    ensure!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8(printed.stdout)?;
    ensure!(
        root == printed,
        "manifest.xml differs from `ferry manifest --public-url {SIDELOAD_URL}`: regenerate it"
    );
    ensure!(printed == Manifest::new(SIDELOAD_URL)?.xml());
    Ok(())
}

#[test]
fn the_manifest_is_valid_against_the_office_schemas() -> Result<()> {
    let xml = Manifest::new(PUBLIC_URL)?.xml();
    let dir = tempfile::tempdir()?;
    let checked = dir.path().join("manifest-for-xsd.xml");
    std::fs::write(&checked, without_blocks_the_2019_schemas_predate(&xml)?)?;
    let schema = repo_root().join("addin/office-schemas/OfficeAppManifestV1_1.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&checked)
        .output()
        .context("running xmllint (scripts/install-test-tools installs it)")?;
    ensure!(
        out.status.success(),
        "xmllint refused the manifest:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A schema that accepts anything proves nothing: a broken copy must fail.
    std::fs::write(&checked, xml.replace("<Permissions>", "<Permission>"))?;
    let broken = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(&checked)
        .output()?;
    ensure!(
        !broken.status.success(),
        "xmllint accepted a broken manifest"
    );
    Ok(())
}

/// The manifest without `Runtimes` and the `LaunchEvent` extension point, which the schemas
/// (2019) do not know; everything else is kept, and that is checked.
fn without_blocks_the_2019_schemas_predate(xml: &str) -> Result<String> {
    let mut out = xml.to_owned();
    for (start, end) in [
        ("<Runtimes>", "</Runtimes>"),
        (
            "<ExtensionPoint xsi:type=\"LaunchEvent\">",
            "</ExtensionPoint>",
        ),
    ] {
        let from = out.find(start).context(start)?;
        let to = from + out[from..].find(end).context(end)? + end.len();
        out.replace_range(from..to, "");
        ensure!(!out.contains(start), "{start} twice");
    }
    ensure!(
        out.len() + 600 > xml.len(),
        "stripped more than the two blocks"
    );
    Ok(out)
}

/// What the schema cannot check: resids, id lengths, URLs, locales.
#[test]
fn every_resid_resolves_every_id_fits_and_every_url_is_the_deployments() -> Result<()> {
    let xml = Manifest::new(PUBLIC_URL)?.xml();
    let doc = roxmltree::Document::parse(&xml)?;
    let id = doc
        .descendants()
        .find(|n| n.has_tag_name("Id"))
        .and_then(|n| n.text())
        .context("Id")?;
    ensure!(uuid::Uuid::parse_str(id).is_ok(), "Id {id} is not a GUID");

    // Resources of each block, by kind; the innermost VersionOverrides shadows nothing, each
    // block must resolve its own references.
    let blocks: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("VersionOverrides"))
        .collect();
    ensure!(
        blocks.len() == 2,
        "expected the 1.0 block and the 1.1 inside it"
    );
    for block in blocks {
        let resources = block
            .children()
            .find(|n| n.has_tag_name("Resources"))
            .context("Resources")?;
        let mut kinds: HashMap<&str, &str> = HashMap::new();
        for resource in resources
            .descendants()
            .filter(|n| n.attribute("id").is_some())
        {
            let resource_id = resource.attribute("id").unwrap_or_default();
            ensure!(resource_id.len() <= 32, "resource id {resource_id} > 32");
            ensure!(
                kinds
                    .insert(resource_id, resource.tag_name().name())
                    .is_none(),
                "resource id {resource_id} twice"
            );
        }
        for node in block
            .descendants()
            .filter(|n| n.attribute("resid").is_some())
        {
            // Only references made in this block (not in the nested one) are this block's.
            if node
                .ancestors()
                .find(|a| a.has_tag_name("VersionOverrides"))
                != Some(block)
            {
                continue;
            }
            let resid = node.attribute("resid").unwrap_or_default();
            ensure!(resid.len() <= 32, "resid {resid} > 32");
            let want = match node.tag_name().name() {
                "Image" => "Image",
                "Label" | "Title" => "String",
                "Description" => "String",
                _ => "Url",
            };
            let Some(kind) = kinds.get(resid) else {
                bail!("resid {resid} does not resolve");
            };
            ensure!(*kind == want, "resid {resid} is a {kind}, needs a {want}");
            // Short strings for labels and titles, long strings for descriptions.
            let list = resources
                .descendants()
                .find(|n| n.attribute("id") == Some(resid))
                .and_then(|n| n.parent())
                .map(|p| p.tag_name().name());
            match node.tag_name().name() {
                "Label" | "Title" => ensure!(list == Some("ShortStrings"), "{resid}: {list:?}"),
                "Description" => ensure!(list == Some("LongStrings"), "{resid}: {list:?}"),
                _ => {}
            }
        }
        for control in block.descendants().filter(|n| n.attribute("id").is_some()) {
            let control_id = control.attribute("id").unwrap_or_default();
            ensure!(control_id.len() <= 32, "id {control_id} > 32 characters");
        }
    }

    // Every URL is https and inside the one AppDomain; every locale is overridden everywhere.
    let domains: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("AppDomain"))
        .filter_map(|n| n.text())
        .collect();
    ensure!(domains == [PUBLIC_URL], "{domains:?}");
    for value in doc
        .descendants()
        .flat_map(|n| n.attributes())
        .map(|a| a.value())
        .filter(|v| v.contains("://"))
    {
        ensure!(
            value.starts_with(&format!("{PUBLIC_URL}/")),
            "{value} is outside the AppDomain"
        );
    }
    for localized in doc
        .descendants()
        .filter(|n| n.has_tag_name("DisplayName") || n.has_tag_name("String"))
    {
        let locales: Vec<_> = localized
            .children()
            .filter_map(|n| n.attribute("Locale"))
            .collect();
        ensure!(locales == ["nl-NL", "de-DE", "fr-FR"], "{locales:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_server_serves_its_manifest_and_the_icons_it_names() -> Result<()> {
    let server =
        TestServer::start_with_env(Stack::SqliteDisk, &[("FERRY_PUBLIC_URL", PUBLIC_URL)]).await?;
    let client = reqwest::Client::new();
    let served = client
        .get(format!("{}/addin/manifest.xml", server.base))
        .send()
        .await?;
    ensure!(served.status() == 200, "{}", served.status());
    ensure!(
        served.headers()["content-type"] == "application/xml; charset=utf-8",
        "{:?}",
        served.headers()
    );
    let xml = served.text().await?;
    ensure!(xml == Manifest::new(PUBLIC_URL)?.xml());

    // Every image the manifest names is a PNG of the size it says.
    let doc = roxmltree::Document::parse(&xml)?;
    let mut named = Vec::new();
    for image in doc.descendants().filter(|n| n.has_tag_name("Image")) {
        if let (Some(size), Some(resid)) = (image.attribute("size"), image.attribute("resid")) {
            let url = doc
                .descendants()
                .find(|n| n.attribute("id") == Some(resid))
                .and_then(|n| n.attribute("DefaultValue"))
                .context(resid.to_owned())?;
            named.push((size.parse::<u32>()?, url.to_owned()));
        }
    }
    for (tag, size) in [("IconUrl", 64), ("HighResolutionIconUrl", 128)] {
        let url = doc
            .descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.attribute("DefaultValue"))
            .context(tag)?;
        named.push((size, url.to_owned()));
    }
    let mut sizes: Vec<u32> = named.iter().map(|(size, _)| *size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    ensure!(sizes == ICON_SIZES, "{sizes:?}");
    for (size, url) in named {
        let local = url.replacen(PUBLIC_URL, &server.base, 1);
        let icon = client.get(&local).send().await?;
        ensure!(icon.status() == 200, "{url}: {}", icon.status());
        ensure!(icon.headers()["content-type"] == "image/png");
        let png = icon.bytes().await?;
        ensure!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{url} is not a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into()?);
        let height = u32::from_be_bytes(png[20..24].try_into()?);
        ensure!((width, height) == (size, size), "{url} is {width}×{height}");
    }
    let missing = client
        .get(format!("{}/addin/assets/icon-17.png", server.base))
        .send()
        .await?;
    ensure!(missing.status() == 404);
    Ok(())
}

#[test]
fn the_icons_served_are_what_the_script_draws() -> Result<()> {
    let check = Command::new("python3")
        .arg(repo_root().join("scripts/make-addin-icons"))
        .arg("--check")
        .output()?;
    ensure!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    for asset in ferry::addin::assets::ASSETS {
        let committed = std::fs::read(repo_root().join("addin/assets").join(asset.name))?;
        ensure!(
            committed == asset.bytes,
            "{} is not the embedded one",
            asset.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn without_a_public_https_url_there_is_no_manifest_and_the_reason_is_given() -> Result<()> {
    for env in [
        &[][..],
        &[("FERRY_PUBLIC_URL", "http://files.example.eu")][..],
    ] {
        let server = TestServer::start_with_env(Stack::SqliteDisk, env).await?;
        let answer = reqwest::get(format!("{}/addin/manifest.xml", server.base)).await?;
        ensure!(answer.status() == 404, "{env:?}: {}", answer.status());
        let body: serde_json::Value = answer.json().await?;
        ensure!(body["error"] == "manifest_unavailable", "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        ensure!(
            message.contains("FERRY_PUBLIC_URL") || message.contains("https://"),
            "{message}"
        );
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["manifest", "--public-url", "http://files.example.eu"])
        .env("FERRY_DATA_DIR", std::env::temp_dir())
        .output()?;
    ensure!(!refused.status.success());
    ensure!(String::from_utf8_lossy(&refused.stderr).contains("https://"));
    Ok(())
}

/// `ferry manifest --json`: Microsoft's own validator (`@microsoft/app-manifest`, offline, with
/// the schema it bundles) accepts it and refuses it with a required field missing; it is the
/// same add-in as the XML one (id, button id, pane and launch-event URLs), every URL is the
/// deployment's, the Entra app registration is named when configured, and the two app package
/// icons are served at their sizes.
#[tokio::test]
async fn the_unified_manifest_passes_microsofts_validator_and_matches_the_xml_one() -> Result<()> {
    const CLIENT_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    let printed = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["manifest", "--json", "--public-url", PUBLIC_URL])
        .env("FERRY_DATA_DIR", std::env::temp_dir())
        .env("FERRY_ENTRA_CLIENT_ID", CLIENT_ID)
        .output()?;
    ensure!(printed.status.success(), "{printed:?}");
    let manifest: serde_json::Value = serde_json::from_slice(&printed.stdout)?;
    ensure!(manifest["id"] == Manifest::new(PUBLIC_URL)?.id().to_string());
    ensure!(
        manifest["webApplicationInfo"]["id"] == CLIENT_ID,
        "{manifest}"
    );
    let text = manifest.to_string();
    for needle in [
        "Ferry.Compose.OpenPane",
        "https://files.example.eu/addin/taskpane.html",
        "https://files.example.eu/addin/launchevent.js",
        "\"softBlock\"",
        "\"messageSending\"",
    ] {
        ensure!(text.contains(needle), "the JSON manifest lacks {needle}");
    }
    let mut urls = Vec::new();
    collect_urls(&manifest, &mut urls);
    ensure!(urls.len() > 5, "{urls:?}");
    for url in &urls {
        ensure!(url.starts_with(PUBLIC_URL), "{url} is not the deployment's");
    }

    let dir = tempfile::tempdir()?;
    let validate = |value: &serde_json::Value| -> Result<(bool, String)> {
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)?;
        let out = Command::new("node")
            .arg(repo_root().join("tests/browser/unified-manifest.mjs"))
            .arg(&path)
            .output()
            .context("running node (scripts/install-test-tools installs the validator)")?;
        Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let (valid, said) = validate(&manifest)?;
    ensure!(valid, "Microsoft's validator refused the manifest:\n{said}");
    let mut broken = manifest.clone();
    if let Some(object) = broken.as_object_mut() {
        object.remove("accentColor");
    }
    let (valid, said) = validate(&broken)?;
    ensure!(
        !valid && said.contains("accentColor"),
        "a broken manifest passed: {said}"
    );

    let server =
        TestServer::start_with_env(Stack::SqliteDisk, &[("FERRY_PUBLIC_URL", PUBLIC_URL)]).await?;
    for (name, size) in [("color-192.png", 192), ("outline-32.png", 32)] {
        let png = reqwest::get(format!("{}/addin/assets/{name}", server.base))
            .await?
            .bytes()
            .await?;
        ensure!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        ensure!(width == size, "{name} is {width} px wide");
    }
    Ok(())
}

/// Every string in `value` that is an http(s) URL.
fn collect_urls(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with("http") && !s.contains("json-schemas") => {
            out.push(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_urls(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_urls(v, out)),
        _ => {}
    }
}
