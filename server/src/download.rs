//! Recipients' side: resolve a link token to its share, and stream verified plaintext of a
//! file's byte range out of the stored segments.
//!
//! Every segment is authenticated before any of its bytes leave: a tampered object fails the
//! request (before the headers if the first segments are bad, by aborting the body after).

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::audit::{Actor, EventKind};
use crate::auth::parse_link_token;
use crate::crypto::CryptoError;
use crate::crypto::segment::{
    NONCE_LEN, SEGMENT_OVERHEAD, SEGMENT_PLAINTEXT, STORED_SEGMENT_MAX, SegmentCipher, SegmentSpan,
    segment_count, segment_plain_len, span_for_range, stored_len,
};
use crate::db::DbError;
use crate::db::share_status::DownloadCost;
use crate::db::shares::{ShareRow, SharedFile};
use crate::state::AppState;
use crate::store::{ObjectReader, StoreError};

/// Segments read and verified per step: 512 KiB of plaintext. A download holds at most three
/// batches (one being read, one queued, one being sent), so memory stays flat per recipient.
const SEGMENTS_PER_BATCH: u64 = 8;

/// Why a download cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No such link or file (404; says nothing about whether a token ever existed).
    #[error("not found")]
    NotFound,
    /// The link expired or was revoked (410).
    #[error("this link has expired or was revoked")]
    Gone,
    /// The file was downloaded through this link as often as the tenant's policy allows (410).
    #[error("this file was downloaded as many times as allowed")]
    LimitReached,
    /// Stored bytes failed authentication: never served (500, logged loudly).
    #[error("stored data failed its integrity check")]
    Integrity,
    /// Database or store failure (503).
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<DbError> for DownloadError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => DownloadError::NotFound,
            other => DownloadError::Storage(other.to_string()),
        }
    }
}

impl From<CryptoError> for DownloadError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Authentication | CryptoError::Malformed(_) => DownloadError::Integrity,
            other => DownloadError::Storage(other.to_string()),
        }
    }
}

impl From<StoreError> for DownloadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Truncated => DownloadError::Integrity,
            other => DownloadError::Storage(other.to_string()),
        }
    }
}

/// Finds the live share behind a link token, verifying the token in constant time.
pub async fn resolve_share(state: &AppState, token: &str) -> Result<ShareRow, DownloadError> {
    let presented = parse_link_token(token).ok_or(DownloadError::NotFound)?;
    let share = state.db.share_by_selector(presented.selector).await?;
    if !presented.matches(&share.token_hash) {
        return Err(DownloadError::NotFound);
    }
    if share.revoked_at.is_some()
        || share.ended_at.is_some()
        || share.expires_at <= OffsetDateTime::now_utc()
    {
        return Err(DownloadError::Gone);
    }
    Ok(share)
}

/// Who is at the other end of a recipient's request, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    /// The client's address (the TCP peer).
    pub ip: Option<std::net::IpAddr>,
    /// Its `User-Agent`, cut to 512 characters.
    pub user_agent: Option<String>,
}

/// Records an event a recipient caused on `share` (a page opened, bytes served).
pub async fn record(
    state: &AppState,
    share: &ShareRow,
    kind: EventKind,
    subject: Uuid,
    visitor: &Visitor,
    mut details: serde_json::Value,
) -> Result<(), DownloadError> {
    if let Some(fields) = details.as_object_mut() {
        fields.insert("share".into(), serde_json::json!(share.id));
        fields.insert("ip".into(), serde_json::json!(visitor.ip));
        fields.insert("user_agent".into(), serde_json::json!(visitor.user_agent));
    }
    let entry = state
        .audit(
            share.tenant_id,
            kind,
            Actor::Recipient,
            Some(subject),
            details,
        )
        .map_err(|e| DownloadError::Storage(e.to_string()))?;
    state.db.append_audit(&entry).await?;
    Ok(())
}

/// Reserves the bytes `[start, end]` of `file` against the tenant's `max_downloads_per_file`,
/// before any of them leave; `LimitReached` when the budget cannot cover them.
///
/// The rule (DESIGN.md, "Download limit"): a file may be served N copies' worth of bytes
/// through one share, plus an allowance for bytes lost in flight that is always less than
/// one copy. Every response reserves the length of its range; a response that ends early
/// gives back what it did not send ([`refund_bytes`]). So N whole downloads succeed and the
/// next is refused, however they are split into ranges or resumed, and a HEAD (which sends
/// no body) costs nothing. An empty file costs one unit per download.
pub async fn reserve_bytes(
    state: &AppState,
    share: &ShareRow,
    file: &SharedFile,
    range: Option<(u64, u64)>,
) -> Result<u64, DownloadError> {
    let cost = download_cost(file.size, range);
    state
        .db
        .reserve_download(share.tenant_id, share.id, file.id, &cost)
        .await?
        .ok_or(DownloadError::LimitReached)
}

/// The cost of serving `range` (`None`: the whole of an empty file) of a `size`-byte file.
pub fn download_cost(size: u64, range: Option<(u64, u64)>) -> DownloadCost {
    let unit = size.max(1);
    DownloadCost {
        cost: range.map_or(1, |(start, end)| (end + 1).saturating_sub(start)),
        unit,
        allowance: (size / 64).max(IN_FLIGHT_ALLOWANCE).min(size / 2),
    }
}

/// Bytes a broken connection may have lost in socket buffers, allowed for beyond N copies;
/// never more than half a copy, so N + 1 copies are never served.
const IN_FLIGHT_ALLOWANCE: u64 = 16 << 20;

/// Gives back the bytes of a reservation that a response did not send.
pub async fn refund_bytes(
    state: &AppState,
    share: &ShareRow,
    file: Uuid,
    unsent: u64,
) -> Result<(), DownloadError> {
    if unsent > 0 {
        state.db.refund_download(share.id, file, unsent).await?;
    }
    Ok(())
}

/// The files a share offers.
pub async fn share_files(
    state: &AppState,
    share: &ShareRow,
) -> Result<Vec<SharedFile>, DownloadError> {
    Ok(state.db.shared_files(share.tenant_id, share.id).await?)
}

/// A file of a share, ready to be read.
pub struct OpenFile {
    /// What recipients see of it.
    pub file: SharedFile,
    cipher: SegmentCipher,
}

/// Opens a file of a share: checks membership and unwraps its key.
pub async fn open_file(
    state: &AppState,
    share: &ShareRow,
    file_id: Uuid,
) -> Result<OpenFile, DownloadError> {
    let file = state
        .db
        .shared_file(share.tenant_id, share.id, file_id)
        .await?;
    let wrapped = state.db.wrapped_dek(share.tenant_id, file_id).await?;
    let dek = state
        .tenant_kek(share.tenant_id)?
        .unwrap(&wrapped, file_id)?;
    let cipher = SegmentCipher::new(&dek, file_id)?;
    Ok(OpenFile { file, cipher })
}

/// Reads plaintext `[start, end]` of a file, batch by batch, verifying every segment.
struct RangeReader {
    reader: Box<dyn ObjectReader>,
    cipher: SegmentCipher,
    plaintext_len: u64,
    span: SegmentSpan,
    next: u64,
    start: u64,
    end: u64,
}

impl RangeReader {
    fn next_batch(&mut self) -> Result<Option<Bytes>, DownloadError> {
        if self.next > self.span.last {
            return Ok(None);
        }
        let mut last = (self.next + SEGMENTS_PER_BATCH - 1).min(self.span.last);
        // An empty final segment (a length that is a multiple of 64 KiB) is read with the
        // segments before it, never alone: its check (is the object whole?) must come before
        // the last bytes leave, or a truncated object could reach the client complete.
        if last + 1 == self.span.last && segment_plain_len(self.plaintext_len, last + 1).0 == 0 {
            last = self.span.last;
        }
        let stored_start = self.next * STORED_SEGMENT_MAX as u64;
        let stored_end = if last == self.span.last {
            self.span.stored_end
        } else {
            (last + 1) * STORED_SEGMENT_MAX as u64
        };
        let mut buffer = vec![
            0u8;
            usize::try_from(stored_end - stored_start)
                .map_err(|_| DownloadError::Integrity)?
        ];
        self.reader.read_exact_at(stored_start, &mut buffer)?;

        // Decrypt each segment in place and slide the wanted plaintext to the front of the
        // same buffer: one allocation and no extra copy per batch.
        let mut read_at = 0usize;
        let mut write_at = 0usize;
        for index in self.next..=last {
            let (plain_len, is_last) = segment_plain_len(self.plaintext_len, index);
            let stored_len = plain_len + SEGMENT_OVERHEAD;
            let segment = buffer
                .get_mut(read_at..read_at + stored_len)
                .ok_or(DownloadError::Integrity)?;
            let plain_len = self.cipher.open_in_place(index, is_last, segment)?.len();
            let segment_start = index * SEGMENT_PLAINTEXT as u64;
            let from = self
                .start
                .saturating_sub(segment_start)
                .min(plain_len as u64) as usize;
            let to = (self.end + 1)
                .saturating_sub(segment_start)
                .min(plain_len as u64) as usize;
            let plain_at = read_at + NONCE_LEN;
            buffer.copy_within(plain_at + from..plain_at + to, write_at);
            write_at += to - from;
            read_at += stored_len;
        }
        buffer.truncate(write_at);
        self.next = last + 1;
        Ok(Some(Bytes::from(buffer)))
    }
}

/// Streams plaintext `[start, end]` (inclusive) of an opened, non-empty file. The first
/// batch is read and verified before this returns, so a damaged object fails with an error
/// instead of a truncated 200.
pub async fn stream_range(
    state: &AppState,
    open: OpenFile,
    start: u64,
    end: u64,
) -> Result<mpsc::Receiver<Result<Bytes, std::io::Error>>, DownloadError> {
    let store = state.store.clone();
    let plaintext_len = open.file.size;
    let file_id = open.file.id;
    let mut span = span_for_range(plaintext_len, start, end);
    if end + 1 == plaintext_len {
        // Reading to the end always verifies the final segment, even when it is empty (a
        // length that is a multiple of 64 KiB): that is how truncation is detected.
        span.last = segment_count(plaintext_len) - 1;
        span.stored_end = stored_len(plaintext_len);
    }
    let (first, mut reader) = tokio::task::spawn_blocking(move || {
        let expected = span.first * STORED_SEGMENT_MAX as u64..span.stored_end;
        let reader = store.open_reader(file_id, expected)?;
        let mut range = RangeReader {
            reader,
            cipher: open.cipher,
            plaintext_len,
            span,
            next: span.first,
            start,
            end,
        };
        let first = range.next_batch()?;
        Ok::<_, DownloadError>((first, range))
    })
    .await
    .map_err(|e| DownloadError::Storage(e.to_string()))??;

    let (tx, rx) = mpsc::channel(1);
    // Queue the first batch now, so the response's headers and first bytes leave together.
    if let Some(bytes) = first
        && tx.try_send(Ok(bytes)).is_err()
    {
        return Err(DownloadError::Storage("download channel closed".into()));
    }
    // Each batch is read on a blocking thread of its own, so a download that waits on a slow
    // recipient holds no thread: hundreds of concurrent downloads never exhaust the pool.
    tokio::spawn(async move {
        loop {
            let step = tokio::task::spawn_blocking(move || {
                let batch = reader.next_batch();
                (reader, batch)
            })
            .await;
            let (next, batch) = match step {
                Ok(pair) => pair,
                Err(e) => {
                    // A panicked read: nothing more can be sent.
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            reader = next;
            let batch = match batch {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(file = %file_id, error = %e, "download aborted");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let failed = batch.is_err();
            if tx.send(batch).await.is_err() || failed {
                return; // the recipient went away, or the stream is broken off
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_costs_its_range_and_allows_less_than_a_copy_in_flight() {
        let empty = download_cost(0, None);
        assert_eq!((empty.cost, empty.unit, empty.allowance), (1, 1, 0));
        let small = download_cost(100_000, Some((1, 99_999)));
        assert_eq!(
            (small.cost, small.unit, small.allowance),
            (99_999, 100_000, 50_000)
        );
        let gib = download_cost(1 << 30, Some((0, (1 << 30) - 1)));
        assert_eq!((gib.cost, gib.allowance), (1 << 30, 16 << 20));
        let large = download_cost(64 << 30, Some((5, 5)));
        assert_eq!((large.cost, large.allowance), (1, 1 << 30));
        for size in [1u64, 2, 3, 1000, 32 << 20, u64::MAX] {
            assert!(download_cost(size, None).allowance <= size / 2, "{size}");
        }
    }
}
