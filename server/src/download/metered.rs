//! A stream of download bytes that knows how many it handed out, and says so once when it
//! ends (sent to the end, or dropped because the recipient went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Plaintext chunks of one response; calls its end handler with the bytes handed out when it
/// is dropped. A batch's chunks are handed out back to back, so the HTTP writer gathers them
/// into one vectored write.
pub struct MeteredChunks {
    chunks: Option<ReceiverStream<Result<Vec<Bytes>, std::io::Error>>>,
    /// The rest of the batch being handed out.
    batch: std::vec::IntoIter<Bytes>,
    sent: u64,
    on_end: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl MeteredChunks {
    /// Meters `chunks`; `on_end` runs once, with the bytes handed out.
    pub fn new(
        chunks: mpsc::Receiver<Result<Vec<Bytes>, std::io::Error>>,
        on_end: Box<dyn FnOnce(u64) + Send>,
    ) -> MeteredChunks {
        MeteredChunks {
            chunks: Some(ReceiverStream::new(chunks)),
            batch: Vec::new().into_iter(),
            sent: 0,
            on_end: Some(on_end),
        }
    }

    /// A body with no bytes and nothing to report (an empty file, recorded before it is sent).
    pub fn empty() -> MeteredChunks {
        MeteredChunks {
            chunks: None,
            batch: Vec::new().into_iter(),
            sent: 0,
            on_end: None,
        }
    }
}

impl Stream for MeteredChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(chunk) = self.batch.next() {
                self.sent += chunk.len() as u64;
                return Poll::Ready(Some(Ok(chunk)));
            }
            let Some(chunks) = self.chunks.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(chunks).poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => self.batch = batch.into_iter(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for MeteredChunks {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn hands_out_each_batch_in_order_and_reports_what_left() {
        let (tx, rx) = mpsc::channel(4);
        let reported = Arc::new(Mutex::new(None));
        let seen = reported.clone();
        let mut chunks = MeteredChunks::new(
            rx,
            Box::new(move |sent| *seen.lock().expect("lock") = Some(sent)),
        );
        let batch = |parts: &[&'static [u8]]| Ok(parts.iter().map(|p| Bytes::from(*p)).collect());
        tx.send(batch(&[b"ab", b"", b"cde"])).await.expect("send");
        tx.send(batch(&[])).await.expect("send");
        tx.send(batch(&[b"f"])).await.expect("send");
        tx.send(Err(std::io::Error::other("cut off")))
            .await
            .expect("send");
        drop(tx);

        let mut got = Vec::new();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => got.push(bytes),
                Err(e) => {
                    assert_eq!(e.to_string(), "cut off");
                    break;
                }
            }
        }
        assert_eq!(got.concat(), b"abcdef");
        assert_eq!(
            *reported.lock().expect("lock"),
            None,
            "reported only when dropped"
        );
        drop(chunks);
        assert_eq!(*reported.lock().expect("lock"), Some(6));
    }
}
