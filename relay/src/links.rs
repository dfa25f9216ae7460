//! Share links in outgoing mail, found and rewritten per recipient.
//!
//! A tenant's message may carry links to shares of this deployment (`<prefix><token>`). The
//! relay sends each recipient a copy in which every such link has become that recipient's own
//! link (downloads are then attributed and revocable per recipient) or a non-working one when
//! the recipient is not on the share: nobody may receive a working link meant for someone
//! else. Links must be found where a mail client shows them, so the MIME structure is
//! followed and text parts are decoded (a quoted-printable soft line break often falls inside
//! a URL, HTML bodies are often base64); a part is re-encoded only when something in it
//! changed, so everything else stays byte for byte. A last pass over the raw bytes catches
//! links written literally anywhere else (headers, a 7bit attachment, beyond the nesting
//! limit).
//!
//! A token is exactly 55 characters of `[A-Za-z0-9_-]` right after the prefix (compared
//! ASCII case-insensitively), not followed by another token character; whatever follows the
//! token (`/files/<uuid>`) is kept.
//!
//! Limits:
//! - Text is handled as bytes. ASCII-compatible charsets (UTF-8, Latin-1, Windows-1252, ...)
//!   work; UTF-16 or UTF-32 text never matches, so a link there is not rewritten.
//! - Not decoded: RFC 2047 encoded words in headers (`=?utf-8?B?...?=`), percent- or
//!   entity-encoded URLs (`&#104;ttps`), transfer encodings other than 7bit, 8bit, binary,
//!   quoted-printable and base64 (uuencode), and non-text attachments (a link inside a PDF or
//!   an Office file stays as it is). The raw pass still sees what is written literally.
//! - Entities nested deeper than 16 levels are not parsed; only the raw pass applies there.
//! - A changed quoted-printable part is re-encoded as a whole: lines re-wrapped at 76
//!   characters, whitespace the encoding would have hidden from the decoder dropped.
//! - `replace` is asked once per distinct token; what it returned is not offered to it again
//!   when the raw pass meets it in the output.
//! - An empty prefix matches nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use mime::{DefaultType, walk_entity};

mod mime;
#[cfg(test)]
mod tests;
mod transfer;

/// Characters in a share token.
const TOKEN_LEN: usize = 55;
/// Entities deeper than this (the message itself is depth 0) are copied unparsed.
const MAX_DEPTH: usize = 16;

/// The tokens a message refers to, so the relay can look up which shares they belong to
/// before building each recipient's copy. Tokens in decoded text parts count, and so do
/// literal occurrences anywhere in the raw bytes.
pub fn find_tokens(message: &[u8], prefix: &str) -> BTreeSet<String> {
    let links = LinkMatcher::new(prefix);
    let mut collector = TokenCollector {
        links: &links,
        found: BTreeSet::new(),
    };
    collector.visit(message);
    let mut unchanged_copy = Vec::with_capacity(message.len());
    walk_entity(
        message,
        DefaultType::Text,
        0,
        &mut collector,
        &mut unchanged_copy,
    );
    collector.found
}

/// One recipient's copy of a message: each token for which `replace` answers `Some(new)`
/// becomes `new` (`[A-Za-z0-9_-]+`, any length), wherever a mail client would show it and
/// wherever it is written literally; `None` keeps the token. When nothing is replaced, the
/// copy is the input byte for byte.
pub fn rewrite(message: &[u8], prefix: &str, replace: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
    let links = LinkMatcher::new(prefix);
    let mut replacer = TokenReplacer {
        links: &links,
        replace,
        decided: HashMap::new(),
        inserted: HashSet::new(),
    };
    let mut structured = Vec::with_capacity(message.len());
    walk_entity(
        message,
        DefaultType::Text,
        0,
        &mut replacer,
        &mut structured,
    );
    replacer
        .replace_in(&structured, SkipInserted::Yes)
        .unwrap_or(structured)
}

/// Finds `<prefix><token>` in bytes: Knuth–Morris–Pratt over the ASCII-lowercased prefix, so
/// a 50 MB message costs one pass whatever the prefix looks like.
struct LinkMatcher {
    /// The prefix, ASCII lower case.
    prefix: Vec<u8>,
    /// For each prefix length matched, the longest proper border to fall back to.
    fallback: Vec<usize>,
}

impl LinkMatcher {
    fn new(prefix: &str) -> Self {
        let prefix = prefix.as_bytes().to_ascii_lowercase();
        let mut fallback = vec![0; prefix.len()];
        let mut border = 0;
        for (at, &byte) in prefix.iter().enumerate().skip(1) {
            while border > 0 && prefix.get(border) != Some(&byte) {
                border = fallback.get(border - 1).copied().unwrap_or(0);
            }
            if prefix.get(border) == Some(&byte) {
                border += 1;
            }
            if let Some(slot) = fallback.get_mut(at) {
                *slot = border;
            }
        }
        LinkMatcher { prefix, fallback }
    }

    /// Where the tokens are in `haystack`, in order, not overlapping.
    fn token_spans(&self, haystack: &[u8]) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        if self.prefix.is_empty() {
            return spans;
        }
        let mut matched = 0;
        let mut at = 0;
        while let Some(&byte) = haystack.get(at) {
            let byte = byte.to_ascii_lowercase();
            while matched > 0 && self.prefix.get(matched) != Some(&byte) {
                matched = self.fallback.get(matched - 1).copied().unwrap_or(0);
            }
            if self.prefix.get(matched) == Some(&byte) {
                matched += 1;
            }
            at += 1;
            if matched == self.prefix.len() {
                if let Some(end) = token_end(haystack, at) {
                    spans.push(at..end);
                    at = end;
                    matched = 0;
                } else {
                    matched = self.fallback.get(matched - 1).copied().unwrap_or(0);
                }
            }
        }
        spans
    }
}

/// Whether `byte` can be part of a token.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// The end of the token starting at `start`, if exactly `TOKEN_LEN` token bytes are there.
fn token_end(haystack: &[u8], start: usize) -> Option<usize> {
    let end = start.checked_add(TOKEN_LEN)?;
    let run = haystack.get(start..end)?;
    let exact = run.iter().all(|&b| is_token_byte(b))
        && !haystack.get(end).is_some_and(|&b| is_token_byte(b));
    exact.then_some(end)
}

/// What the MIME walk does with each decoded text: `Some` is the text's new content.
trait TextVisitor {
    fn visit(&mut self, text: &[u8]) -> Option<Vec<u8>>;
}

/// Gathers tokens for `find_tokens`; never changes anything.
struct TokenCollector<'a> {
    links: &'a LinkMatcher,
    found: BTreeSet<String>,
}

impl TextVisitor for TokenCollector<'_> {
    fn visit(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        for span in self.links.token_spans(text) {
            if let Some(token) = text.get(span).and_then(|t| std::str::from_utf8(t).ok()) {
                self.found.insert(token.to_owned());
            }
        }
        None
    }
}

/// Whether the raw pass leaves alone tokens that `replace` itself returned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SkipInserted {
    Yes,
    No,
}

/// Replaces tokens for `rewrite`, asking `replace` once per distinct token.
struct TokenReplacer<'a> {
    links: &'a LinkMatcher,
    replace: &'a dyn Fn(&str) -> Option<String>,
    /// What `replace` answered, per token seen.
    decided: HashMap<String, Option<String>>,
    /// Every replacement handed out: the raw pass finds them in the output and must not
    /// replace a recipient's own link again.
    inserted: HashSet<String>,
}

impl TokenReplacer<'_> {
    fn replacement_for(&mut self, token: &str) -> Option<String> {
        if let Some(decided) = self.decided.get(token) {
            return decided.clone();
        }
        let decided = (self.replace)(token);
        if let Some(new) = &decided {
            self.inserted.insert(new.clone());
        }
        self.decided.insert(token.to_owned(), decided.clone());
        decided
    }

    /// `text` with its tokens replaced, or `None` when no byte changed.
    fn replace_in(&mut self, text: &[u8], skip: SkipInserted) -> Option<Vec<u8>> {
        let mut rewritten: Option<Vec<u8>> = None;
        let mut copied = 0;
        for span in self.links.token_spans(text) {
            let Some(token) = text
                .get(span.clone())
                .and_then(|t| std::str::from_utf8(t).ok())
            else {
                continue;
            };
            if skip == SkipInserted::Yes && self.inserted.contains(token) {
                continue;
            }
            let Some(new) = self.replacement_for(token) else {
                continue;
            };
            if new == token {
                continue;
            }
            let buffer = rewritten.get_or_insert_with(|| Vec::with_capacity(text.len() + 64));
            buffer.extend_from_slice(text.get(copied..span.start).unwrap_or_default());
            buffer.extend_from_slice(new.as_bytes());
            copied = span.end;
        }
        let mut rewritten = rewritten?;
        rewritten.extend_from_slice(text.get(copied..).unwrap_or_default());
        Some(rewritten)
    }
}

impl TextVisitor for TokenReplacer<'_> {
    fn visit(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        self.replace_in(text, SkipInserted::No)
    }
}

/// One line of a buffer: `start..end` is its content, `next` where the following line
/// starts (after CRLF, or a bare LF should one remain).
struct Line {
    start: usize,
    end: usize,
    next: usize,
}

impl Line {
    fn has_break(&self) -> bool {
        self.next > self.end
    }
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = Line> {
    let mut position = 0;
    std::iter::from_fn(move || {
        let rest = bytes.get(position..).filter(|rest| !rest.is_empty())?;
        let start = position;
        let line = match rest.iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let newline = start + offset;
                let end = if offset > 0 && rest.get(offset - 1) == Some(&b'\r') {
                    newline - 1
                } else {
                    newline
                };
                Line {
                    start,
                    end,
                    next: newline + 1,
                }
            }
            None => Line {
                start,
                end: bytes.len(),
                next: bytes.len(),
            },
        };
        position = line.next;
        Some(line)
    })
}
