//! "Download all" as one ZIP (issue 17): stored, not compressed (the files are usually
//! compressed already, and it keeps the server at disk speed), ZIP64 throughout, and every
//! header a pure function of the share's files — name, size, CRC-32, time — so the archive
//! has a length, an ETag and byte ranges like any single file, and a dropped download
//! resumes. The CRC-32 of each file is known before a byte is sent (computed during the
//! upload), so the local headers carry it and no data descriptor is needed.
//!
//! Layout: for each file, a local header (with a ZIP64 extra field holding both sizes) and its
//! bytes; then a central directory header per file (ZIP64 extra: sizes and the local header's
//! offset); then the ZIP64 end of central directory record, its locator, and the classic end
//! record with every field saying "see ZIP64" (APPNOTE 6.3.10, §4.3–4.5).

use std::collections::HashSet;

use time::OffsetDateTime;
use uuid::Uuid;

/// APPNOTE's "version needed to extract" for ZIP64.
const VERSION_ZIP64: u16 = 45;
/// Made by: Unix (high byte 3), so the external attributes are a Unix mode.
const MADE_BY_UNIX: u16 = (3 << 8) | VERSION_ZIP64;
/// General purpose flags: bit 11, names are UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// The marker in a 32-bit field whose value is in the ZIP64 extra field.
const IN_ZIP64: u32 = u32::MAX;
/// A regular file, rw-r--r--, in the high half of the external attributes.
const UNIX_FILE_MODE: u32 = 0o100_644 << 16;

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// The file, whose bytes the archive serves.
    pub file: Uuid,
    /// Its name as the sender gave it (made safe and unique in the archive here).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of its bytes.
    pub crc32: u32,
    /// When its upload completed (the entry's time).
    pub modified: OffsetDateTime,
}

/// A run of the archive's bytes: header bytes held here, or a range of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span<'a> {
    /// Bytes of the archive's own structure.
    Bytes(&'a [u8]),
    /// Bytes `start..=end` of a file.
    File {
        /// The file.
        id: Uuid,
        /// First byte, within the file.
        start: u64,
        /// Last byte, within the file (inclusive).
        end: u64,
    },
}

/// What a stretch of the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Bytes(Vec<u8>),
    File { id: Uuid, len: u64 },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }
}

/// The whole archive as pieces at known offsets: computed from the entries alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipLayout {
    /// (offset in the archive, piece), in order.
    pieces: Vec<(u64, Piece)>,
    len: u64,
}

impl ZipLayout {
    /// The archive of `entries`, in their order.
    pub fn new(entries: &[ZipEntry]) -> ZipLayout {
        let names = archive_names(entries);
        let mut pieces = Vec::with_capacity(entries.len() * 2 + 1);
        let mut offset = 0u64;
        let mut central = Vec::new();
        for (entry, name) in entries.iter().zip(&names) {
            let local = local_header(entry, name);
            central_header(entry, name, offset, &mut central);
            let local_len = local.len() as u64;
            pieces.push((offset, Piece::Bytes(local)));
            offset += local_len;
            pieces.push((
                offset,
                Piece::File {
                    id: entry.file,
                    len: entry.size,
                },
            ));
            offset += entry.size;
        }
        let central_offset = offset;
        let central_len = central.len() as u64;
        end_records(
            entries.len() as u64,
            central_offset,
            central_len,
            &mut central,
        );
        let tail_len = central.len() as u64;
        pieces.push((offset, Piece::Bytes(central)));
        ZipLayout {
            pieces,
            len: offset + tail_len,
        }
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the archive is empty (never: even no file makes the end records).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The spans holding bytes `start..=end` of the archive, in order; nothing when the range
    /// is empty or past the end.
    pub fn spans(&self, start: u64, end: u64) -> Vec<Span<'_>> {
        let end = end.min(self.len.saturating_sub(1));
        let mut spans = Vec::new();
        if start > end || self.len == 0 {
            return spans;
        }
        for (offset, piece) in &self.pieces {
            let piece_len = piece.len();
            if piece_len == 0 || offset + piece_len <= start {
                continue;
            }
            if *offset > end {
                break;
            }
            let from = start.saturating_sub(*offset);
            let to = (end - offset).min(piece_len - 1);
            match piece {
                Piece::Bytes(bytes) => {
                    let (from, to) = (usize_of(from), usize_of(to));
                    if let Some(slice) = bytes.get(from..=to) {
                        spans.push(Span::Bytes(slice));
                    }
                }
                Piece::File { id, .. } => spans.push(Span::File {
                    id: *id,
                    start: from,
                    end: to,
                }),
            }
        }
        spans
    }
}

impl ZipLayout {
    /// The empty files whose local header begins within `start..=end`: such a file has no
    /// bytes to count, so a response that starts its entry counts as one download of it.
    pub fn empty_files_in(&self, start: u64, end: u64) -> Vec<Uuid> {
        let mut empty = Vec::new();
        let mut header_at = 0;
        for (offset, piece) in &self.pieces {
            match piece {
                Piece::Bytes(_) => header_at = *offset,
                Piece::File { id, len: 0 } if (start..=end).contains(&header_at) => empty.push(*id),
                Piece::File { .. } => {}
            }
        }
        empty
    }

    /// A digest of everything the archive's bytes depend on (its structure and which files
    /// fill it; a file's bytes never change), for its `ETag`.
    pub fn fingerprint(&self) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        for (offset, piece) in &self.pieces {
            hasher.update(&offset.to_le_bytes());
            match piece {
                Piece::Bytes(bytes) => hasher.update(b"B").update(bytes),
                Piece::File { id, len } => hasher
                    .update(b"F")
                    .update(id.as_bytes())
                    .update(&len.to_le_bytes()),
            };
        }
        hasher.finalize()
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The entries' names as the archive stores them: no directories (`/` and `\` become `_`),
/// no empty or dot-only names, and unique (`name (2).ext` for a repeat).
fn archive_names(entries: &[ZipEntry]) -> Vec<String> {
    let mut taken = HashSet::new();
    entries
        .iter()
        .map(|entry| {
            let mut safe: String = entry
                .name
                .chars()
                .map(|c| if c == '/' || c == '\\' { '_' } else { c })
                .collect();
            if safe.trim_matches('.').trim().is_empty() {
                safe = format!("file-{}", entry.file);
            }
            let mut name = safe.clone();
            let mut n = 2;
            while !taken.insert(name.to_lowercase()) {
                name = match safe.rsplit_once('.') {
                    Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
                    _ => format!("{safe} ({n})"),
                };
                n += 1;
            }
            name
        })
        .collect()
}

/// MS-DOS time and date of `at` (UTC; two-second steps; 1980 to 2107).
fn dos_time(at: OffsetDateTime) -> (u16, u16) {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = u16::try_from(at.year().clamp(1980, 2107) - 1980).unwrap_or(0);
    let date = (year << 9) | (u16::from(u8::from(at.month())) << 5) | u16::from(at.day());
    let time =
        (u16::from(at.hour()) << 11) | (u16::from(at.minute()) << 5) | u16::from(at.second() / 2);
    (time, date)
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A name's length as its 16-bit field holds it (names are at most 255 bytes upstream; a
/// longer one is cut at a character boundary).
fn name_bytes(name: &str) -> &[u8] {
    let mut end = name.len().min(u16::MAX as usize);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name.as_bytes()[..end]
}

/// The local file header (APPNOTE §4.3.7) with its ZIP64 extra field (§4.5.3).
fn local_header(entry: &ZipEntry, name: &str) -> Vec<u8> {
    let name = name_bytes(name);
    let (time, date) = dos_time(entry.modified);
    let mut out = Vec::with_capacity(30 + name.len() + 20);
    put32(&mut out, 0x0403_4b50);
    put16(&mut out, VERSION_ZIP64);
    put16(&mut out, FLAG_UTF8);
    put16(&mut out, 0); // stored
    put16(&mut out, time);
    put16(&mut out, date);
    put32(&mut out, entry.crc32);
    put32(&mut out, IN_ZIP64);
    put32(&mut out, IN_ZIP64);
    put16(&mut out, name.len() as u16);
    put16(&mut out, 20);
    out.extend_from_slice(name);
    put16(&mut out, 0x0001);
    put16(&mut out, 16);
    put64(&mut out, entry.size);
    put64(&mut out, entry.size);
    out
}

/// Appends the central directory header (§4.3.12) of an entry whose local header is at
/// `offset`.
fn central_header(entry: &ZipEntry, name: &str, offset: u64, out: &mut Vec<u8>) {
    let name = name_bytes(name);
    let (time, date) = dos_time(entry.modified);
    put32(out, 0x0201_4b50);
    put16(out, MADE_BY_UNIX);
    put16(out, VERSION_ZIP64);
    put16(out, FLAG_UTF8);
    put16(out, 0);
    put16(out, time);
    put16(out, date);
    put32(out, entry.crc32);
    put32(out, IN_ZIP64);
    put32(out, IN_ZIP64);
    put16(out, name.len() as u16);
    put16(out, 28);
    put16(out, 0); // comment
    put16(out, 0); // disk
    put16(out, 0); // internal attributes
    put32(out, UNIX_FILE_MODE);
    put32(out, IN_ZIP64);
    out.extend_from_slice(name);
    put16(out, 0x0001);
    put16(out, 24);
    put64(out, entry.size);
    put64(out, entry.size);
    put64(out, offset);
}

/// Appends the ZIP64 end of central directory record and locator and the end record
/// (§4.3.14–16) for `count` entries whose directory of `size` bytes starts at `offset`.
fn end_records(count: u64, offset: u64, size: u64, out: &mut Vec<u8>) {
    let zip64_end = offset + size;
    put32(out, 0x0606_4b50);
    put64(out, 44);
    put16(out, MADE_BY_UNIX);
    put16(out, VERSION_ZIP64);
    put32(out, 0);
    put32(out, 0);
    put64(out, count);
    put64(out, count);
    put64(out, size);
    put64(out, offset);
    put32(out, 0x0706_4b50);
    put32(out, 0);
    put64(out, zip64_end);
    put32(out, 1);
    put32(out, 0x0605_4b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, u16::MAX);
    put16(out, u16::MAX);
    put32(out, IN_ZIP64);
    put32(out, IN_ZIP64);
    put16(out, 0);
}

#[cfg(test)]
mod tests;
