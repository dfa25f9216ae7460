//! Real tus clients against a real `ferry serve`: tus-js-client (Node) and tuspy (Python) each
//! upload random files of 0 B, 1 B, 64 KiB − 1, 64 KiB, 64 KiB + 1 and more than 300 MiB, with
//! chunk sizes that do not align with the server's 64 KiB segments. Every file is then shared,
//! downloaded as a recipient and compared byte for byte with its source; the API's BLAKE3 and
//! the download's ETag must equal an independent BLAKE3 of the source.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    Api, ClientUpload, Server, Share, SourceFile, Tenant, TusClient, download_and_compare,
    download_bytes, file_id_from_url, random_file, run_client,
};

const MIB: u64 = 1 << 20;
/// More than 300 MiB, and not a multiple of the 64 KiB segment size.
const BIG: u64 = 300 * MIB + 12_345;

/// One file to upload: its size, the client's chunk size, extra client flags.
struct Case {
    size: u64,
    chunk_size: u64,
    extra: &'static [&'static str],
}

const fn case(size: u64, chunk_size: u64, extra: &'static [&'static str]) -> Case {
    Case {
        size,
        chunk_size,
        extra,
    }
}

#[test]
fn tus_js_client_uploads_download_identical() -> Result<()> {
    upload_share_download(
        TusClient::Js,
        &[
            case(0, 7_777, &[]),
            case(1, 7_777, &[]),
            case(65_535, 7_777, &[]),
            // The first chunk travels in the creation POST (creation-with-upload).
            case(65_536, 10_007, &["--creation-with-upload"]),
            case(65_537, 7_777, &[]),
            case(BIG, 1_000_003, &[]),
        ],
    )
}

#[test]
fn tuspy_uploads_download_identical() -> Result<()> {
    upload_share_download(
        TusClient::Py,
        &[
            case(0, 7_777, &[]),
            case(1, 7_777, &["--checksum"]),
            case(65_535, 7_777, &[]),
            // tuspy's Upload-Checksum is sha1, the one the tus spec requires.
            case(65_536, 30_001, &["--checksum"]),
            case(65_537, 7_777, &[]),
            case(BIG, 777_777, &["--checksum"]),
        ],
    )
}

/// An uploaded source file and the id the server gave it.
struct Uploaded {
    source: SourceFile,
    name: String,
    id: String,
}

fn upload_share_download(client: TusClient, cases: &[Case]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let result = check(client, cases, dir.path(), &server);
    server.explain(result)
}

fn check(client: TusClient, cases: &[Case], dir: &std::path::Path, server: &Server) -> Result<()> {
    let tenant = server.create_tenant("acme")?;
    let api = server.api(&tenant)?;
    let tag = match client {
        TusClient::Js => "js",
        TusClient::Py => "py",
    };
    let mut uploaded = Vec::new();
    for case in cases {
        let name = format!("{tag}-{}-c{}.bin", case.size, case.chunk_size);
        uploaded.push(upload_one(client, case, name, dir, server, &tenant, &api)?);
    }
    let share = share_them_all(server, &api, &uploaded)?;
    the_recipient_s_page_lists_them(&share, &uploaded)?;
    each_downloads_byte_for_byte_with_its_blake3_as_etag(&share, &uploaded)
}

/// `client` uploads a random file of the case's size as `name`; the API then shows it
/// complete with the source's size, name and BLAKE3.
fn upload_one(
    client: TusClient,
    case: &Case,
    name: String,
    dir: &std::path::Path,
    server: &Server,
    tenant: &Tenant,
    api: &Api,
) -> Result<Uploaded> {
    let endpoint = server.tus_endpoint();
    let started = Instant::now();
    let source = random_file(dir, &name, case.size)?;
    let what = format!(
        "{client} uploading {name} ({} B, chunk size {}, flags {:?}, rng seed {})",
        case.size, case.chunk_size, case.extra, source.seed
    );
    let url = run_client(
        client,
        &ClientUpload {
            endpoint: &endpoint,
            key: &tenant.api_key,
            file: &source.path,
            chunk_size: case.chunk_size,
            name: Some(&name),
            extra: case.extra,
            timeout: Duration::from_secs(600),
        },
    )
    .with_context(|| what.clone())?;
    ensure!(
        url.starts_with(&format!("{endpoint}/")),
        "{what}: upload URL {url} is not under {endpoint}/"
    );
    let id = file_id_from_url(&url)?;

    let info = api.file(&id).with_context(|| what.clone())?;
    ensure!(
        info.id == id,
        "{what}: GET /api/v1/files/{id} has id {}",
        info.id
    );
    ensure!(
        info.name == name,
        "{what}: name is {:?}, expected {name:?}",
        info.name
    );
    ensure!(
        info.size == case.size,
        "{what}: size is {}, expected {}",
        info.size,
        case.size
    );
    ensure!(
        info.offset == case.size,
        "{what}: offset is {} after the client finished, expected {}",
        info.offset,
        case.size
    );
    ensure!(
        info.state == "complete",
        "{what}: state is {:?}, expected \"complete\"",
        info.state
    );
    ensure!(
        info.blake3.as_deref() == Some(source.blake3.as_str()),
        "{what}: the API's blake3 is {:?}, the source's is {}",
        info.blake3,
        source.blake3
    );
    eprintln!("{what}: ok in {:.1?}", started.elapsed());
    Ok(Uploaded { source, name, id })
}

/// One share of every upload: its link is under the bound address, and it lists each file
/// with its name, size and BLAKE3. Every id is distinct.
fn share_them_all(server: &Server, api: &Api, uploaded: &[Uploaded]) -> Result<Share> {
    let ids: Vec<&str> = uploaded.iter().map(|u| u.id.as_str()).collect();
    ensure!(
        ids.iter().collect::<HashSet<_>>().len() == ids.len(),
        "the server gave two uploads the same id: {ids:?}"
    );

    let share = api.create_share(&ids, &["a@x.eu"], Some(7))?;
    ensure!(
        share.url.starts_with(&format!("{}/d/", server.url())),
        "share url {} is not under {}/d/ (FERRY_PUBLIC_URL defaults to the bound address)",
        share.url,
        server.url()
    );
    ensure!(
        share.files.len() == uploaded.len(),
        "the share lists {} files, expected {}: {:?}",
        share.files.len(),
        uploaded.len(),
        share.files
    );
    for u in uploaded {
        let listed = share
            .files
            .iter()
            .find(|f| f.id == u.id)
            .with_context(|| format!("the share does not list file {} ({})", u.id, u.name))?;
        ensure!(
            listed.name == u.name
                && listed.size == u.source.size
                && listed.blake3.as_deref() == Some(u.source.blake3.as_str()),
            "the share lists {listed:?}, expected name {}, size {}, blake3 {}",
            u.name,
            u.source.size,
            u.source.blake3
        );
    }

    Ok(share)
}

fn the_recipient_s_page_lists_them(share: &Share, uploaded: &[Uploaded]) -> Result<()> {
    let (page, html) = download_bytes(&share.url)?;
    let html = String::from_utf8_lossy(&html);
    ensure!(
        page.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/html")),
        "GET {} has Content-Type {:?}, expected text/html",
        share.url,
        page.content_type
    );
    for u in uploaded {
        ensure!(
            html.contains(&u.name),
            "the share page does not mention {}:\n{html}",
            u.name
        );
    }

    Ok(())
}

fn each_downloads_byte_for_byte_with_its_blake3_as_etag(
    share: &Share,
    uploaded: &[Uploaded],
) -> Result<()> {
    for u in uploaded {
        let url = share.file_url(&u.id);
        let what = format!(
            "GET {url} ({}, {} B, rng seed {})",
            u.name, u.source.size, u.source.seed
        );
        let started = Instant::now();
        let got = download_and_compare(&url, &u.source.path).with_context(|| what.clone())?;
        ensure!(
            got.bytes == u.source.size,
            "{what}: got {} bytes",
            got.bytes
        );
        ensure!(
            got.blake3 == u.source.blake3,
            "{what}: BLAKE3 of the body differs"
        );
        ensure!(
            got.content_length == Some(u.source.size),
            "{what}: Content-Length is {:?}",
            got.content_length
        );
        let etag = format!("\"{}\"", u.source.blake3);
        ensure!(
            got.etag.as_deref() == Some(etag.as_str()),
            "{what}: ETag is {:?}, expected {etag}",
            got.etag
        );
        eprintln!("{what}: identical in {:.1?}", started.elapsed());
    }
    Ok(())
}
