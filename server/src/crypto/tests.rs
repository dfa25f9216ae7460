//! Tests of the v1 object format: shared vectors, round trips, tampering, an independent
//! AES-GCM implementation, and the range arithmetic.
#![allow(clippy::unwrap_used)]

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::*;

const S: usize = SEGMENT_PLAINTEXT;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn cipher() -> (Dek, Uuid, SegmentCipher) {
    let dek = Dek::generate().unwrap();
    let id = Uuid::new_v4();
    let c = SegmentCipher::new(&dek, id).unwrap();
    (dek, id, c)
}

/// Writes an object the way the upload path does: full segments, then a short last one.
fn seal_object(c: &SegmentCipher, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = plain.chunks_exact(S);
    let mut index = 0;
    for segment in &mut chunks {
        c.seal_into(index, false, segment, &mut out).unwrap();
        index += 1;
    }
    c.seal_into(index, true, chunks.remainder(), &mut out)
        .unwrap();
    out
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SegmentCipher>();
    check::<TenantKek>();
    check::<Dek>();
}

#[test]
fn format_vectors() {
    // In the repository (vectors/README.md), so a clone tests on its own.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/object-v1.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(json["segment_plaintext"], S);
    assert_eq!(json["stored_segment_max"], STORED_SEGMENT_MAX);
    let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().to_owned();
    let mut checked = (0, 0);
    for (list, must_fail) in [("vectors", false), ("must_fail", true)] {
        for v in json[list].as_array().unwrap() {
            assert_eq!(v["must_fail"].as_bool().unwrap_or(false), must_fail);
            let dek = Dek::from_bytes(&hex::decode(field(v, "dek")).unwrap()).unwrap();
            let id = Uuid::from_slice(&hex::decode(field(v, "file_id")).unwrap()).unwrap();
            let len = v["plaintext_len"].as_u64().unwrap();
            let object = STANDARD.decode(field(v, "object_b64")).unwrap();
            assert_eq!(object.len() as u64, v["object_len"].as_u64().unwrap());
            let result = open_object(&SegmentCipher::new(&dek, id).unwrap(), &object, len);
            if must_fail {
                assert!(
                    result.is_err(),
                    "must_fail vector of {len} bytes was accepted"
                );
                checked.1 += 1;
                continue;
            }
            let plain = result.unwrap();
            assert_eq!(object.len() as u64, stored_len(len));
            assert_eq!(plain, STANDARD.decode(field(v, "plaintext_b64")).unwrap());
            assert_eq!(
                hex::encode(Sha256::digest(&plain)),
                field(v, "plaintext_sha256")
            );
            checked.0 += 1;
        }
    }
    assert!(checked.0 >= 6 && checked.1 >= 2, "{checked:?}");
}

#[test]
fn round_trips() {
    let (_, _, c) = cipher();
    for (i, len) in [0, 1, S - 1, S, S + 1, 2 * S, 3 * S + 12_345, 200_001]
        .into_iter()
        .enumerate()
    {
        let plain = data(len, i as u64);
        let object = seal_object(&c, &plain);
        assert_eq!(object.len() as u64, stored_len(len as u64));
        assert_eq!(
            open_object(&c, &object, len as u64).unwrap(),
            plain,
            "len {len}"
        );
    }
}

#[test]
fn independent_implementation_opens_our_objects() {
    let (dek, id, c) = cipher();
    let len = 2 * S + 777;
    let plain = data(len, 9);
    let object = seal_object(&c, &plain);
    let gcm = aes_gcm::Aes256Gcm::new_from_slice(dek.as_bytes()).unwrap();
    let (mut pos, mut opened) = (0usize, Vec::new());
    for index in 0..segment_count(len as u64) {
        let (plain_len, last) = segment_plain_len(len as u64, index);
        let stored = &object[pos..pos + plain_len + SEGMENT_OVERHEAD];
        let mut aad = b"ferry/v1".to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(&index.to_be_bytes());
        aad.push(u8::from(last));
        let nonce = aes_gcm::Nonce::from_slice(&stored[..NONCE_LEN]);
        let msg = &stored[NONCE_LEN..];
        opened.extend(gcm.decrypt(nonce, Payload { msg, aad: &aad }).unwrap());
        pos += stored.len();
    }
    assert_eq!(pos, object.len());
    assert_eq!(opened, plain);
}

#[test]
fn tampering_is_refused() {
    let (dek, id, c) = cipher();
    let len = 2 * S + 100; // segments: full, full, 100 bytes (last)
    let plain = data(len, 3);
    let object = seal_object(&c, &plain);
    let open = |obj: &[u8], l: usize| open_object(&c, obj, l as u64);
    let auth = |r: Result<Vec<u8>, CryptoError>| matches!(r, Err(CryptoError::Authentication));
    let malformed = |r: Result<Vec<u8>, CryptoError>| matches!(r, Err(CryptoError::Malformed(_)));

    // Flipped bits in nonces, ciphertexts and tags of every segment.
    for pos in [
        0,
        11,
        12,
        5_000,
        STORED_SEGMENT_MAX - 1,
        STORED_SEGMENT_MAX + 3,
        object.len() - 1,
    ] {
        let mut bad = object.clone();
        bad[pos] ^= 0x80;
        assert!(auth(open(&bad, len)), "bit flip at {pos}");
    }
    // Swapped segments.
    let mut swapped = object[STORED_SEGMENT_MAX..2 * STORED_SEGMENT_MAX].to_vec();
    swapped.extend_from_slice(&object[..STORED_SEGMENT_MAX]);
    swapped.extend_from_slice(&object[2 * STORED_SEGMENT_MAX..]);
    assert!(auth(open(&swapped, len)));
    // Wrong file id, wrong key.
    let other_file = SegmentCipher::new(&dek, Uuid::new_v4()).unwrap();
    assert!(matches!(
        open_object(&other_file, &object, len as u64),
        Err(CryptoError::Authentication)
    ));
    let other_key = SegmentCipher::new(&Dek::generate().unwrap(), id).unwrap();
    assert!(matches!(
        open_object(&other_key, &object, len as u64),
        Err(CryptoError::Authentication)
    ));
    // Truncation: missing last segment, whatever length is claimed.
    let truncated = &object[..2 * STORED_SEGMENT_MAX];
    assert!(malformed(open(truncated, len)));
    assert!(malformed(open(truncated, 2 * S)));
    assert!(malformed(open(truncated, 2 * S - 1)));
    assert!(malformed(open(&object[..object.len() - 1], len)));
    // Trailing garbage, or a wrong plaintext length.
    let mut trailing = object.clone();
    trailing.push(0);
    assert!(malformed(open(&trailing, len)));
    assert!(malformed(open(&object, len - 1)));
    // An exact multiple of 64 KiB ends in an empty last segment; dropping it is detected.
    let exact = seal_object(&c, &plain[..S]);
    assert_eq!(exact.len(), STORED_SEGMENT_MAX + SEGMENT_OVERHEAD);
    assert!(malformed(open(&exact[..STORED_SEGMENT_MAX], S)));
    assert_eq!(open(&exact, S).unwrap(), &plain[..S]);
}

#[test]
fn segment_position_is_authenticated() {
    let (_, _, c) = cipher();
    let full = data(S, 1);
    let mut stored = Vec::new();
    c.seal_into(5, false, &full, &mut stored).unwrap();
    let mut short = Vec::new();
    c.seal_into(5, true, &full[..10], &mut short).unwrap();

    assert!(matches!(
        c.open_in_place(4, false, &mut stored.clone()),
        Err(CryptoError::Authentication)
    ));
    assert!(matches!(
        c.open_in_place(5, true, &mut stored.clone()),
        Err(CryptoError::Malformed(_))
    ));
    assert!(matches!(
        c.open_in_place(6, true, &mut short.clone()),
        Err(CryptoError::Authentication)
    ));
    assert!(matches!(
        c.open_in_place(5, false, &mut short.clone()),
        Err(CryptoError::Malformed(_))
    ));
    assert!(matches!(
        c.open_in_place(5, true, &mut [0u8; 27]),
        Err(CryptoError::Malformed(_))
    ));
    assert_eq!(
        c.open_in_place(5, false, &mut stored).unwrap(),
        full.as_slice()
    );
    assert_eq!(c.open_in_place(5, true, &mut short).unwrap(), &full[..10]);
}

#[test]
fn seal_refuses_impossible_segments_and_leaves_out_untouched() {
    let (_, _, c) = cipher();
    let mut out = vec![1, 2, 3];
    let big = vec![0u8; S + 1];
    for (last, len) in [
        (true, S + 1),
        (false, S + 1),
        (true, S),
        (false, S - 1),
        (false, 0),
    ] {
        let r = c.seal_into(0, last, &big[..len], &mut out);
        assert!(matches!(r, Err(CryptoError::Malformed(_))), "{last} {len}");
        assert_eq!(out, [1, 2, 3]);
    }
    // Appends after existing bytes; nonces are fresh for each seal.
    c.seal_into(0, true, b"", &mut out).unwrap();
    c.seal_into(0, true, b"", &mut out).unwrap();
    assert_eq!(out.len(), 3 + 2 * SEGMENT_OVERHEAD);
    assert_ne!(
        out[3..3 + NONCE_LEN],
        out[3 + SEGMENT_OVERHEAD..3 + SEGMENT_OVERHEAD + NONCE_LEN]
    );
}

#[test]
fn seal_to_writes_a_segment_into_a_slot_of_exactly_its_size() {
    let (_, _, c) = cipher();
    let plain = data(S, 9);
    let mut slot = vec![7u8; S + SEGMENT_OVERHEAD];
    c.seal_to(3, false, &plain, &mut slot).unwrap();
    assert_ne!(
        slot[NONCE_LEN..NONCE_LEN + S],
        plain[..],
        "the slot holds ciphertext"
    );
    assert_eq!(c.open_in_place(3, false, &mut slot).unwrap(), &plain[..]);

    // A slot of any other size is refused, and no ciphertext is written into it.
    for len in [S + SEGMENT_OVERHEAD - 1, S + SEGMENT_OVERHEAD + 1, 0] {
        let mut slot = vec![7u8; len];
        let r = c.seal_to(3, false, &plain, &mut slot);
        assert!(matches!(r, Err(CryptoError::Malformed(_))), "{len}");
        assert!(slot.iter().all(|b| *b == 7), "{len}");
    }
    // The segment rules hold as for seal_into.
    let mut slot = vec![0u8; S + SEGMENT_OVERHEAD];
    let r = c.seal_to(3, true, &plain, &mut slot);
    assert!(matches!(r, Err(CryptoError::Malformed(_))));
}

#[test]
fn tails() {
    let (dek, _, c) = cipher();
    let plain = data(S - 1, 4);
    for len in [0, 1, 1000, S - 1] {
        let sealed = c.seal_tail(7, &plain[..len]).unwrap();
        assert_eq!(sealed.len(), len + SEGMENT_OVERHEAD);
        assert_eq!(c.open_tail(7, &sealed).unwrap(), &plain[..len]);
        assert!(matches!(
            c.open_tail(8, &sealed),
            Err(CryptoError::Authentication)
        ));
        let other = SegmentCipher::new(&dek, Uuid::new_v4()).unwrap();
        assert!(matches!(
            other.open_tail(7, &sealed),
            Err(CryptoError::Authentication)
        ));
        // A tail is never a segment, and a segment never a tail.
        assert!(c.open_in_place(7, true, &mut sealed.clone()).is_err());
        let mut segment = Vec::new();
        c.seal_into(7, true, &plain[..len], &mut segment).unwrap();
        assert!(c.open_tail(7, &segment).is_err());
    }
    assert!(matches!(
        c.seal_tail(0, &vec![0; S]),
        Err(CryptoError::Malformed(_))
    ));
    assert!(matches!(
        c.open_tail(0, &[0; 27]),
        Err(CryptoError::Malformed(_))
    ));
    assert!(matches!(
        c.open_tail(0, &vec![0; STORED_SEGMENT_MAX]),
        Err(CryptoError::Malformed(_))
    ));
}

#[test]
fn dek_from_bytes_checks_length() {
    assert!(matches!(
        Dek::from_bytes(&[0; 31]),
        Err(CryptoError::BadKey(_))
    ));
    assert!(matches!(
        Dek::from_bytes(&[0; 33]),
        Err(CryptoError::BadKey(_))
    ));
    assert_eq!(Dek::from_bytes(&[7; 32]).unwrap().as_bytes(), &[7; 32]);
    assert_ne!(
        Dek::generate().unwrap().as_bytes(),
        Dek::generate().unwrap().as_bytes()
    );
}

#[test]
fn lengths() {
    let s = S as u64;
    let o = SEGMENT_OVERHEAD as u64;
    for (len, count) in [(0, 1), (1, 1), (s - 1, 1), (s, 2), (s + 1, 2), (3 * s, 4)] {
        assert_eq!(segment_count(len), count, "{len}");
        assert_eq!(stored_len(len), len + count * o);
        assert_eq!(plaintext_len_of(stored_len(len)), Some(len), "{len}");
    }
    // A whole number of full segments, or less than one segment's overhead, is no object.
    for impossible in [0, o - 1, s + o, 2 * (s + o)] {
        assert_eq!(plaintext_len_of(impossible), None, "{impossible}");
    }
    assert_eq!(segment_plain_len(0, 0), (0, true));
    assert_eq!(segment_plain_len(s, 0), (S, false));
    assert_eq!(segment_plain_len(s, 1), (0, true));
    assert_eq!(segment_plain_len(s + 5, 1), (5, true));
    assert_eq!(segment_plain_len(s + 5, 2), (0, false));
}

#[test]
fn span_examples() {
    let s = S as u64;
    let m = STORED_SEGMENT_MAX as u64;
    let span = |len, a, b| span_for_range(len, a, b);
    let sp = |first, last, stored_start, stored_end| SegmentSpan {
        first,
        last,
        stored_start,
        stored_end,
    };
    assert_eq!(span(1, 0, 0), sp(0, 0, 0, 29));
    assert_eq!(span(s, 0, 0), sp(0, 0, 0, m));
    assert_eq!(span(s, s - 1, s - 1), sp(0, 0, 0, m));
    assert_eq!(span(s + 1, s, s), sp(1, 1, m, m + 29));
    assert_eq!(span(s + 1, s - 1, s), sp(0, 1, 0, m + 29));
    assert_eq!(span(3 * s, s + 1, 2 * s), sp(1, 2, m, 3 * m));
    assert_eq!(
        span(3 * s + 10, 0, 3 * s + 9),
        sp(0, 3, 0, stored_len(3 * s + 10))
    );
}

/// Brute force: walk the segments, accumulating stored offsets.
fn span_brute(len: u64, a: u64, b: u64) -> SegmentSpan {
    let (mut plain_pos, mut stored_pos) = (0u64, 0u64);
    let (mut first, mut stored_start) = (None, 0);
    for index in 0..segment_count(len) {
        let (n, _) = segment_plain_len(len, index);
        let stored_end = stored_pos + n as u64 + SEGMENT_OVERHEAD as u64;
        let contains = |x: u64| plain_pos <= x && x < plain_pos + n as u64;
        if contains(a) {
            first = Some(index);
            stored_start = stored_pos;
        }
        if contains(b) {
            let first = first.unwrap();
            return SegmentSpan {
                first,
                last: index,
                stored_start,
                stored_end,
            };
        }
        plain_pos += n as u64;
        stored_pos = stored_end;
    }
    unreachable!("range outside the file")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn span_matches_brute_force(len in 1u64..12 * S as u64, x in any::<u64>(), y in any::<u64>()) {
        let (a, b) = (x % len, y % len);
        let (a, b) = (a.min(b), a.max(b));
        prop_assert_eq!(span_for_range(len, a, b), span_brute(len, a, b));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_round_trips(len in 0usize..5 * S, seed in any::<u64>()) {
        let (_, _, c) = cipher();
        let plain = data(len, seed);
        let object = seal_object(&c, &plain);
        prop_assert_eq!(open_object(&c, &object, len as u64).unwrap(), plain);
    }
}
