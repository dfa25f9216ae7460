//! `io_floor DIR`: the least any upload server pays the kernel on this host. It takes HTTP/1.1
//! request bodies over loopback exactly as Ferry is sent them (one `curl -T`), writes each
//! into a file under DIR in 512 KiB writes, with `fdatasync` every 32 MiB and at the end (as
//! Ferry's disk store), and answers 204; no parsing beyond `Content-Length`, no hashing, no
//! encryption. Its CPU per GiB (read from `/proc` by the benchmark) is the I/O floor: what is
//! left of Ferry's CPU above it is Ferry's own pipeline (issue 18).
//!
//! Prints `listening on http://127.0.0.1:PORT` and serves one request at a time until killed.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Bytes per write, as Ferry's upload batches.
const WRITE: usize = 512 * 1024;
/// Bytes between two `fdatasync`, as Ferry's disk store checkpoints.
const SYNC_EVERY: u64 = 32 << 20;
/// The most header bytes accepted.
const MAX_HEAD: usize = 16 * 1024;

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: io_floor DIR")?);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut buffer = vec![0u8; WRITE];
    for (n, stream) in listener.incoming().enumerate() {
        let path = dir.join(format!("body-{n}.bin"));
        if let Err(e) = serve(stream?, &path, &mut buffer) {
            eprintln!("io_floor: {e:#}");
        }
        let _ = fs::remove_file(&path);
    }
    Ok(())
}

/// Serves one request: its body goes to `path`.
fn serve(stream: TcpStream, path: &Path, buffer: &mut [u8]) -> Result<()> {
    let mut reader = BufReader::with_capacity(WRITE, stream.try_clone()?);
    let mut writer = stream;
    let (length, expect_continue) = read_head(&mut reader)?;
    if expect_continue {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let file = File::create(path)?;
    let (mut written, mut synced) = (0u64, 0u64);
    while written < length {
        let want = usize::try_from(length - written)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        reader.read_exact(&mut buffer[..want])?;
        file.write_all_at(&buffer[..want], written)?;
        written += want as u64;
        if written - synced >= SYNC_EVERY {
            file.sync_data()?;
            synced = written;
        }
    }
    file.sync_all()?;
    writer.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")?;
    Ok(())
}

/// Reads the request head; returns `Content-Length` and whether the client waits for 100.
fn read_head(reader: &mut impl BufRead) -> Result<(u64, bool)> {
    let (mut length, mut expect, mut seen) = (None, false, 0usize);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        seen += n;
        if n == 0 || seen > MAX_HEAD {
            bail!("no complete request head");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<u64>().context("Content-Length")?);
            } else if name.eq_ignore_ascii_case("expect") {
                expect = value.eq_ignore_ascii_case("100-continue");
            }
        }
    }
    Ok((length.context("a body needs Content-Length")?, expect))
}
