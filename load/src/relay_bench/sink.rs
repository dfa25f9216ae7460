//! The recipient's MX: one listener that both relays deliver to, so the receiving side costs
//! them the same. It insists on STARTTLS (MAIL before it: 530), as the relays insist on
//! offering it, takes any sender and recipient, reads each message to its end, notes the
//! instant the final `.` arrived under the message's `X-Bench-Id`, answers 250 and forgets
//! the bytes.
//!
//! It runs inside the submitting process, so arrival and acceptance instants come from the
//! same monotonic clock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wire::{header_value, multiline, read_line, send};

/// How many distinct TLS handshake errors are kept for the report.
const KEEP_ERRORS: usize = 4;

/// What the sink has seen so far.
#[derive(Debug, Default, Clone)]
pub(crate) struct SinkLog {
    /// Each message whose id starts with the run's prefix, and when its final `.` arrived.
    pub(crate) arrivals: Vec<(String, Instant)>,
    /// Messages without the run's prefix (left over from an earlier run, or foreign).
    pub(crate) foreign: u64,
    /// Bytes of message data received (headers and body, line ends included).
    pub(crate) bytes: u64,
    /// Connections that asked for STARTTLS and then failed the handshake.
    pub(crate) tls_failures: u64,
    /// The first few distinct handshake errors, as rustls words them.
    pub(crate) tls_errors: Vec<String>,
    /// TLS sessions that ended without a MAIL: how Postfix leaves an MX whose certificate it
    /// rejects (it completes the handshake, checks the name, then quits).
    pub(crate) tls_sessions_without_mail: u64,
    /// MAIL, RCPT or DATA sent before STARTTLS (refused with 530).
    pub(crate) plain_refusals: u64,
    /// Connections accepted.
    pub(crate) connections: u64,
}

struct Shared {
    hostname: String,
    tls: Arc<ServerConfig>,
    prefix: String,
    log: Mutex<SinkLog>,
}

impl Shared {
    fn log(&self) -> std::sync::MutexGuard<'_, SinkLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The listening sink; stops accepting when dropped.
pub(crate) struct Sink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Listens on `addr` as `hostname`, presenting `tls` after STARTTLS; arrivals whose id
    /// starts with `prefix` are this run's.
    pub(crate) async fn start(
        addr: SocketAddr,
        hostname: &str,
        tls: Arc<ServerConfig>,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hostname: hostname.to_owned(),
            tls,
            prefix: prefix.to_owned(),
            log: Mutex::default(),
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                serving.log().connections += 1;
                tokio::spawn(connection(stream, Arc::clone(&serving)));
            }
        });
        Ok(Self { shared, addr, task })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of what it has seen.
    pub(crate) fn snapshot(&self) -> SinkLog {
        self.shared.log().clone()
    }

    /// Waits until `check` holds for the log, polling every 10 ms (the instants recorded do
    /// not depend on the polling), at most `limit`; whether it held.
    pub(crate) async fn wait_until(
        &self,
        limit: Duration,
        check: impl Fn(&SinkLog) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if check(&self.shared.log()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What ended a phase of the dialogue.
enum End {
    Close,
    StartTls,
}

/// One connection: clear text until STARTTLS, then the same dialogue over TLS.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut plain = BufReader::new(stream);
    let greeting = format!("220 {} ESMTP bench sink\r\n", shared.hostname);
    if send(&mut plain, greeting.as_bytes()).await.is_err() {
        return;
    }
    let mut saw_mail = false;
    if let End::Close = dialogue(&mut plain, false, &shared, &mut saw_mail).await {
        return;
    }
    // Bytes sent between STARTTLS and the handshake would be taken as sent over TLS.
    if !plain.buffer().is_empty() {
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&shared.tls));
    let tls = match acceptor.accept(plain.into_inner()).await {
        Ok(tls) => tls,
        Err(e) => {
            let mut log = shared.log();
            log.tls_failures += 1;
            let text = e.to_string();
            if log.tls_errors.len() < KEEP_ERRORS && !log.tls_errors.contains(&text) {
                log.tls_errors.push(text);
            }
            return;
        }
    };
    let mut secure = BufReader::with_capacity(64 * 1024, tls);
    dialogue(&mut secure, true, &shared, &mut saw_mail).await;
    if !saw_mail {
        shared.log().tls_sessions_without_mail += 1;
    }
}

async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    tls: bool,
    shared: &Shared,
    saw_mail: &mut bool,
) -> End {
    let mut line = Vec::new();
    let (mut mail, mut recipients) = (false, 0usize);
    loop {
        match read_line(stream, &mut line).await {
            Ok(true) => {}
            _ => return End::Close,
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => {
                (mail, recipients) = (false, 0);
                let greeting = format!("{} greets you", shared.hostname);
                let mut lines = vec![
                    greeting.as_str(),
                    "PIPELINING",
                    "SIZE 100000000",
                    "8BITMIME",
                    "ENHANCEDSTATUSCODES",
                ];
                if !tls {
                    lines.push("STARTTLS");
                }
                multiline(250, &lines)
            }
            "HELO" => format!("250 {}\r\n", shared.hostname),
            "STARTTLS" if tls => "503 5.5.1 TLS already active\r\n".into(),
            "STARTTLS" => {
                if send(stream, b"220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .is_err()
                {
                    return End::Close;
                }
                return End::StartTls;
            }
            "MAIL" | "RCPT" | "DATA" if !tls => {
                shared.log().plain_refusals += 1;
                "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
            }
            "MAIL" => {
                *saw_mail = true;
                (mail, recipients) = (true, 0);
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" if !mail => "503 5.5.1 Need MAIL first\r\n".into(),
            "RCPT" => {
                recipients += 1;
                "250 2.1.5 Ok\r\n".into()
            }
            "DATA" if recipients == 0 => "503 5.5.1 Need RCPT first\r\n".into(),
            "DATA" => {
                if send(stream, b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .is_err()
                {
                    return End::Close;
                }
                let Some(()) = receive(stream, &mut line, shared).await else {
                    return End::Close;
                };
                (mail, recipients) = (false, 0);
                "250 2.0.0 Ok: discarded\r\n".into()
            }
            "RSET" => {
                (mail, recipients) = (false, 0);
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                let _ = send(stream, b"221 2.0.0 Bye\r\n").await;
                return End::Close;
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        if send(stream, reply.as_bytes()).await.is_err() {
            return End::Close;
        }
    }
}

/// Reads one message's data to the final `.` and records its arrival; `None` if the
/// connection broke first.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    line: &mut Vec<u8>,
    shared: &Shared,
) -> Option<()> {
    let (mut id, mut in_headers, mut bytes) = (None::<String>, true, 0u64);
    loop {
        if !read_line(stream, line).await.ok()? {
            return None;
        }
        if line.as_slice() == b"." {
            break;
        }
        bytes += line.len() as u64 + 2;
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if id.is_none() {
                id = header_value(line, "X-Bench-Id").map(str::to_owned);
            }
        }
    }
    let at = Instant::now();
    let mut log = shared.log();
    log.bytes += bytes;
    match id {
        Some(id) if id.starts_with(&shared.prefix) => log.arrivals.push((id, at)),
        _ => log.foreign += 1,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::ensure;
    use ferry_testkit::ca::TestCa;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncWriteExt as _, BufReader};

    use super::super::message::MessageSet;
    use super::super::submit::{Submitter, submit_all};
    use super::super::tls;
    use super::super::wire::read_reply;
    use super::*;

    /// The submitter and the sink, face to face on loopback (the sink standing in for a
    /// relay that asks for no AUTH): messages arrive with their ids; MAIL in clear text and a
    /// certificate for another name are refused.
    #[tokio::test]
    async fn messages_cross_starttls_and_are_recorded_by_id() -> anyhow::Result<()> {
        let ca = TestCa::new()?;
        let leaf = ca.leaf(&["mx.bench.test"])?;
        let set = Arc::new(MessageSet::new(
            "t1",
            "a@sender.test",
            "bench.test",
            5000,
            1,
        ));
        let server = tls::server_config(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())?;
        let sink = Sink::start(
            "127.0.0.1:0".parse()?,
            "mx.bench.test",
            server,
            &set.id_prefix(),
        )
        .await?;
        let submitter = |name: &str| -> anyhow::Result<Arc<Submitter>> {
            Ok(Arc::new(Submitter {
                relay: sink.addr(),
                server_name: ServerName::try_from(name.to_owned())?,
                tls: tls::client_config(ca.pem().as_bytes())?,
                auth: None,
                helo: "client.test".to_owned(),
            }))
        };
        let good = submitter("mx.bench.test")?;
        let sessions = good.connect_all(2).await?;
        let (outcomes, totals) =
            submit_all(Arc::clone(&good), sessions, Arc::clone(&set), 5).await?;
        ensure!(
            outcomes
                .iter()
                .all(|o| o.accepted_at.is_some() && o.error.is_none()),
            "{outcomes:?}"
        );
        ensure!(totals.reconnects == 0);
        ensure!(
            sink.wait_until(Duration::from_secs(10), |l| l.arrivals.len() == 5)
                .await
        );
        let mut ids: Vec<String> = sink
            .snapshot()
            .arrivals
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ensure!(
            ids == (0..5).map(|i| set.id(i)).collect::<Vec<_>>(),
            "{ids:?}"
        );
        ensure!(sink.snapshot().bytes >= 5 * 5000);

        let mut plain = BufReader::new(TcpStream::connect(sink.addr()).await?);
        let mut line = Vec::new();
        ensure!(read_reply(&mut plain, &mut line).await?.code == 220);
        plain.write_all(b"EHLO client.test\r\n").await?;
        ensure!(
            read_reply(&mut plain, &mut line)
                .await?
                .advertises("STARTTLS")
        );
        plain.write_all(b"MAIL FROM:<a@sender.test>\r\n").await?;
        ensure!(read_reply(&mut plain, &mut line).await?.code == 530);
        ensure!(sink.snapshot().plain_refusals == 1);

        ensure!(submitter("mx.other.test")?.connect().await.is_err());
        ensure!(
            sink.wait_until(Duration::from_secs(10), |l| l.tls_failures == 1)
                .await
        );
        ensure!(sink.snapshot().arrivals.len() == 5);
        Ok(())
    }
}
