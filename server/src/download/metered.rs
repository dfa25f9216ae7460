//! A stream of download bytes that knows how many it handed out, and says so once when it
//! ends (sent to the end, or dropped because the recipient went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Plaintext chunks of one response; calls its end handler with the bytes handed out when it
/// is dropped.
pub struct MeteredChunks {
    chunks: Option<ReceiverStream<Result<Bytes, std::io::Error>>>,
    sent: u64,
    on_end: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl MeteredChunks {
    /// Meters `chunks`; `on_end` runs once, with the bytes handed out.
    pub fn new(
        chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
        on_end: Box<dyn FnOnce(u64) + Send>,
    ) -> MeteredChunks {
        MeteredChunks {
            chunks: Some(ReceiverStream::new(chunks)),
            sent: 0,
            on_end: Some(on_end),
        }
    }

    /// A body with no bytes and nothing to report (an empty file, recorded before it is sent).
    pub fn empty() -> MeteredChunks {
        MeteredChunks {
            chunks: None,
            sent: 0,
            on_end: None,
        }
    }
}

impl Stream for MeteredChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(chunks) = self.chunks.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(chunks).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent += chunk.len() as u64;
        }
        polled
    }
}

impl Drop for MeteredChunks {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}
