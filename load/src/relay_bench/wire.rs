//! SMTP as both ends of the bench speak it: lines, multi-line replies, commands.

use anyhow::{Context, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Longest line either end reads. Commands and replies are short and the bench's own
/// message lines are 78 bytes, but a relay may add long header lines (Received, DKIM).
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Reads one line into `line` (emptied first) without its line end. `false` at the end of
/// input.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> anyhow::Result<bool> {
    line.clear();
    let n = reader.read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(false);
    }
    if line.len() > MAX_LINE + 2 {
        bail!("a line of {} bytes", line.len());
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(true)
}

/// Writes `bytes` and flushes: SMTP is a dialogue, nothing may wait in a buffer.
pub(crate) async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> anyhow::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// One reply: its code and the text of each line.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The three-digit code.
    pub(crate) code: u16,
    /// Each line's text after the code and separator.
    pub(crate) lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub(crate) fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether an EHLO reply advertises `keyword` (first word of a line after the first).
    pub(crate) fn advertises(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        })
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Parses one reply line: code, whether more lines follow, text.
fn parse_reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    let text = std::str::from_utf8(line).ok()?;
    let code: u16 = text.get(..3)?.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let (more, rest) = match text.as_bytes().get(3) {
        None => (false, ""),
        Some(b'-') => (true, &text[4..]),
        Some(b' ') => (false, &text[4..]),
        Some(_) => return None,
    };
    Some((code, more, rest.to_owned()))
}

/// Reads a whole (possibly multi-line) reply.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> anyhow::Result<Reply> {
    let mut lines = Vec::new();
    loop {
        if !read_line(reader, line).await? {
            bail!("the connection closed while a reply was expected");
        }
        let (code, more, text) = parse_reply_line(line)
            .with_context(|| format!("not an SMTP reply: {:?}", String::from_utf8_lossy(line)))?;
        lines.push(text);
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

/// A multi-line reply with `code` (`250-a`, `250-b`, `250 c`).
pub(crate) fn multiline(code: u16, lines: &[&str]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{line}\r\n"));
    }
    out
}

/// The value of header `name` (case-insensitive) if `line` is that header.
pub(crate) fn header_value<'a>(line: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(line).ok()?;
    let (field, value) = text.split_once(':')?;
    field
        .trim()
        .eq_ignore_ascii_case(name)
        .then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_replies_and_keywords() -> anyhow::Result<()> {
        let text = multiline(250, &["mx.bench.test", "PIPELINING", "STARTTLS"]);
        assert_eq!(
            text,
            "250-mx.bench.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
        );
        let mut reader = tokio::io::BufReader::new(text.as_bytes());
        let mut line = Vec::new();
        let reply = read_reply(&mut reader, &mut line).await?;
        assert!(reply.is_ok());
        assert!(reply.advertises("starttls"));
        assert!(
            !reply.advertises("mx.bench.test"),
            "the greeting is no keyword"
        );
        let mut bad = tokio::io::BufReader::new(&b"hello\r\n"[..]);
        assert!(read_reply(&mut bad, &mut line).await.is_err());
        Ok(())
    }

    #[test]
    fn header_values() {
        assert_eq!(header_value(b"X-Bench-Id: a.1", "x-bench-id"), Some("a.1"));
        assert_eq!(header_value(b"Subject: x", "x-bench-id"), None);
        assert_eq!(header_value(b"no colon", "x-bench-id"), None);
    }
}
