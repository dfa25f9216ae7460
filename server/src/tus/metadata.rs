//! `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The longest `Upload-Metadata` accepted, in bytes: a file name of the longest kind in
/// base64 and a handful of other pairs fit easily; a client that sends more is refused before
/// any parsing.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The longest file name accepted, in bytes of UTF-8 (what common file systems allow).
pub const MAX_FILENAME_BYTES: usize = 255;

/// The header could not be parsed; the message says which pair and why.
#[derive(Debug, thiserror::Error)]
#[error("malformed Upload-Metadata: {0}")]
pub struct MetadataError(pub String);

/// Parsed metadata pairs, values decoded (invalid UTF-8 is kept lossily for display only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    /// Parses the header value in one pass; an empty value is empty metadata. Refuses a
    /// header over [`MAX_METADATA_BYTES`] and a file name over [`MAX_FILENAME_BYTES`].
    pub fn parse(header: &str) -> Result<Self, MetadataError> {
        if header.len() > MAX_METADATA_BYTES {
            return Err(MetadataError(format!(
                "the header is {} bytes; at most {MAX_METADATA_BYTES} are accepted",
                header.len()
            )));
        }
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        if header.trim().is_empty() {
            return Ok(Metadata { pairs });
        }
        let mut keys = HashSet::new();
        for item in header.split(',') {
            let item = item.trim();
            let mut parts = item.split(' ');
            let key = parts.next().unwrap_or_default();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(MetadataError(format!("invalid key in {item:?}")));
            }
            let value = match parts.next() {
                None | Some("") => Vec::new(),
                Some(encoded) => STANDARD
                    .decode(encoded)
                    .map_err(|_| MetadataError(format!("value of {key:?} is not base64")))?,
            };
            if parts.next().is_some() {
                return Err(MetadataError(format!("too many spaces in {item:?}")));
            }
            if !keys.insert(key) {
                return Err(MetadataError(format!("duplicate key {key:?}")));
            }
            if matches!(key, "filename" | "name") && value.len() > MAX_FILENAME_BYTES {
                return Err(MetadataError(format!(
                    "{key} is {} bytes; at most {MAX_FILENAME_BYTES} are accepted",
                    value.len()
                )));
            }
            pairs.push((key.to_owned(), value));
        }
        Ok(Metadata { pairs })
    }

    /// The value of `key` as text, if present.
    pub fn get(&self, key: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The file name the client gave (`filename`, or `name` as tus-js-client examples use),
    /// made safe to show: see [`display_name`].
    pub fn filename(&self) -> String {
        display_name(
            &self
                .get("filename")
                .or_else(|| self.get("name"))
                .unwrap_or_default(),
        )
    }
}

/// A file name as recipients, senders and the audit log see it: without control characters
/// (which could forge lines in a log or a mail) and without the Unicode bidirectional controls
/// that let `invoice\u{202E}fdp.exe` pass for `invoiceexe.pdf`.
pub fn display_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect()
}

/// The bidirectional formatting characters (Unicode's Bidi_Control property).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_empty_values() -> Result<(), MetadataError> {
        let meta =
            Metadata::parse("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")?;
        assert_eq!(meta.filename(), "world_domination_plan.pdf");
        assert_eq!(meta.get("is_confidential").as_deref(), Some(""));
        assert_eq!(Metadata::parse("")?, Metadata::default());
        Ok(())
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "filename !!!",
            "a b c",
            ",",
            "k dg==,k dg==",
            "filename dGVzdA== extra",
        ] {
            assert!(Metadata::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bounds_the_header_and_the_file_name() -> Result<(), MetadataError> {
        let longest = STANDARD.encode("é".repeat(MAX_FILENAME_BYTES / 2));
        assert!(Metadata::parse(&format!("filename {longest}")).is_ok());
        let too_long = STANDARD.encode("x".repeat(MAX_FILENAME_BYTES + 1));
        assert!(Metadata::parse(&format!("filename {too_long}")).is_err());
        assert!(Metadata::parse(&format!("name {too_long}")).is_err());
        let many: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        assert!(Metadata::parse(&many.join(",")).is_err(), "over 4 KiB");
        let some: Vec<String> = (0..400).map(|i| format!("k{i}")).collect();
        assert_eq!(Metadata::parse(&some.join(","))?.pairs.len(), 400);
        Ok(())
    }

    #[test]
    fn names_shown_lose_control_and_bidi_characters() -> Result<(), MetadataError> {
        let name = "invoice\u{202E}fdp.exe\r\nBcc: x\u{2066}.txt";
        let meta = Metadata::parse(&format!("filename {}", STANDARD.encode(name)))?;
        assert_eq!(meta.filename(), "invoicefdp.exeBcc: x.txt");
        assert_eq!(display_name("Bericht Ä ✓.pdf"), "Bericht Ä ✓.pdf");
        Ok(())
    }
}
