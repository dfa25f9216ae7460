//! `s3://BUCKET?endpoint=…&region=…`: the S3 backend's configuration, EEA residency and part
//! plan. The multipart writer and ranged reader come with the rest of issue 3; until then
//! [`crate::store::open`] validates an S3 URL fully (syntax, EEA region) and then says plainly
//! that this build cannot use it.

pub mod plan;
pub mod residency;

/// Where objects live in S3, parsed from `FERRY_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for S3-compatible stores (Garage, Ceph, …); `None` means AWS.
    pub endpoint: Option<String>,
    /// Region the bucket must be in (required: residency is checked against it).
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), the default with a custom endpoint.
    pub path_style: bool,
}

/// An `s3://` URL that cannot be used; the message says which part and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("FERRY_STORE {url:?}: {message}")]
pub struct S3UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub message: String,
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Decodes `%XX` escapes in a query value (endpoints may be given encoded).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl S3Location {
    /// Parses `s3://BUCKET?region=R[&endpoint=URL][&path_style=true|false]`.
    pub fn parse(url: &str) -> Result<Self, S3UrlError> {
        let error = |message: &str| S3UrlError {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| error("must start with s3://"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if !valid_bucket(bucket) {
            return Err(error(
                "the bucket name must be 3-63 lowercase letters, digits, '.' or '-'",
            ));
        }
        let (mut endpoint, mut region, mut path_style) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| error("bad %-escape in the query"))?;
            match key {
                "endpoint" => endpoint = Some(value),
                "region" => region = Some(value),
                "path_style" => {
                    path_style = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(error("path_style must be true or false")),
                    })
                }
                other => return Err(error(&format!("unknown parameter {other:?}"))),
            }
        }
        let region = region.filter(|r| !r.is_empty()).ok_or_else(|| {
            error("region=… is required (it is checked against the EEA allowlist)")
        })?;
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(error("endpoint must be an http:// or https:// URL"));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            path_style: path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aws_and_self_hosted_urls() -> Result<(), S3UrlError> {
        let aws = S3Location::parse("s3://ferry-files?region=eu-central-1")?;
        assert_eq!(aws.bucket, "ferry-files");
        assert_eq!(aws.endpoint, None);
        assert!(!aws.path_style);
        let garage =
            S3Location::parse("s3://ferry?endpoint=http%3A%2F%2F127.0.0.1%3A3900&region=garage")?;
        assert_eq!(garage.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(garage.region, "garage");
        assert!(garage.path_style);
        let plain = S3Location::parse(
            "s3://ferry?endpoint=http://127.0.0.1:3900&region=garage&path_style=false",
        )?;
        assert!(!plain.path_style);
        Ok(())
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expect) in [
            ("file:///tmp", "s3://"),
            ("s3://Bad_Bucket?region=eu-west-1", "bucket name"),
            ("s3://ferry", "region=… is required"),
            (
                "s3://ferry?region=eu-west-1&colour=blue",
                "unknown parameter",
            ),
            ("s3://ferry?region=eu-west-1&endpoint=ftp://x", "endpoint"),
            ("s3://ferry?region=eu-west-1&endpoint=%zz", "%-escape"),
        ] {
            let err = S3Location::parse(url).expect_err(url).to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }
}
