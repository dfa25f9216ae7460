//! Content transfer encodings of text parts: quoted-printable (written here) and base64
//! (the `base64` crate), decoded leniently and re-encoded in RFC 2045's line lengths.

use std::borrow::Cow;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use super::lines;

/// RFC 2045's longest encoded line, the soft break's `=` included.
pub(super) const QP_LINE_MAX: usize = 76;
/// Characters per base64 line when a part is re-encoded.
pub(super) const BASE64_LINE_LEN: usize = 76;
/// Base64 as senders write it: padding optional, stray trailing bits accepted.
pub(super) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);
/// Upper-case hex digits for `=XX` escapes.
pub(super) const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Transfer {
    /// 7bit, 8bit, binary, or no encoding named.
    Identity,
    QuotedPrintable,
    Base64,
    /// Anything else: the body cannot be decoded and is left as it is.
    Unknown,
}

/// Decodes `body`, lets `change` look at it, and writes the re-encoded result if it changed;
/// otherwise (or if the body cannot be decoded) the body as it was.
pub(super) fn transcode(
    body: &[u8],
    transfer: Transfer,
    out: &mut Vec<u8>,
    change: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) {
    let changed = decode_body(body, transfer).and_then(|decoded| change(&decoded));
    match changed {
        Some(content) => encode_body(&content, transfer, body.ends_with(b"\n"), out),
        None => out.extend_from_slice(body),
    }
}

pub(super) fn decode_body(body: &[u8], transfer: Transfer) -> Option<Cow<'_, [u8]>> {
    match transfer {
        Transfer::Identity => Some(Cow::Borrowed(body)),
        Transfer::QuotedPrintable => Some(Cow::Owned(decode_quoted_printable(body))),
        Transfer::Base64 => decode_base64(body).map(Cow::Owned),
        Transfer::Unknown => None,
    }
}

/// `ends_with_break`: whether the original body ended with a line break, kept so.
pub(super) fn encode_body(
    content: &[u8],
    transfer: Transfer,
    ends_with_break: bool,
    out: &mut Vec<u8>,
) {
    match transfer {
        Transfer::Identity | Transfer::Unknown => out.extend_from_slice(content),
        Transfer::QuotedPrintable => encode_quoted_printable(content, ends_with_break, out),
        Transfer::Base64 => encode_base64(content, ends_with_break, out),
    }
}

/// The decoded bytes, or `None` if the body is not base64 (line breaks and spaces aside).
pub(super) fn decode_base64(body: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT_BASE64.decode(compact).ok()
}

pub(super) fn encode_base64(content: &[u8], ends_with_break: bool, out: &mut Vec<u8>) {
    let encoded = STANDARD.encode(content);
    for (index, chunk) in encoded.as_bytes().chunks(BASE64_LINE_LEN).enumerate() {
        if index > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    if ends_with_break {
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 2045 §6.7 decoding: `=XX` (either case) is a byte, `=` at the end of a line (spaces
/// and tabs after it allowed) is a soft break, whitespace ending a hard line is transport
/// padding and dropped, any other `=` is kept literally.
pub(super) fn decode_quoted_printable(encoded: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(encoded.len());
    for line in lines(encoded) {
        let content = trim_blanks_end(encoded.get(line.start..line.end).unwrap_or_default());
        match content.strip_suffix(b"=") {
            Some(before_soft_break) => decode_escapes(before_soft_break, &mut text),
            None => {
                decode_escapes(content, &mut text);
                if line.has_break() {
                    text.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    text
}

pub(super) fn trim_blanks_end(bytes: &[u8]) -> &[u8] {
    let kept = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |last| last + 1);
    bytes.get(..kept).unwrap_or_default()
}

pub(super) fn decode_escapes(content: &[u8], text: &mut Vec<u8>) {
    let mut rest = content;
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'='
            && let [high, low, tail @ ..] = after
            && let (Some(high), Some(low)) = (hex_value(*high), hex_value(*low))
        {
            text.push(high << 4 | low);
            rest = tail;
            continue;
        }
        text.push(byte);
        rest = after;
    }
}

pub(super) fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// RFC 2045 §6.7 encoding: CRLF in the text stays a hard line break, lines are at most 76
/// characters with `=` soft breaks, and an `=XX` escape is never split. When the text does
/// not end with CRLF but the original body ended with a line break, a final soft break
/// provides one without adding to the text.
pub(super) fn encode_quoted_printable(text: &[u8], ends_with_break: bool, out: &mut Vec<u8>) {
    let needs_final_soft_break = ends_with_break && !text.ends_with(b"\r\n");
    let mut hard_lines = split_crlf(text).peekable();
    let mut first = true;
    while let Some(line) = hard_lines.next() {
        if !first {
            out.extend_from_slice(b"\r\n");
        }
        first = false;
        let is_last = hard_lines.peek().is_none();
        encode_qp_line(line, is_last && needs_final_soft_break, out);
    }
}

/// The pieces of `text` between CRLFs (a text ending in CRLF ends with an empty piece).
pub(super) fn split_crlf(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|pair| pair == b"\r\n") {
            Some(at) => {
                rest = current.get(at + 2..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// One hard line, wrapped with soft breaks; `soft_break_after` ends it with one more.
pub(super) fn encode_qp_line(line: &[u8], soft_break_after: bool, out: &mut Vec<u8>) {
    let mut column = 0;
    for (index, &byte) in line.iter().enumerate() {
        let ends_line = index + 1 == line.len();
        let escaped = match byte {
            b' ' | b'\t' => ends_line,
            b'=' => true,
            33..=126 => false,
            _ => true,
        };
        let width = if escaped { 3 } else { 1 };
        // Room for this unit, keeping one column for a soft break's `=` unless this unit
        // ends an encoded line for good.
        let room = if ends_line && !soft_break_after {
            QP_LINE_MAX
        } else {
            QP_LINE_MAX - 1
        };
        if column + width > room {
            out.extend_from_slice(b"=\r\n");
            column = 0;
        }
        if escaped {
            out.push(b'=');
            out.push(HEX_DIGITS[usize::from(byte >> 4)]);
            out.push(HEX_DIGITS[usize::from(byte & 0x0f)]);
        } else {
            out.push(byte);
        }
        column += width;
    }
    if soft_break_after {
        out.extend_from_slice(b"=\r\n");
    }
}
