//! The tenant's mail server: C connections to the relay, each set up once (EHLO, STARTTLS
//! with the relay's certificate verified, EHLO, AUTH PLAIN when credentials are given) and
//! then used for one message after the other (MAIL, RCPT, DATA; no pipelining, which Ferry
//! does not offer), until every message of the run has been taken by some connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::message::MessageSet;
use super::wire::{Reply, read_reply, send};

/// How often a message refused with a 4xx is offered again, and how long to wait between.
const TEMPORARY_RETRIES: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How often a broken connection is set up again before its worker gives up.
const RECONNECTS: u32 = 3;

/// Where and as whom to submit.
pub(crate) struct Submitter {
    /// The relay's SMTP address.
    pub(crate) relay: SocketAddr,
    /// The name the relay's certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    /// Trust roots for the relay's certificate.
    pub(crate) tls: Arc<ClientConfig>,
    /// AUTH PLAIN credentials; none: the relay trusts the client's address (Postfix's
    /// `mynetworks`).
    pub(crate) auth: Option<(String, String)>,
    /// The name given in EHLO.
    pub(crate) helo: String,
}

/// What became of one message.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Its index in the run.
    pub(crate) index: usize,
    /// When its (first) MAIL was sent.
    pub(crate) mail_at: Instant,
    /// When the relay's 250 after DATA was read; `None` when it was not accepted.
    pub(crate) accepted_at: Option<Instant>,
    /// 4xx replies before it was accepted (each followed by a retry).
    pub(crate) temporary: u32,
    /// Why it was not accepted.
    pub(crate) error: Option<String>,
}

/// Counts of one run's submission beyond the per-message outcomes.
#[derive(Debug, Default)]
pub(crate) struct SubmitTotals {
    /// Connections set up again after one broke.
    pub(crate) reconnects: u32,
}

type Secure = BufReader<TlsStream<TcpStream>>;

/// One connection, ready for MAIL.
pub(crate) struct Session {
    stream: Secure,
    line: Vec<u8>,
}

/// Why a message was not accepted.
enum SendError {
    /// The relay answered with this reply; the connection can go on after RSET.
    Refused(Reply),
    /// The connection broke.
    Broken(anyhow::Error),
}

impl Submitter {
    /// Sets up one connection through AUTH.
    pub(crate) async fn connect(&self) -> anyhow::Result<Session> {
        let tcp = TcpStream::connect(self.relay)
            .await
            .with_context(|| format!("connecting to {}", self.relay))?;
        tcp.set_nodelay(true)?;
        let mut plain = BufReader::new(tcp);
        let mut line = Vec::new();
        let greeting = read_reply(&mut plain, &mut line).await?;
        ensure!(greeting.code == 220, "greeting: {greeting}");
        let ehlo = command(&mut plain, &mut line, &format!("EHLO {}\r\n", self.helo)).await?;
        ensure!(ehlo.is_ok() && ehlo.advertises("STARTTLS"), "EHLO: {ehlo}");
        let go = command(&mut plain, &mut line, "STARTTLS\r\n").await?;
        ensure!(go.code == 220, "STARTTLS: {go}");
        ensure!(
            plain.buffer().is_empty(),
            "the relay sent more after its 220 to STARTTLS"
        );
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
        let tls = connector
            .connect(self.server_name.clone(), plain.into_inner())
            .await
            .context("TLS handshake with the relay")?;
        let mut stream = BufReader::new(tls);
        let ehlo = command(&mut stream, &mut line, &format!("EHLO {}\r\n", self.helo)).await?;
        ensure!(ehlo.is_ok(), "EHLO over TLS: {ehlo}");
        if let Some((user, password)) = &self.auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            let auth = command(&mut stream, &mut line, &format!("AUTH PLAIN {token}\r\n")).await?;
            ensure!(auth.code == 235, "AUTH PLAIN: {auth}");
        }
        Ok(Session { stream, line })
    }

    /// Sets up `count` connections at once; fails if any cannot be.
    pub(crate) async fn connect_all(&self, count: usize) -> anyhow::Result<Vec<Session>> {
        let results = futures_util::future::join_all((0..count).map(|_| self.connect())).await;
        results.into_iter().collect()
    }
}

/// Sends `text` and reads the reply.
async fn command<S>(
    stream: &mut BufReader<S>,
    line: &mut Vec<u8>,
    text: &str,
) -> anyhow::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send(stream, text.as_bytes()).await?;
    read_reply(stream, line).await
}

impl Session {
    /// Offers message `i`; the instant the 250 after DATA was read.
    async fn send_message(&mut self, set: &MessageSet, i: usize) -> Result<Instant, SendError> {
        let headers = set.headers(i);
        let size = headers.len() + set.body().len();
        let steps = [
            format!("MAIL FROM:<{}> SIZE={size}\r\n", set.sender()),
            format!("RCPT TO:<{}>\r\n", set.recipient(i)),
            "DATA\r\n".to_owned(),
        ];
        for (n, step) in steps.iter().enumerate() {
            let reply = command(&mut self.stream, &mut self.line, step)
                .await
                .map_err(SendError::Broken)?;
            let expected = if n == 2 { 354 } else { 250 };
            if reply.code != expected {
                return Err(SendError::Refused(reply));
            }
        }
        let data = async {
            self.stream.write_all(&headers).await?;
            self.stream.write_all(set.body()).await?;
            send(&mut self.stream, b".\r\n").await?;
            read_reply(&mut self.stream, &mut self.line).await
        };
        let reply = data.await.map_err(SendError::Broken)?;
        let at = Instant::now();
        if reply.is_ok() {
            Ok(at)
        } else {
            Err(SendError::Refused(reply))
        }
    }

    /// RSET after a refusal, so the next MAIL starts a fresh transaction.
    async fn reset(&mut self) -> anyhow::Result<()> {
        let reply = command(&mut self.stream, &mut self.line, "RSET\r\n").await?;
        ensure!(reply.is_ok(), "RSET: {reply}");
        Ok(())
    }

    /// QUIT, answer or not.
    async fn quit(mut self) {
        let _ = command(&mut self.stream, &mut self.line, "QUIT\r\n").await;
        let _ = self.stream.get_mut().shutdown().await;
    }
}

/// Submits messages `0..count` of `set` over `sessions`, each connection taking the next
/// message as soon as its previous one is answered. Returns the outcomes in index order.
pub(crate) async fn submit_all(
    submitter: Arc<Submitter>,
    sessions: Vec<Session>,
    set: Arc<MessageSet>,
    count: usize,
) -> anyhow::Result<(Vec<Outcome>, SubmitTotals)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for session in sessions {
        let (submitter, set, next) = (Arc::clone(&submitter), Arc::clone(&set), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            worker(&submitter, session, &set, &next, count).await
        }));
    }
    let mut outcomes = Vec::with_capacity(count);
    let mut totals = SubmitTotals::default();
    for worker in workers {
        let (mine, reconnects) = worker.await?;
        outcomes.extend(mine);
        totals.reconnects += reconnects;
    }
    outcomes.sort_by_key(|o| o.index);
    if outcomes.len() != count {
        bail!(
            "{} of {count} messages were offered: every connection broke",
            outcomes.len()
        );
    }
    Ok((outcomes, totals))
}

/// One connection's loop; its outcomes and how often it reconnected.
async fn worker(
    submitter: &Submitter,
    mut session: Session,
    set: &MessageSet,
    next: &AtomicUsize,
    count: usize,
) -> (Vec<Outcome>, u32) {
    let mut outcomes = Vec::new();
    let mut reconnects = 0;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            break;
        }
        let mut outcome = Outcome {
            index,
            mail_at: Instant::now(),
            accepted_at: None,
            temporary: 0,
            error: None,
        };
        loop {
            match session.send_message(set, index).await {
                Ok(at) => {
                    outcome.accepted_at = Some(at);
                    break;
                }
                Err(SendError::Refused(reply)) => {
                    let retry = reply.code / 100 == 4 && outcome.temporary < TEMPORARY_RETRIES;
                    if retry {
                        outcome.temporary += 1;
                    } else {
                        outcome.error = Some(reply.to_string());
                    }
                    if session.reset().await.is_err() {
                        match reconnect(submitter, &mut reconnects).await {
                            Some(fresh) => session = fresh,
                            None => {
                                outcomes.push(outcome);
                                return (outcomes, reconnects);
                            }
                        }
                    }
                    if !retry {
                        break;
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(SendError::Broken(e)) => {
                    outcome.error = Some(format!("connection broke: {e:#}"));
                    match reconnect(submitter, &mut reconnects).await {
                        Some(fresh) => session = fresh,
                        None => {
                            outcomes.push(outcome);
                            return (outcomes, reconnects);
                        }
                    }
                    break;
                }
            }
        }
        outcomes.push(outcome);
    }
    session.quit().await;
    (outcomes, reconnects)
}

/// A fresh connection after one broke, unless this worker has reconnected too often.
async fn reconnect(submitter: &Submitter, reconnects: &mut u32) -> Option<Session> {
    while *reconnects < RECONNECTS {
        *reconnects += 1;
        if let Ok(session) = submitter.connect().await {
            return Some(session);
        }
    }
    None
}
