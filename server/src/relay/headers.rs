//! Reading header fields of a queued message (CRLF, as the relay normalised it): one reader
//! for the Message-ID, the From domain and the Microsoft 365 tenant header.

/// The values of every header field called `name` (case-insensitive), in order, each unfolded:
/// its lines trimmed and joined by one space.
pub fn values(message: &[u8], name: &str) -> Vec<String> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut lines = head.split("\r\n").peekable();
    let mut found = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if !field.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut parts = vec![value.trim()];
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            parts.push(next.trim());
        }
        parts.retain(|p| !p.is_empty());
        found.push(parts.join(" "));
    }
    found
}

/// The value of the first header field called `name`.
pub fn first(message: &[u8], name: &str) -> Option<String> {
    values(message, name).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_is_found_unfolded_and_the_body_is_not_read() {
        let message = b"X-Id: one\r\nSubject: s\r\nx-id:\r\n two\r\n\tparts\r\n Folded: no\r\n\r\nX-Id: body\r\n";
        assert_eq!(values(message, "X-ID"), ["one", "two parts Folded: no"]);
        assert_eq!(first(message, "subject").as_deref(), Some("s"));
        assert_eq!(first(message, "missing"), None);
        assert!(values(b"", "x").is_empty());
    }
}
