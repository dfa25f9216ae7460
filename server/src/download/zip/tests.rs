//! The archive's layout against Python's `zipfile` and Info-ZIP's `unzip -t` (independent
//! readers that check every CRC), and its spans against the whole.

use std::process::Command;

use time::macros::datetime;

use super::*;

/// CRC-32 (IEEE, reflected), bit by bit: slow, obviously right, for test data only.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Entries and contents: an empty file, one not a multiple of 64 KiB, two with one name, and
/// one whose name tries to leave the archive's folder.
fn files() -> Vec<(ZipEntry, Vec<u8>)> {
    let specs = [
        ("empty.txt", 0usize),
        ("scan.dcm", 100_003),
        ("report.pdf", 70_000),
        ("Report.pdf", 5),
        ("../../etc/passwd", 11),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(n, (name, len))| {
            let bytes = data(*len, n as u8);
            let entry = ZipEntry {
                file: Uuid::from_u128(n as u128 + 1),
                name: (*name).to_owned(),
                size: *len as u64,
                crc32: crc32(&bytes),
                modified: datetime!(2026-12-04 13:37:42 UTC),
            };
            (entry, bytes)
        })
        .collect()
}

/// The archive's bytes, assembled from `spans` of `layout`.
fn assemble(layout: &ZipLayout, files: &[(ZipEntry, Vec<u8>)], start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for span in layout.spans(start, end) {
        match span {
            Span::Bytes(bytes) => out.extend_from_slice(bytes),
            Span::File { id, start, end } => {
                let (_, bytes) = files
                    .iter()
                    .find(|(entry, _)| entry.file == id)
                    .expect("a file of the archive");
                out.extend_from_slice(&bytes[start as usize..=end as usize]);
            }
        }
    }
    out
}

#[test]
fn python_reads_every_file_back_with_its_crc() {
    let files = files();
    let entries: Vec<ZipEntry> = files.iter().map(|(e, _)| e.clone()).collect();
    let layout = ZipLayout::new(&entries);
    let archive = assemble(&layout, &files, 0, layout.len() - 1);
    assert_eq!(archive.len() as u64, layout.len());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("all.zip");
    std::fs::write(&path, &archive).expect("written");
    const READ: &str = r#"
import sys, zipfile, json
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    out = {"bad": bad, "entries": [[i.filename, i.file_size, i.compress_type, i.CRC,
            list(i.date_time), z.read(i).hex()[:16]] for i in z.infolist()]}
print(json.dumps(out))
"#;
    let output = Command::new("/usr/bin/python3")
        .args(["-c", READ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Info-ZIP's unzip agrees (every CRC checked), as a recipient's desktop would.
    let unzip = Command::new("unzip")
        .arg("-t")
        .arg(&path)
        .output()
        .expect("unzip runs (scripts/install-test-tools installs it)");
    let said = String::from_utf8_lossy(&unzip.stdout);
    assert!(
        unzip.status.success() && said.contains("No errors detected"),
        "{said}"
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        read["bad"],
        serde_json::Value::Null,
        "a CRC is wrong: {read}"
    );
    let names: Vec<&str> = read["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e[0].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "empty.txt",
            "scan.dcm",
            "report.pdf",
            "Report (2).pdf",
            ".._.._etc_passwd"
        ]
    );
    for (n, (entry, bytes)) in files.iter().enumerate() {
        let listed = &read["entries"][n];
        assert_eq!(listed[1], entry.size, "{listed}");
        assert_eq!(listed[2], 0, "stored");
        assert_eq!(listed[3], entry.crc32, "{listed}");
        assert_eq!(listed[4], serde_json::json!([2026, 12, 4, 13, 37, 42]));
        let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(listed[5], head.as_str(), "{listed}");
    }
}

#[test]
fn any_range_is_the_same_bytes_as_the_whole() {
    let files = files();
    let entries: Vec<ZipEntry> = files.iter().map(|(e, _)| e.clone()).collect();
    let layout = ZipLayout::new(&entries);
    let whole = assemble(&layout, &files, 0, layout.len() - 1);
    let len = layout.len();
    let mut seed = 7u64;
    for _ in 0..200 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let start = seed % len;
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let end = (start + seed % 150_000).min(len - 1);
        assert_eq!(
            assemble(&layout, &files, start, end),
            &whole[start as usize..=end as usize],
            "{start}-{end}"
        );
    }
    // Past the end, or backwards: nothing.
    assert!(layout.spans(len, len + 10).is_empty());
    assert!(layout.spans(10, 9).is_empty());
    // A range past the end stops at the end.
    assert_eq!(
        assemble(&layout, &files, len - 3, len + 100),
        &whole[len as usize - 3..]
    );
}

#[test]
fn the_same_files_give_the_same_archive() {
    let entries: Vec<ZipEntry> = files().into_iter().map(|(e, _)| e).collect();
    assert_eq!(ZipLayout::new(&entries), ZipLayout::new(&entries));
    let mut later = entries.clone();
    later[1].crc32 ^= 1;
    assert_ne!(ZipLayout::new(&entries), ZipLayout::new(&later));
}

#[test]
fn sizes_past_4_gib_go_in_the_zip64_fields() {
    let big = ZipEntry {
        file: Uuid::from_u128(9),
        name: "huge.bin".to_owned(),
        size: 5 << 30,
        crc32: 0xDEAD_BEEF,
        modified: datetime!(2026-12-04 00:00:00 UTC),
    };
    let second = ZipEntry {
        file: Uuid::from_u128(10),
        name: "after.bin".to_owned(),
        size: 1,
        ..big.clone()
    };
    let layout = ZipLayout::new(&[big.clone(), second]);
    let local_len = 30 + "huge.bin".len() as u64 + 20;
    let second_local = local_len + big.size;
    // The second entry's local header starts past 4 GiB, and its central record says so.
    let Some(Span::Bytes(tail)) = layout
        .spans(layout.len() - 1, layout.len() - 1)
        .first()
        .copied()
    else {
        panic!("the end is header bytes");
    };
    assert_eq!(tail.len(), 1);
    let spans = layout.spans(second_local, second_local + 3);
    assert_eq!(spans, [Span::Bytes(&[0x50, 0x4b, 0x03, 0x04])]);
    assert_eq!(
        layout.len(),
        second_local + 30 + 9 + 20 + 1 + (46 + 8 + 28) + (46 + 9 + 28) + 56 + 20 + 22
    );
}

#[test]
fn dos_times_are_packed_as_appnote_says() {
    assert_eq!(
        dos_time(datetime!(2026-12-04 13:37:42 UTC)),
        ((13 << 11) | (37 << 5) | 21, (46 << 9) | (12 << 5) | 4)
    );
    assert_eq!(dos_time(datetime!(1970-01-01 00:00:00 UTC)).1, (1 << 5) | 1);
}

#[test]
fn an_empty_file_counts_where_its_header_begins() {
    let files = files();
    let entries: Vec<ZipEntry> = files.iter().map(|(e, _)| e.clone()).collect();
    let layout = ZipLayout::new(&entries);
    let empty = entries[0].file;
    // Its local header is the archive's first byte; the second entry's header comes after it.
    assert_eq!(layout.empty_files_in(0, 0), [empty]);
    assert_eq!(layout.empty_files_in(0, layout.len() - 1), [empty]);
    assert!(layout.empty_files_in(1, layout.len() - 1).is_empty());
    // The fingerprint follows the layout: the same files give the same one, another CRC not.
    let mut other = entries.clone();
    other[2].crc32 ^= 1;
    assert_eq!(layout.fingerprint(), ZipLayout::new(&entries).fingerprint());
    assert_ne!(layout.fingerprint(), ZipLayout::new(&other).fingerprint());
}
