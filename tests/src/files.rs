//! Source files and downloads: random files written at test time with an independent BLAKE3,
//! and recipient downloads (to memory, to disk, or compared byte for byte with the source).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};

use crate::api::http_client;

/// Buffer size for streaming files and downloads.
const BUF: usize = 1 << 20;

/// A random source file written at test time (never committed).
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The RNG seed that produced it (printed so a failure can be reproduced).
    pub seed: u64,
    /// Hex BLAKE3 of its contents, computed independently by reading the file back.
    pub blake3: String,
}

/// Write `size` random bytes to `dir/name`, streaming (constant memory whatever the size),
/// and hash the written file with the `blake3` crate.
pub fn random_file(dir: &Path, name: &str, size: u64) -> Result<SourceFile> {
    let seed = rand::rng().next_u64();
    let path = dir.join(name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(BUF, file);
    let mut buf = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let blake3 = blake3_file(&path)?;
    Ok(SourceFile {
        path,
        size,
        seed,
        blake3,
    })
}

/// Hex BLAKE3 of a file's contents (the `blake3` crate, independent of the server).
pub fn blake3_file(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// What a download answered.
#[derive(Debug, Clone)]
pub struct Download {
    /// HTTP status.
    pub status: u16,
    /// The `ETag` header, verbatim (with quotes).
    pub etag: Option<String>,
    /// The `Content-Length` header.
    pub content_length: Option<u64>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Body bytes received.
    pub bytes: u64,
    /// Hex BLAKE3 of the body received.
    pub blake3: String,
}

fn get_ok(http: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let resp = http.get(url).send().with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.text().unwrap_or_default();
        bail!(
            "GET {url} answered {status}, expected 200: {}",
            truncate(&body, 2000)
        );
    }
    Ok(resp)
}

fn download_meta(resp: &reqwest::blocking::Response) -> Download {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Download {
        status: resp.status().as_u16(),
        etag: header("etag"),
        content_length: header("content-length").and_then(|v| v.parse().ok()),
        content_type: header("content-type"),
        bytes: 0,
        blake3: String::new(),
    }
}

/// `GET url` without credentials (as a recipient), expecting 200; returns the body.
pub fn download_bytes(url: &str) -> Result<(Download, Vec<u8>)> {
    let resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let body = resp
        .bytes()
        .with_context(|| format!("GET {url}: reading the body"))?;
    meta.bytes = body.len() as u64;
    meta.blake3 = blake3::hash(&body).to_hex().to_string();
    Ok((meta, body.to_vec()))
}

/// `GET url` without credentials, expecting 200; streams the body into `dest`.
pub fn download_to_file(url: &str, dest: &Path) -> Result<Download> {
    let mut resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let mut out = BufWriter::with_capacity(
        BUF,
        File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = resp
            .read(&mut buf)
            .with_context(|| format!("GET {url}: reading the body"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        meta.bytes += n as u64;
    }
    out.flush()?;
    meta.blake3 = hasher.finalize().to_hex().to_string();
    Ok(meta)
}

/// `GET url` without credentials, expecting 200, and compare the body byte for byte with the
/// file at `source` while it streams (constant memory). Fails at the first differing byte or
/// on a length mismatch, naming the offset.
pub fn download_and_compare(url: &str, source: &Path) -> Result<Download> {
    let mut resp = get_ok(&http_client()?, url)?;
    let mut meta = download_meta(&resp);
    let mut src = BufReader::with_capacity(
        BUF,
        File::open(source).with_context(|| format!("cannot open {}", source.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut expect = vec![0u8; BUF];
    loop {
        let n = resp.read(&mut buf).with_context(|| {
            format!(
                "GET {url}: reading the body failed after {} bytes",
                meta.bytes
            )
        })?;
        if n == 0 {
            break;
        }
        let got = read_up_to(&mut src, &mut expect[..n])?;
        if let Some(i) = (0..got).find(|&i| buf[i] != expect[i]) {
            bail!(
                "GET {url}: byte {} differs from the source {} (got {:#04x}, expected {:#04x})",
                meta.bytes + i as u64,
                source.display(),
                buf[i],
                expect[i]
            );
        }
        if got < n {
            bail!(
                "GET {url}: the body is longer than the source {} ({} bytes)",
                source.display(),
                meta.bytes + got as u64
            );
        }
        hasher.update(&buf[..n]);
        meta.bytes += n as u64;
    }
    let mut one = [0u8; 1];
    if read_up_to(&mut src, &mut one)? != 0 {
        bail!(
            "GET {url}: the body ended after {} bytes, before the end of the source {}",
            meta.bytes,
            source.display()
        );
    }
    meta.blake3 = hasher.finalize().to_hex().to_string();
    Ok(meta)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Every file below `dir` (the disk store shards objects into subdirectories); none if `dir`
/// does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
