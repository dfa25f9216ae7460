//! Ranged reads of one object: the span a download needs is fetched with one GET and read
//! sequentially; a read elsewhere starts a new GET.

use std::ops::Range;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::Bucket;
use super::client::{error_code, remote};
use crate::store::{ObjectReader, StoreError};

/// An open GET and where its next byte is.
struct Body {
    position: u64,
    stream: ByteStream,
    leftover: Bytes,
}

/// Reader of one object.
pub(super) struct S3Reader {
    bucket: Arc<Bucket>,
    key: String,
    expected: Range<u64>,
    body: Option<Body>,
}

impl S3Reader {
    pub(super) fn new(bucket: Arc<Bucket>, key: String, expected: Range<u64>) -> Self {
        S3Reader {
            bucket,
            key,
            expected,
            body: None,
        }
    }

    /// Starts a GET at `offset` that reaches at least `min_end` (and to the end of the
    /// expected span when `offset` lies in it).
    fn start(&mut self, offset: u64, min_end: u64) -> Result<Body, StoreError> {
        let end = if self.expected.contains(&offset) {
            self.expected.end.max(min_end)
        } else {
            min_end
        };
        let range = format!("bytes={offset}-{}", end.saturating_sub(1));
        let answer = self.bucket.block_on(
            self.bucket
                .client
                .get_object()
                .bucket(&self.bucket.name)
                .key(&self.key)
                .range(&range)
                .send(),
        );
        match answer {
            Ok(out) => Ok(Body {
                position: offset,
                stream: out.body,
                leftover: Bytes::new(),
            }),
            Err(e) => match error_code(&e) {
                Some("NoSuchKey") => Err(StoreError::NotFound),
                Some("InvalidRange") => Err(StoreError::Truncated),
                _ => Err(remote(format_args!("GetObject {} {range}", self.key), e)),
            },
        }
    }
}

impl ObjectReader for S3Reader {
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut body = match self.body.take() {
            Some(body) if body.position == offset => body,
            _ => self.start(offset, offset + buf.len() as u64)?,
        };
        let mut filled = 0;
        while filled < buf.len() {
            if body.leftover.is_empty() {
                body.leftover = match self.bucket.block_on(body.stream.next()) {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => {
                        return Err(StoreError::Remote(format!(
                            "GetObject {} at {}: {e}",
                            self.key, body.position
                        )));
                    }
                    None => return Err(StoreError::Truncated),
                };
            }
            let take = body.leftover.len().min(buf.len() - filled);
            buf[filled..filled + take].copy_from_slice(&body.leftover.split_to(take));
            filled += take;
            body.position += take as u64;
        }
        self.body = Some(body);
        Ok(())
    }
}
