//! SMTP replies (RFC 5321 §4.2): `ddd-text` continuation lines ending in `ddd text`.

use std::fmt;
use std::io;

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest reply line read (RFC 5321 allows 512 octets; peers exceed it in practice).
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (an EHLO answer has a dozen).
pub const MAX_LINES: usize = 64;

/// One reply from the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the peer says retrying will not help.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Whether an EHLO reply advertises `keyword` (case-insensitive, as the first word of a
    /// line after the greeting line).
    pub fn advertises(&self, keyword: &str) -> bool {
        self.extension(keyword).is_some()
    }

    /// The parameters after an advertised EHLO keyword (`SIZE 10240000` → `Some("10240000")`).
    pub fn extension(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|line| {
            let mut words = line.splitn(2, ' ');
            let word = words.next()?;
            word.eq_ignore_ascii_case(keyword)
                .then(|| words.next().unwrap_or("").trim())
        })
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Reads one reply.
///
/// # Errors
/// The connection closed or failed, a line is longer than [`MAX_LINE`], a reply has more than
/// [`MAX_LINES`] lines, or a line is not `ddd[ -]text` with one code throughout
/// (`InvalidData`).
pub async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Reply> {
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        if lines.len() == MAX_LINES {
            return Err(invalid("a reply of too many lines"));
        }
        let line = read_line(reader).await?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let bytes = line.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(invalid("a reply line without a code"));
        }
        let this: u16 = line[..3].parse().map_err(|_| invalid("a bad reply code"))?;
        if !(200..600).contains(&this) || code.is_some_and(|c| c != this) {
            return Err(invalid(
                "a reply code out of range or changing within a reply",
            ));
        }
        code = Some(this);
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(invalid("a reply line with a bad separator")),
        };
        lines.push(text.to_owned());
        if last {
            return Ok(Reply { code: this, lines });
        }
    }
}

/// One line up to and including `\n`, at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            ));
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(invalid("a reply line too long"));
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(line);
        }
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(wire: &[u8]) -> io::Result<Reply> {
        let mut reader = tokio::io::BufReader::new(wire);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn multi_line_ehlo_reply_lists_extensions() {
        let reply =
            parse(b"250-mx.example Hello\r\n250-SIZE 1000\r\n250-starttls\r\n250 8BITMIME\r\n")
                .await
                .expect("a valid reply");
        assert_eq!(reply.code, 250);
        assert!(reply.advertises("STARTTLS"));
        assert_eq!(reply.extension("SIZE"), Some("1000"));
        assert!(
            !reply.advertises("mx.example"),
            "the greeting line is no extension"
        );
    }

    #[tokio::test]
    async fn malformed_replies_are_errors() {
        for wire in [
            &b"25 short\r\n"[..],
            b"250-a\r\n251 b\r\n",
            b"250xfoo\r\n",
            b"abc hello\r\n",
            b"250-unfinished",
            b"",
        ] {
            assert!(
                parse(wire).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[tokio::test]
    async fn unbounded_replies_are_cut_off() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE));
        assert!(parse(long.as_bytes()).await.is_err());
        let many = "250-x\r\n".repeat(MAX_LINES + 1);
        assert!(parse(many.as_bytes()).await.is_err());
    }
}
