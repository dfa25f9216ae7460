//! Reading a shared file: opening it (membership, key) and streaming verified plaintext of a
//! byte range out of the stored segments.
//!
//! Every segment is authenticated before any of its bytes leave: a tampered object fails the
//! request (before the headers if the first segments are bad, by aborting the body after).
//!
//! A batch is read into a buffer of the download's own small pool and decrypted in place;
//! each segment's plaintext leaves as a slice of that buffer (no copy, no zeroing), and the
//! buffer returns to the pool when the last slice has been sent.

use std::sync::{Arc, Mutex};

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
/// Freed buffers a download keeps for reuse. One is enough for a download that keeps up (the
/// buffer hyper has just sent is the next one read: three measured no cheaper); more would be
/// memory held per recipient for nothing.
const POOLED_BUFFERS: usize = 1;

/// Verified plaintext in order, a batch at a time: the slices of one batch go out together
/// (one vectored write), or the error that cut the stream off.
pub type Batches = mpsc::Receiver<Result<Vec<Bytes>, std::io::Error>>;

/// The batch buffers of one download, reused as the recipient's side releases them.
#[derive(Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// A buffer of exactly `len` bytes, reused when one is free (its old bytes are
    /// overwritten by the read that follows; only growth is zeroed).
    fn take(&self, len: usize) -> PooledBuffer {
        let reused = self.0.lock().ok().and_then(|mut free| free.pop());
        let mut buf = reused.unwrap_or_default();
        buf.resize(len, 0);
        PooledBuffer {
            buf,
            pool: self.clone(),
        }
    }
}

/// A batch buffer that goes back to its pool when dropped (when the last slice of it sent
/// to the recipient is released).
struct PooledBuffer {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock()
            && free.len() < POOLED_BUFFERS
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
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
    buffers: BufferPool,
    cipher: SegmentCipher,
    plaintext_len: u64,
    span: SegmentSpan,
    next: u64,
    start: u64,
    end: u64,
}

impl RangeReader {
    /// The next batch's plaintext, one slice of a shared buffer per segment.
    fn next_batch(&mut self) -> Result<Option<Vec<Bytes>>, DownloadError> {
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
        let len =
            usize::try_from(stored_end - stored_start).map_err(|_| DownloadError::Integrity)?;
        let mut buffer = self.buffers.take(len);
        self.reader.read_exact_at(stored_start, &mut buffer.buf)?;

        // Decrypt each segment in place and note where its wanted plaintext lies.
        let mut wanted = Vec::with_capacity((last - self.next + 1) as usize);
        let mut read_at = 0usize;
        for index in self.next..=last {
            let (plain_len, is_last) = segment_plain_len(self.plaintext_len, index);
            let stored_len = plain_len + SEGMENT_OVERHEAD;
            let segment = buffer
                .buf
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
            if to > from {
                wanted.push(plain_at + from..plain_at + to);
            }
            read_at += stored_len;
        }
        self.next = last + 1;
        let shared = Bytes::from_owner(buffer);
        Ok(Some(wanted.into_iter().map(|r| shared.slice(r)).collect()))
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
) -> Result<Batches, DownloadError> {
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
            buffers: BufferPool::default(),
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
    if let Some(segments) = first
        && tx.try_send(Ok(segments)).is_err()
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
                Ok(Some(segments)) => Ok(segments),
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
    fn a_buffer_returns_to_the_pool_when_its_last_slice_is_dropped() {
        let pool = BufferPool::default();
        let mut first = pool.take(1000);
        first.buf[..3].copy_from_slice(b"abc");
        let address = first.buf.as_ptr();
        let shared = Bytes::from_owner(first);
        let (a, b) = (shared.slice(0..1), shared.slice(1..3));
        drop(shared);
        drop(a);
        assert!(
            pool.0.lock().expect("lock").is_empty(),
            "a slice is still out"
        );
        assert_eq!(&b[..], b"bc");
        drop(b);
        // Reused, at the size asked for, without a new allocation.
        let again = pool.take(800);
        assert_eq!(again.buf.as_ptr(), address);
        assert_eq!(again.buf.len(), 800);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_spares() {
        let pool = BufferPool::default();
        let held: Vec<_> = (0..POOLED_BUFFERS + 2).map(|_| pool.take(10)).collect();
        drop(held);
        assert_eq!(pool.0.lock().expect("lock").len(), POOLED_BUFFERS);
    }
}
