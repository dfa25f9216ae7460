//! Following a message's MIME structure: header blocks, multipart bodies, nested messages;
//! each text part handed to a visitor, decoded, and written back re-encoded only where it
//! changed.

use super::transfer::{Transfer, transcode};
use super::{MAX_DEPTH, TextVisitor, lines};

/// The content type an entity without a `Content-Type` field has.
#[derive(Clone, Copy)]
pub(super) enum DefaultType {
    /// text/plain (RFC 2045).
    Text,
    /// message/rfc822, for the parts of a multipart/digest (RFC 2046 §5.1.5).
    Message,
}

/// How an entity's body is treated.
pub(super) enum Kind {
    Multipart { boundary: Vec<u8>, digest: bool },
    Message,
    Text,
    Opaque,
}

/// Writes `entity` to `out`, its text parts (and those of nested messages) passed through
/// `visitor` and re-encoded where they changed.
pub(super) fn walk_entity<V: TextVisitor>(
    entity: &[u8],
    default: DefaultType,
    depth: usize,
    visitor: &mut V,
    out: &mut Vec<u8>,
) {
    if depth > MAX_DEPTH {
        out.extend_from_slice(entity);
        return;
    }
    let (header_end, body_start) = header_bounds(entity);
    let fields = MimeFields::read(entity.get(..header_end).unwrap_or_default());
    out.extend_from_slice(entity.get(..body_start).unwrap_or_default());
    let body = entity.get(body_start..).unwrap_or_default();
    let transfer = fields.transfer();
    match fields.kind(default) {
        Kind::Multipart { boundary, digest } if transfer == Transfer::Identity => {
            let child_default = if digest {
                DefaultType::Message
            } else {
                DefaultType::Text
            };
            walk_multipart(body, &boundary, child_default, depth, visitor, out);
        }
        Kind::Message if transfer == Transfer::Identity => {
            walk_entity(body, DefaultType::Text, depth + 1, visitor, out);
        }
        Kind::Message => transcode(body, transfer, out, |decoded| {
            let mut inner = Vec::with_capacity(decoded.len());
            walk_entity(decoded, DefaultType::Text, depth + 1, visitor, &mut inner);
            (inner != decoded).then_some(inner)
        }),
        Kind::Text => transcode(body, transfer, out, |decoded| visitor.visit(decoded)),
        Kind::Multipart { .. } | Kind::Opaque => out.extend_from_slice(body),
    }
}

/// Where the header block ends and the body begins: the first empty line separates them;
/// without one, the entity is all header.
pub(super) fn header_bounds(entity: &[u8]) -> (usize, usize) {
    lines(entity)
        .find(|line| line.start == line.end)
        .map_or((entity.len(), entity.len()), |line| (line.start, line.next))
}

/// Writes a multipart body: preamble, delimiter lines and epilogue as they are, each body
/// part walked. Without a close delimiter, the rest is the last part.
pub(super) fn walk_multipart<V: TextVisitor>(
    body: &[u8],
    boundary: &[u8],
    child_default: DefaultType,
    depth: usize,
    visitor: &mut V,
    out: &mut Vec<u8>,
) {
    let mut copied = 0;
    let mut part_start: Option<usize> = None;
    for line in lines(body) {
        let Some(close) = delimiter_kind(body.get(line.start..line.end), boundary) else {
            continue;
        };
        if let Some(start) = part_start.take() {
            // The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
            let end = line
                .start
                .saturating_sub(break_len_before(body, line.start));
            let end = end.max(start);
            out.extend_from_slice(body.get(copied..start).unwrap_or_default());
            walk_entity(
                body.get(start..end).unwrap_or_default(),
                child_default,
                depth + 1,
                visitor,
                out,
            );
            copied = end;
        }
        if close {
            break;
        }
        part_start = Some(line.next);
    }
    if let Some(start) = part_start {
        out.extend_from_slice(body.get(copied..start).unwrap_or_default());
        walk_entity(
            body.get(start..).unwrap_or_default(),
            child_default,
            depth + 1,
            visitor,
            out,
        );
        copied = body.len();
    }
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
}

/// `Some(false)` for a delimiter line `--boundary`, `Some(true)` for the close delimiter
/// `--boundary--` (either may end in spaces or tabs), `None` for any other line.
pub(super) fn delimiter_kind(line: Option<&[u8]>, boundary: &[u8]) -> Option<bool> {
    let rest = line?.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, padding) = match rest.strip_prefix(b"--") {
        Some(padding) => (true, padding),
        None => (false, rest),
    };
    padding
        .iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then_some(close)
}

/// Length of the line break ending just before `at` (0 at the start).
pub(super) fn break_len_before(bytes: &[u8], at: usize) -> usize {
    let before = bytes.get(..at).unwrap_or_default();
    if before.ends_with(b"\r\n") {
        2
    } else if before.ends_with(b"\n") {
        1
    } else {
        0
    }
}

/// The MIME fields of one header block, unfolded; the first of each counts.
pub(super) struct MimeFields {
    content_type: Option<Vec<u8>>,
    transfer_encoding: Option<Vec<u8>>,
}

/// Which MIME field a header line starts.
#[derive(Clone, Copy)]
pub(super) enum MimeField {
    ContentType,
    TransferEncoding,
}

impl MimeFields {
    fn read(header: &[u8]) -> Self {
        let mut fields = MimeFields {
            content_type: None,
            transfer_encoding: None,
        };
        let mut open: Option<(MimeField, Vec<u8>)> = None;
        for line in lines(header) {
            let text = header.get(line.start..line.end).unwrap_or_default();
            if matches!(text.first(), Some(b' ' | b'\t')) {
                if let Some((_, value)) = open.as_mut() {
                    value.extend_from_slice(text);
                }
                continue;
            }
            fields.keep_first(open.take());
            open = mime_field_start(text);
        }
        fields.keep_first(open);
        fields
    }

    fn keep_first(&mut self, field: Option<(MimeField, Vec<u8>)>) {
        match field {
            Some((MimeField::ContentType, value)) => {
                self.content_type.get_or_insert(value);
            }
            Some((MimeField::TransferEncoding, value)) => {
                self.transfer_encoding.get_or_insert(value);
            }
            None => {}
        }
    }

    fn kind(&self, default: DefaultType) -> Kind {
        let Some(content_type) = self.content_type.as_deref().and_then(parse_content_type) else {
            // RFC 2045 §5.2: a missing or unreadable Content-Type means the default.
            return match default {
                DefaultType::Text => Kind::Text,
                DefaultType::Message => Kind::Message,
            };
        };
        match (content_type.top.as_slice(), content_type.sub.as_slice()) {
            (b"multipart", sub) => match content_type.boundary {
                Some(boundary) if !boundary.is_empty() => Kind::Multipart {
                    boundary,
                    digest: sub == b"digest",
                },
                _ => Kind::Opaque,
            },
            (b"message", b"rfc822" | b"global") => Kind::Message,
            (b"text", _) => Kind::Text,
            _ => Kind::Opaque,
        }
    }

    fn transfer(&self) -> Transfer {
        let Some(value) = self.transfer_encoding.as_deref() else {
            return Transfer::Identity;
        };
        let mut cursor = Cursor::new(value);
        cursor.skip_blanks_and_comments();
        match cursor.token().to_ascii_lowercase().as_slice() {
            b"" | b"7bit" | b"8bit" | b"binary" => Transfer::Identity,
            b"quoted-printable" => Transfer::QuotedPrintable,
            b"base64" => Transfer::Base64,
            _ => Transfer::Unknown,
        }
    }
}

/// The field a header line starts, with the value's first line, if it is one we read.
pub(super) fn mime_field_start(line: &[u8]) -> Option<(MimeField, Vec<u8>)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?.trim_ascii_end();
    let value = line.get(colon + 1..)?.to_vec();
    if name.eq_ignore_ascii_case(b"content-type") {
        Some((MimeField::ContentType, value))
    } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
        Some((MimeField::TransferEncoding, value))
    } else {
        None
    }
}

/// The parts of a Content-Type value this module needs.
pub(super) struct ContentType {
    /// Lower case, e.g. `multipart`.
    top: Vec<u8>,
    /// Lower case, e.g. `alternative`.
    sub: Vec<u8>,
    boundary: Option<Vec<u8>>,
}

/// RFC 2045 §5.1 `type/subtype *(; parameter)`, comments allowed, parameter values as token
/// or quoted-string; leniently, an unquoted value runs to `;` or whitespace (senders write
/// `boundary=----=_Part_1` unquoted) and a malformed parameter is skipped.
pub(super) fn parse_content_type(value: &[u8]) -> Option<ContentType> {
    let mut cursor = Cursor::new(value);
    cursor.skip_blanks_and_comments();
    let top = cursor.token().to_ascii_lowercase();
    cursor.skip_blanks_and_comments();
    if !cursor.eat(b'/') {
        return None;
    }
    cursor.skip_blanks_and_comments();
    let sub = cursor.token().to_ascii_lowercase();
    if top.is_empty() || sub.is_empty() {
        return None;
    }
    let mut boundary = None;
    loop {
        cursor.skip_blanks_and_comments();
        match cursor.peek() {
            None => break,
            Some(b';') => cursor.advance(),
            Some(_) => {
                cursor.skip_until(b';');
                continue;
            }
        }
        cursor.skip_blanks_and_comments();
        let name = cursor.token();
        cursor.skip_blanks_and_comments();
        if !cursor.eat(b'=') {
            continue;
        }
        cursor.skip_blanks_and_comments();
        let value = if cursor.eat(b'"') {
            cursor.quoted_string_rest()
        } else {
            cursor.bare_value().to_vec()
        };
        if boundary.is_none() && name.eq_ignore_ascii_case(b"boundary") {
            boundary = Some(value);
        }
    }
    Some(ContentType { top, sub, boundary })
}

/// A read position in a header field value.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn advance(&mut self) {
        self.at = (self.at + 1).min(self.bytes.len());
    }

    fn eat(&mut self, expected: u8) -> bool {
        let found = self.peek() == Some(expected);
        if found {
            self.advance();
        }
        found
    }

    /// Skips whitespace and (nested) comments.
    fn skip_blanks_and_comments(&mut self) {
        let mut comment_depth = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'(' => comment_depth += 1,
                b')' if comment_depth > 0 => comment_depth -= 1,
                b'\\' if comment_depth > 0 => self.advance(),
                _ if comment_depth > 0 => {}
                _ => return,
            }
            self.advance();
        }
    }

    fn skip_until(&mut self, stop: u8) {
        while self.peek().is_some_and(|byte| byte != stop) {
            self.advance();
        }
    }

    /// An RFC 2045 token (possibly empty).
    fn token(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(is_mime_token_byte) {
            self.advance();
        }
        self.bytes.get(start..self.at).unwrap_or_default()
    }

    /// The rest of a quoted-string whose opening quote was eaten, unescaped; an unterminated
    /// one runs to the end.
    fn quoted_string_rest(&mut self) -> Vec<u8> {
        let mut value = Vec::new();
        while let Some(byte) = self.peek() {
            self.advance();
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        value.push(escaped);
                        self.advance();
                    }
                }
                _ => value.push(byte),
            }
        }
        value
    }

    fn bare_value(&mut self) -> &'a [u8] {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|byte| !matches!(byte, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
        {
            self.advance();
        }
        self.bytes.get(start..self.at).unwrap_or_default()
    }
}

/// RFC 2045 token characters: printable ASCII except space and tspecials.
pub(super) fn is_mime_token_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&byte)
}
