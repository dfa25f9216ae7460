//! Reading a shared file: opening it (membership, key) and streaming verified plaintext of a
//! byte range out of the stored segments.
//!
//! Every segment is authenticated before any of its bytes leave: a tampered object fails the
//! request (before the headers if the first segments are bad, by aborting the body after).

use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::error::DownloadError;
use crate::crypto::segment::{
    NONCE_LEN, SEGMENT_OVERHEAD, SEGMENT_PLAINTEXT, STORED_SEGMENT_MAX, SegmentCipher, SegmentSpan,
    segment_count, segment_plain_len, span_for_range, stored_len,
};
use crate::db::shares::{ShareRow, SharedFile};
use crate::state::AppState;
use crate::store::ObjectReader;

/// Segments read and verified per step: 512 KiB of plaintext. A download holds at most three
/// batches (one being read, one queued, one being sent), so memory stays flat per recipient.
const SEGMENTS_PER_BATCH: u64 = 8;

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
    .map_err(|e| DownloadError::Task(e.to_string()))??;

    let (tx, rx) = mpsc::channel(1);
    // Queue the first batch now, so the response's headers and first bytes leave together.
    if let Some(bytes) = first
        && tx.try_send(Ok(bytes)).is_err()
    {
        return Err(DownloadError::Task("download channel closed".into()));
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
