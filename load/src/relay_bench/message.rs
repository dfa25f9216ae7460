//! The messages a run submits. Every message of a run shares one body (generated once, so a
//! 10 MB body costs the generator nothing per message); the headers make each unique: a
//! Message-ID of its own (Ferry ignores a Message-ID it has already queued for the same
//! recipient) and the `X-Bench-Id` the sink keys arrivals by.

use std::sync::Arc;

use crate::data::Rng;

/// Longest body line, CRLF included: the 76 characters of base64 text plus CRLF, as a mail
/// client would wrap an attachment.
const LINE: usize = 78;

/// The characters of a body line: base64's alphabet, so no line starts with `.` (nothing to
/// dot-stuff: the bytes on the wire are the body) and nothing is 8-bit.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A body of exactly `size` bytes (at least 2: one empty line): lines of up to 76 random
/// base64 characters, each ending in CRLF.
pub(crate) fn body(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed, 0);
    let mut out = Vec::with_capacity(size.max(2));
    loop {
        let left = size.saturating_sub(out.len());
        // A whole line, or what is left; never leave one byte, which cannot end in CRLF.
        let take = match left {
            0 if !out.is_empty() => break,
            0..=LINE => left.max(2),
            n if n == LINE + 1 => LINE - 1,
            _ => LINE,
        };
        for _ in 0..take - 2 {
            out.push(ALPHABET[rng.below(64) as usize]);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The messages of one run.
pub(crate) struct MessageSet {
    tag: String,
    from: String,
    to_domain: String,
    body: Arc<Vec<u8>>,
}

impl MessageSet {
    /// Messages tagged `tag` from `from` to recipients at `to_domain`, each with a body of
    /// `size` bytes.
    pub(crate) fn new(tag: &str, from: &str, to_domain: &str, size: usize, seed: u64) -> Self {
        Self {
            tag: tag.to_owned(),
            from: from.to_owned(),
            to_domain: to_domain.to_owned(),
            body: Arc::new(body(size, seed)),
        }
    }

    /// The envelope and header sender.
    pub(crate) fn sender(&self) -> &str {
        &self.from
    }

    /// What the sink must see as `X-Bench-Id` of message `i`.
    pub(crate) fn id(&self, i: usize) -> String {
        format!("{}.{i}", self.tag)
    }

    /// The prefix every id of this run starts with.
    pub(crate) fn id_prefix(&self) -> String {
        format!("{}.", self.tag)
    }

    /// Message `i`'s one recipient (a mailbox of its own, like mail to many people).
    pub(crate) fn recipient(&self, i: usize) -> String {
        format!("r{i}@{}", self.to_domain)
    }

    /// Message `i`'s header section, blank line included.
    pub(crate) fn headers(&self, i: usize) -> Vec<u8> {
        let id = self.id(i);
        let domain = self.from.rsplit('@').next().unwrap_or("bench.test");
        // A fixed Date: nothing on the path reads it, and the bytes stay the same per run.
        format!(
            "From: Ferry bench <{from}>\r\n\
             To: <{to}>\r\n\
             Subject: relay bench {id}\r\n\
             Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
             Message-ID: <{id}@{domain}>\r\n\
             X-Bench-Id: {id}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n",
            from = self.from,
            to = self.recipient(i),
        )
        .into_bytes()
    }

    /// The body every message carries.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_size_asked_for_and_nothing_to_stuff() {
        for size in [2, 3, 77, 78, 79, 80, 156, 157, 1000, 10_000_000] {
            let b = body(size, 7);
            assert_eq!(b.len(), size, "size {size}");
            assert!(b.ends_with(b"\r\n"));
            for line in b.split(|&c| c == b'\n') {
                assert!(line.len() < LINE, "size {size}: a line of {}", line.len());
                assert!(!line.starts_with(b"."));
            }
        }
        assert_eq!(body(0, 7), b"\r\n");
        assert_eq!(body(1, 7), b"\r\n");
        assert_eq!(body(1000, 7), body(1000, 7), "deterministic");
    }

    #[test]
    fn each_message_is_unique_and_tagged() {
        let set = MessageSet::new("run1", "bench@sender.bench.test", "bench.test", 1000, 1);
        let one = String::from_utf8_lossy(&set.headers(1)).into_owned();
        assert!(one.contains("X-Bench-Id: run1.1\r\n"));
        assert!(one.contains("Message-ID: <run1.1@sender.bench.test>\r\n"));
        assert!(one.ends_with("\r\n\r\n"));
        assert_ne!(set.headers(1), set.headers(2));
        assert_eq!(set.recipient(3), "r3@bench.test");
        assert!(set.id(9).starts_with(&set.id_prefix()));
    }
}
