//! `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

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
    /// Parses the header value; an empty value is empty metadata.
    pub fn parse(header: &str) -> Result<Self, MetadataError> {
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        if header.trim().is_empty() {
            return Ok(Metadata { pairs });
        }
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
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(MetadataError(format!("duplicate key {key:?}")));
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

    /// The file name the client gave (`filename`, or `name` as tus-js-client examples use).
    pub fn filename(&self) -> String {
        self.get("filename")
            .or_else(|| self.get("name"))
            .unwrap_or_default()
    }
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
}
