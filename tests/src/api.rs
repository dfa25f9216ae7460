//! HTTP access to a server: the shared blocking client, the authenticated [`Api`] (files,
//! shares, raw tus creation and `HEAD`), the JSON shapes it answers with, and small tus
//! helpers (base64 for metadata, the file id of an upload URL).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use serde::Deserialize;

/// The tus protocol version every tus request carries.
pub const TUS_VERSION: &str = "1.0.0";

/// A blocking HTTP client without TLS, with generous timeouts for large bodies.
pub fn http_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")
}

/// `GET /api/v1/files/{id}`: the sender's view of an upload.
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    /// The file id (also the tus upload id).
    pub id: String,
    /// The `filename` given in the tus metadata.
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Bytes durably received.
    pub offset: u64,
    /// `"uploading"` or `"complete"`.
    pub state: String,
    /// Hex BLAKE3 of the plaintext once complete.
    pub blake3: Option<String>,
    /// CRC-32 of the plaintext once complete.
    pub crc32: Option<u32>,
    /// When the upload or file expires.
    pub expires_at: Option<serde_json::Value>,
}

/// A file as listed in a share.
#[derive(Debug, Clone, Deserialize)]
pub struct ShareFile {
    /// The file id.
    pub id: String,
    /// The file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex BLAKE3 of the plaintext.
    pub blake3: Option<String>,
}

/// `POST /api/v1/shares` response.
#[derive(Debug, Clone, Deserialize)]
pub struct Share {
    /// The share id.
    pub id: String,
    /// The recipients' download link, `FERRY_PUBLIC_URL/d/<token>`.
    pub url: String,
    /// When the share expires.
    pub expires_at: serde_json::Value,
    /// The shared files.
    pub files: Vec<ShareFile>,
}

impl Share {
    /// The download URL of one file of this share, `<url>/f/<file_id>`.
    pub fn file_url(&self, file_id: &str) -> String {
        format!("{}/f/{}", self.url.trim_end_matches('/'), file_id)
    }
}

/// What `HEAD <upload url>` answered.
#[derive(Debug, Clone)]
pub struct TusHead {
    /// HTTP status.
    pub status: u16,
    /// `Upload-Offset`, if present.
    pub offset: Option<u64>,
    /// `Upload-Length`, if present.
    pub length: Option<u64>,
}

/// An authenticated client of one server and tenant.
#[derive(Clone)]
pub struct Api {
    http: reqwest::blocking::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for the server at `base_url`, sending `Authorization: Bearer <api_key>`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self> {
        Ok(Api {
            http: http_client()?,
            base: base_url.trim_end_matches('/').to_string(),
            key: api_key.to_string(),
        })
    }

    /// The underlying HTTP client (no default headers).
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// The API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value of the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.key)
    }

    /// Resolve a possibly relative URL (e.g. a `Location` header) against the server.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            format!("{}/{url}", self.base)
        }
    }

    /// `GET /api/v1/files/{id}`.
    pub fn file(&self, id: &str) -> Result<FileInfo> {
        self.get_json(&format!("/api/v1/files/{id}"))
    }

    /// `GET path` with this key; expects 200 and a JSON body.
    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .header("Authorization", self.bearer())
            .send()
            .with_context(|| format!("GET {url}"))?;
        json_response(resp, 200, &format!("GET {url}"))
    }

    /// `POST /api/v1/shares` with the given files and recipients; expects 201.
    pub fn create_share(
        &self,
        files: &[&str],
        recipients: &[&str],
        retention_days: Option<u32>,
    ) -> Result<Share> {
        let url = format!("{}/api/v1/shares", self.base);
        let mut body = serde_json::json!({ "files": files, "recipients": recipients });
        if let Some(days) = retention_days {
            body["retention_days"] = days.into();
        }
        let what = format!("POST {url} {body}");
        let resp = self
            .http
            .post(&url)
            .header("Authorization", self.bearer())
            .json(&body)
            .send()
            .with_context(|| what.clone())?;
        json_response(resp, 201, &what)
    }

    /// tus creation: `POST /files` with `Upload-Length: size` and `filename` metadata; returns
    /// the absolute upload URL from `Location` (expects 201).
    pub fn tus_create(&self, size: u64, filename: &str) -> Result<String> {
        let url = format!("{}/files", self.base);
        let resp = self
            .http
            .post(&url)
            .header("Authorization", self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Length", size.to_string())
            .header(
                "Upload-Metadata",
                format!("filename {}", base64(filename.as_bytes())),
            )
            .send()
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().unwrap_or_default();
        ensure!(
            status == 201,
            "POST {url} (Upload-Length: {size}) answered {status}, expected 201: {body}"
        );
        let location =
            location.ok_or_else(|| anyhow!("POST {url} answered 201 without a Location header"))?;
        Ok(self.absolute(&location))
    }

    /// tus `HEAD <upload url>` that must answer 200 with `Upload-Length: size`; returns the
    /// offset.
    pub fn tus_offset(&self, upload_url: &str, size: u64) -> Result<u64> {
        let head = self.tus_head(upload_url)?;
        ensure!(
            head.status == 200 && head.length == Some(size),
            "HEAD {upload_url} answered {} with Upload-Length {:?} (expected 200 with {size})",
            head.status,
            head.length
        );
        head.offset
            .ok_or_else(|| anyhow!("HEAD {upload_url} has no Upload-Offset"))
    }

    /// tus `HEAD <upload url>`.
    pub fn tus_head(&self, upload_url: &str) -> Result<TusHead> {
        let resp = self
            .http
            .head(upload_url)
            .header("Authorization", self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .send()
            .with_context(|| format!("HEAD {upload_url}"))?;
        let header = |name: &str| -> Result<Option<u64>> {
            match resp.headers().get(name) {
                None => Ok(None),
                Some(v) => {
                    let text = v.to_str().context("non-ASCII header")?;
                    Ok(Some(text.parse().with_context(|| {
                        format!("HEAD {upload_url}: bad {name}: {text:?}")
                    })?))
                }
            }
        };
        Ok(TusHead {
            status: resp.status().as_u16(),
            offset: header("upload-offset")?,
            length: header("upload-length")?,
        })
    }
}

impl Api {
    /// `GET /api/v1/admin/audit` (an admin key): the tenant's audit events, one per line.
    pub fn audit_events(&self) -> Result<Vec<serde_json::Value>> {
        let url = format!("{}/api/v1/admin/audit", self.base);
        let resp = self
            .http
            .get(&url)
            .header("Authorization", self.bearer())
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let body = resp.text()?;
        ensure!(status == 200, "GET {url} answered {status}: {body}");
        body.lines()
            .map(|line| serde_json::from_str(line).with_context(|| format!("audit line {line}")))
            .collect()
    }

    /// `GET /api/v1/admin/policy` (an admin key): the tenant's policy.
    pub fn policy(&self) -> Result<serde_json::Value> {
        self.get_json("/api/v1/admin/policy")
    }

    /// Reads the tenant's policy, sets each `(field, value)` of `changes` in it and `PUT`s it
    /// back (an admin key); returns the policy the server answered with (expects 200).
    pub fn update_policy(
        &self,
        changes: &[(&str, serde_json::Value)],
    ) -> Result<serde_json::Value> {
        let mut policy = self.policy()?;
        for (field, value) in changes {
            policy[*field] = value.clone();
        }
        let url = format!("{}/api/v1/admin/policy", self.base);
        let what = format!("PUT {url} {policy}");
        let resp = self
            .http
            .put(&url)
            .header("Authorization", self.bearer())
            .json(&policy)
            .send()
            .with_context(|| what.clone())?;
        json_response(resp, 200, &what)
    }
}

fn json_response<T: serde::de::DeserializeOwned>(
    resp: reqwest::blocking::Response,
    expected: u16,
    what: &str,
) -> Result<T> {
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .with_context(|| format!("{what}: reading the body"))?;
    ensure!(
        status == expected,
        "{what} answered {status}, expected {expected}: {body}"
    );
    serde_json::from_str(&body).with_context(|| format!("{what} answered unexpected JSON: {body}"))
}

/// Standard base64 (with padding), as tus `Upload-Metadata` and `Upload-Checksum` use it.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The file id at the end of an upload URL (`…/files/<id>`).
pub fn file_id_from_url(upload_url: &str) -> Result<String> {
    let path = upload_url.split(['?', '#']).next().unwrap_or(upload_url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty() && !id.contains(':'))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no file id at the end of upload URL {upload_url:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "base64({input:?})");
        }
    }

    #[test]
    fn parses_file_ids() {
        assert_eq!(
            file_id_from_url("http://h:1/files/0b9d6c1e-aaaa")
                .ok()
                .as_deref(),
            Some("0b9d6c1e-aaaa")
        );
        assert!(file_id_from_url("http://h:1/").is_err());
    }
}
