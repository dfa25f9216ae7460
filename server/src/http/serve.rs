//! The connection loop: accepts TCP connections and serves HTTP/1.1 on each, with the bounds
//! a service facing the Internet needs.
//!
//! - A client has [`Config::header_read_timeout_secs`] to send a request's headers, and an
//!   idle kept-alive connection is closed after the same time (hyper's header timeout, which
//!   is re-armed while waiting for the next request).
//! - A request body (a PATCH) or a response body (a download) may stall for at most
//!   [`Config::stall_timeout_secs`]: bodies are bounded by progress, never by total time.
//! - At most [`Config::max_connections`] connections are served at once; further clients
//!   wait in the listen queue, and the first refusal is logged.
//! - A connection the server closes lingers: it sends the response and a FIN, then reads
//!   and drops what the client still sends (a refused PATCH body) for a bounded time, so
//!   the client reads its response instead of a reset.
//!
//! HTTP/2 and TLS belong to the reverse proxy in front (DESIGN.md, "Deployment").

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::config::Config;

/// The bounds applied to every connection, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to send a request's headers; also how long an idle connection stays open.
    pub header_read: Duration,
    /// Longest time a body may make no progress.
    pub stall: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(u64::from(config.header_read_timeout_secs)),
            stall: Duration::from_secs(u64::from(config.stall_timeout_secs)),
            max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// their requests. Request handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    tokio::pin!(shutdown);
    let mut at_capacity = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                at_capacity = false;
                permit
            }
            Err(_) => {
                if !at_capacity {
                    at_capacity = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes \
                         (FERRY_MAX_CONNECTIONS)"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, never spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers (a 1-byte Range, tus HEADs) must not wait for Nagle + delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let stall = limits.stall;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // A request without a body stays one (`is_end_stream`), which tells the
            // unread-body middleware there is nothing to drain.
            let mut request = request.map(|body| {
                if body.is_end_stream() {
                    Body::new(body)
                } else {
                    Body::new(TimeoutBody::new(stall, body))
                }
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            // The router never fails (its error type is `Infallible`).
            async move { router.oneshot(request).await }
        });
        let io = TokioIo::new(StallGuard::new(tcp, limits.stall));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection whose writes may not stall: a write the peer does not take for `limit`
/// fails with `TimedOut`, which ends the connection (a recipient that stopped reading a
/// download). Reads are bounded elsewhere (header timeout, body stall timeout), since a
/// connection legitimately reads nothing while it sends a long response.
struct StallGuard {
    inner: TcpStream,
    limit: Duration,
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// Once the write side is shut: the lingering close's deadline and bytes drained.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl StallGuard {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            write_deadline: None,
            linger: None,
        }
    }

    /// Turns a pending write into a timeout once it has been pending for the whole limit.
    fn pending_write<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.limit;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer took nothing for the stall timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        polled: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending => self.pending_write(cx),
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(polled, cx)
    }

    /// Closes the way a browser or tus client can rely on: the response and a FIN go out
    /// first, then what the client is still sending (the rest of a refused body) is read and
    /// dropped until it closes too, for at most [`LINGER`] and [`LINGER_BYTES`]. Closing with
    /// unread bytes at once would make the kernel answer them with a reset, which can destroy
    /// the response before the client reads it.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.linger.is_none() {
            let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
            match self.progressed(polled, cx) {
                Poll::Ready(Ok(())) => {
                    self.linger = Some((Box::pin(tokio::time::sleep(LINGER)), 0));
                }
                other => return other,
            }
        }
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            let read = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
            let Some((deadline, drained)) = self.linger.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match read {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *drained += buf.filled().len();
                    if *drained > LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // The client closed (or reset): done.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return deadline.as_mut().poll(cx).map(Ok);
                }
            }
        }
    }
}

/// Longest time a closing connection keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(5);
/// Most bytes a closing connection reads and drops.
const LINGER_BYTES: usize = 64 << 20;
