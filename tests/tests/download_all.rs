//! "Download all" end to end, against the real binary with files generated at test time.
//!
//! `the_archive_of_three_files_reads_back_resumes_and_keeps_its_crc`: a 0 B file, one of
//! 100,003 B (not a multiple of 64 KiB) and one of 300 MiB + 4,321 B, the large one uploaded in
//! pieces cut at five random offsets and across a SIGKILL of the server mid-body. Its CRC-32
//! (`GET /api/v1/files/{id}`) is what Python's `zlib.crc32` gives for the whole file. The
//! share's `all.zip` is read by Python's `zipfile` (every CRC checked, every byte compared
//! with its source) and by Info-ZIP's `unzip -t`; downloaded again it is the same bytes under
//! the same `ETag`; fetched in pieces cut at five random offsets, the last by `curl -C -`, it
//! reassembles to the same bytes; the sender's view counts three copies of each file.
//!
//! `a_share_past_4_gib_is_a_valid_zip64`: a file of 4 GiB + 1 MiB and one after it; the
//! second entry's local header lies past 4 GiB, and both readers accept the archive.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ferry_e2e::{
    Api, Server, SourceFile, blake3_file, download_to_file, file_id_from_url, http_client,
    patch_expect_204, random_file, start_patch,
};
use rand::Rng;

const MIB: u64 = 1 << 20;

/// What Python's `zlib.crc32` says of a file (read in 8 MiB pieces).
fn zlib_crc32(path: &Path) -> Result<u32> {
    const CRC: &str = "import sys, zlib
c = 0
with open(sys.argv[1], 'rb') as f:
    while chunk := f.read(8 << 20):
        c = zlib.crc32(chunk, c)
print(c)";
    let output = Command::new("/usr/bin/python3")
        .args(["-c", CRC])
        .arg(path)
        .output()
        .context("python3 runs")?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// Python's `zipfile` and Info-ZIP's `unzip -t` read `archive`: every CRC right, every entry
/// the bytes of its source, in order; returns the local header offsets Python saw.
fn both_readers_accept(archive: &Path, sources: &[(&str, &Path)]) -> Result<Vec<u64>> {
    const READ: &str = r#"
import sys, zipfile, json
names, paths = sys.argv[2::2], sys.argv[3::2]
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    infos = z.infolist()
    assert [i.filename for i in infos] == names, [i.filename for i in infos]
    for info, path in zip(infos, paths):
        assert info.compress_type == zipfile.ZIP_STORED, info
        with z.open(info) as member, open(path, 'rb') as source:
            at = 0
            while True:
                a, b = member.read(8 << 20), source.read(8 << 20)
                assert a == b, f"{info.filename}: bytes differ near offset {at}"
                if not a:
                    break
                at += len(a)
print(json.dumps({"bad": bad, "offsets": [i.header_offset for i in infos]}))
"#;
    let mut python = Command::new("/usr/bin/python3");
    python.args(["-c", READ]).arg(archive);
    for (name, path) in sources {
        python.arg(name).arg(path);
    }
    let output = python.output().context("python3 runs")?;
    ensure!(
        output.status.success(),
        "Python's zipfile refused the archive: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(read["bad"].is_null(), "a CRC is wrong: {}", read["bad"]);
    let unzip = Command::new("unzip")
        .arg("-t")
        .arg(archive)
        .output()
        .context("unzip runs (scripts/install-test-tools installs it)")?;
    let said = String::from_utf8_lossy(&unzip.stdout);
    ensure!(
        unzip.status.success() && said.contains("No errors detected"),
        "unzip -t: {said}{}",
        String::from_utf8_lossy(&unzip.stderr)
    );
    read["offsets"]
        .as_array()
        .context("offsets")?
        .iter()
        .map(|o| o.as_u64().context("an offset"))
        .collect()
}

/// Uploads `source` in one PATCH; returns its file id.
fn upload_whole(api: &Api, source: &SourceFile, name: &str) -> Result<String> {
    let url = api.tus_create(source.size, name)?;
    if source.size > 0 {
        patch_expect_204(api, &url, &source.path, 0, source.size, Duration::ZERO)?;
    }
    file_id_from_url(&url)
}

/// Uploads `source` in pieces cut at five random offsets, and kills the server once with a
/// PATCH body paused mid-segment; resumes from what `HEAD` says after the restart.
fn upload_cut_and_killed(server: &mut Server, api: &Api, source: &SourceFile) -> Result<String> {
    let size = source.size;
    let url = api.tus_create(size, "scan.bin")?;
    let mut rng = rand::rng();
    let mut cuts: Vec<u64> = (0..5).map(|_| 1 + rng.next_u64() % (size - 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(size);
    // The kill lands in the longest piece (so it always has room to pause half-way).
    let mut longest = (0, 0);
    let mut from = 0;
    for (n, cut) in cuts.iter().enumerate() {
        if cut - from > longest.1 {
            longest = (n, cut - from);
        }
        from = *cut;
    }
    eprintln!("cut at {cuts:?}, killed in piece {}", longest.0);
    let mut offset = 0;
    for (n, cut) in cuts.into_iter().enumerate() {
        if n == longest.0 {
            // Kill the server while this piece's body is paused half-way, with bytes taken
            // in but not acknowledged; then go on from what it kept.
            let pause = (cut - offset) / 2;
            if pause > 0 {
                let patch =
                    start_patch(api, &url, &source.path, offset, cut - offset, Some(pause))?;
                patch.wait_paused(Duration::from_secs(120))?;
                thread::sleep(Duration::from_millis(300));
                server.kill9()?;
                if let Ok(answer) = patch.join() {
                    bail!("a PATCH to a killed server was answered: {answer:?}");
                }
                server.restart()?;
                let kept = api.tus_offset(&url, size)?;
                ensure!(
                    (offset..=offset + pause).contains(&kept),
                    "after the kill HEAD says {kept}, outside {offset}..={}",
                    offset + pause
                );
                eprintln!("killed with {pause} B of a piece sent; kept up to {kept}");
                offset = kept;
            }
        }
        patch_expect_204(
            api,
            &url,
            &source.path,
            offset,
            cut - offset,
            Duration::from_secs(60),
        )?;
        offset = cut;
    }
    file_id_from_url(&url)
}

/// `GET url` with `Range: bytes=from-to` (and `If-Range`); expects 206 and appends the body.
fn fetch_range(url: &str, from: u64, to: u64, etag: &str, out: &mut impl Write) -> Result<()> {
    let mut response = http_client()?
        .get(url)
        .header("Range", format!("bytes={from}-{to}"))
        .header("If-Range", etag)
        .send()?;
    ensure!(
        response.status().as_u16() == 206,
        "bytes={from}-{to} answered {}",
        response.status()
    );
    let mut buf = vec![0u8; MIB as usize];
    let mut got = 0;
    loop {
        let n = response.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        got += n as u64;
    }
    ensure!(
        got == to - from + 1,
        "bytes={from}-{to} brought {got} bytes"
    );
    Ok(())
}

#[test]
fn the_archive_of_three_files_reads_back_resumes_and_keeps_its_crc() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(dir.path().join("data"))?;
    let result = three_files(&mut server, dir.path());
    server.explain(result)
}

fn three_files(server: &mut Server, dir: &Path) -> Result<()> {
    let tenant = server.create_tenant("acme")?;
    let api = server.api(&tenant)?;
    let empty = random_file(dir, "empty.txt", 0)?;
    let odd = random_file(dir, "notes.txt", 100_003)?;
    let big = random_file(dir, "scan.bin", 300 * MIB + 4_321)?;
    eprintln!("scan.bin: seed {}, blake3 {}", big.seed, big.blake3);

    let empty_id = upload_whole(&api, &empty, "empty.txt")?;
    let odd_id = upload_whole(&api, &odd, "notes.txt")?;
    let big_id = upload_cut_and_killed(server, &api, &big)?;
    for (id, source) in [(&empty_id, &empty), (&odd_id, &odd), (&big_id, &big)] {
        let info = api.file(id)?;
        let expected = zlib_crc32(&source.path)?;
        ensure!(
            info.crc32 == Some(expected) && info.blake3.as_deref() == Some(&source.blake3),
            "{}: CRC-32 {:?} and BLAKE3 {:?}, zlib.crc32 says {expected}",
            info.name,
            info.crc32,
            info.blake3
        );
    }

    let share = api.create_share(&[&empty_id, &odd_id, &big_id], &["a@x.eu"], None)?;
    let url = format!("{}/all.zip", share.url);
    let first = dir.join("first.zip");
    let download = download_to_file(&url, &first)?;
    let etag = download.etag.clone().context("an ETag")?;
    ensure!(
        download.content_length == Some(download.bytes),
        "Content-Length {:?} for {} bytes",
        download.content_length,
        download.bytes
    );
    both_readers_accept(
        &first,
        &[
            ("empty.txt", &empty.path),
            ("notes.txt", &odd.path),
            ("scan.bin", &big.path),
        ],
    )?;
    let len = download.bytes;

    // The same share gives the same bytes under the same tag.
    let second = download_to_file(&url, &dir.join("second.zip"))?;
    ensure!(
        second.etag.as_deref() == Some(etag.as_str()) && second.blake3 == download.blake3,
        "the second archive differs: {:?} {} vs {etag} {}",
        second.etag,
        second.blake3,
        download.blake3
    );
    std::fs::remove_file(dir.join("second.zip"))?;

    // A download broken at five random offsets and resumed each time; the last piece by curl.
    let mut rng = rand::rng();
    let mut cuts: Vec<u64> = (0..5).map(|_| 1 + rng.next_u64() % (len - 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    eprintln!("archive of {len} B resumed at {cuts:?}");
    let resumed = dir.join("resumed.zip");
    {
        let mut out = std::fs::File::create(&resumed)?;
        let mut from = 0;
        for cut in &cuts[..cuts.len() - 1] {
            fetch_range(&url, from, cut - 1, &etag, &mut out)?;
            from = *cut;
        }
        fetch_range(&url, from, cuts[cuts.len() - 1] - 1, &etag, &mut out)?;
        out.sync_all()?;
    }
    let curl = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "-C", "-", "-o"])
        .arg(&resumed)
        .arg(&url)
        .output()
        .context("curl runs")?;
    ensure!(
        curl.status.success(),
        "curl -C - failed: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    ensure!(
        blake3_file(&resumed)? == download.blake3,
        "the resumed archive differs from the whole one"
    );

    // Three whole copies of each file went out: two archives and one in resumed pieces.
    let view: serde_json::Value = http_client()?
        .get(api.absolute(&format!("/api/v1/shares/{}", share.id)))
        .header("Authorization", api.bearer())
        .send()?
        .json()?;
    let counts: Vec<u64> = view["files"]
        .as_array()
        .context("files")?
        .iter()
        .filter_map(|f| f["downloads"].as_u64())
        .collect();
    ensure!(counts == [3, 3, 3], "copies per file: {counts:?} in {view}");
    Ok(())
}

#[test]
fn a_share_past_4_gib_is_a_valid_zip64() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path().join("data"))?;
    let result = past_4_gib(&server, dir.path());
    server.explain(result)
}

fn past_4_gib(server: &Server, dir: &Path) -> Result<()> {
    let (_, api) = server.tenant_api("acme")?;
    let huge = random_file(dir, "huge.bin", (4 << 30) + MIB)?;
    let after = random_file(dir, "after.txt", 1_000)?;
    let huge_id = upload_whole(&api, &huge, "huge.bin")?;
    let after_id = upload_whole(&api, &after, "after.txt")?;
    let share = api.create_share(&[&huge_id, &after_id], &["a@x.eu"], None)?;
    let archive = dir.join("all.zip");
    let download = download_to_file(&format!("{}/all.zip", share.url), &archive)?;
    ensure!(download.bytes > 4 << 30, "{} bytes", download.bytes);
    let offsets = both_readers_accept(
        &archive,
        &[("huge.bin", &huge.path), ("after.txt", &after.path)],
    )?;
    ensure!(
        offsets.len() == 2 && offsets[1] > u32::MAX as u64,
        "the second entry starts at {offsets:?}: not past 4 GiB"
    );
    Ok(())
}
