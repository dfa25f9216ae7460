//! One outbound SMTP session to one MX address: EHLO, STARTTLS (mandatory), the TLS handshake
//! verified against the MX host name, EHLO again, then the envelope and the message. Nothing
//! of the envelope or the message is ever written before the handshake has verified the peer:
//! a missing STARTTLS, a refused one, bytes injected after "220 ready" (RFC 3207's pitfall) or
//! a certificate the roots do not vouch for ends the session there.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::reply::{Reply, read_reply};
use crate::tls::CertificateFacts;

/// How long each step may take (RFC 5321 §4.5.3.2's minimums, shorter for the greeting and
/// commands; tests shorten them further).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// The greeting, each command's reply, and the TLS handshake.
    pub command: Duration,
    /// Writing the message body.
    pub data: Duration,
    /// The reply after the final `.`.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data: Duration::from_secs(600),
            data_end: Duration::from_secs(600),
        }
    }
}

/// The envelope of one session: one sender, the recipients at this MX's domain.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// `MAIL FROM` (empty for a DSN's null sender).
    pub from: &'a str,
    /// `RCPT TO`, one each.
    pub recipients: &'a [String],
}

/// What the TLS handshake established, for the proof record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    /// The negotiated cipher suite, IANA name.
    pub cipher: String,
    /// The name sent as SNI and verified against the certificate.
    pub sni: String,
    /// The MX's leaf certificate.
    pub certificate: Option<CertificateFacts>,
}

/// The peer's answer to one `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientReply {
    /// The recipient.
    pub recipient: String,
    /// The reply.
    pub reply: Reply,
}

/// A session that reached the verified-TLS stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// What TLS established.
    pub tls: TlsFacts,
    /// Each recipient's `RCPT TO` reply.
    pub recipients: Vec<RecipientReply>,
    /// The reply after the message (`None` when no recipient was accepted, so no DATA).
    pub data_reply: Option<Reply>,
}

impl Session {
    /// The recipients that now have the message.
    pub fn delivered(&self) -> impl Iterator<Item = &str> {
        let data_ok = self.data_reply.as_ref().is_some_and(Reply::is_positive);
        self.recipients
            .iter()
            .filter(move |r| data_ok && r.reply.is_positive())
            .map(|r| r.recipient.as_str())
    }
}

/// Why a session ended before the message was accepted: each is a reason to skip to the next
/// MX (RELAY.md) and, unless permanent, to retry later.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// TCP connect failed or timed out.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The connection broke, a step timed out, or the peer spoke no SMTP.
    #[error("connection failed during {stage}: {reason}")]
    Io {
        /// Where in the session.
        stage: &'static str,
        /// What happened.
        reason: String,
    },
    /// The peer does not offer STARTTLS: nothing was sent.
    #[error("the MX does not offer STARTTLS; nothing was sent")]
    NoStartTls,
    /// The peer refused STARTTLS.
    #[error("the MX refused STARTTLS: {0}")]
    StartTlsRefused(Reply),
    /// Bytes arrived after "220 ready" before the handshake: someone injected them.
    #[error("bytes were injected after the STARTTLS reply; the connection was dropped")]
    Injection,
    /// The TLS handshake failed: no common version, or a certificate that is not valid for
    /// the MX host name under the trust roots.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The peer answered a step with a temporary (4xx) or permanent (5xx) refusal.
    #[error("the MX refused {stage}: {reply}")]
    Refused {
        /// Which command.
        stage: &'static str,
        /// Its reply.
        reply: Reply,
    },
}

impl AttemptError {
    /// Whether retrying this message (at any MX) cannot help: a 5xx to MAIL or DATA.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused { reply, stage } if reply.is_permanent() && *stage != "EHLO")
    }
}

/// Connects to `addr` and runs a session with `mx_host` as the name the certificate must be
/// valid for. `body` is the message as it will be sent: CRLF line ends, not dot-stuffed.
///
/// # Errors
/// See [`AttemptError`]; on any error before the handshake completes, nothing but EHLO and
/// STARTTLS was written.
pub async fn deliver(
    addr: std::net::SocketAddr,
    mx_host: &str,
    helo_name: &str,
    tls: Arc<rustls::ClientConfig>,
    envelope: &Envelope<'_>,
    body: &[u8],
    timeouts: &Timeouts,
) -> Result<Session, AttemptError> {
    let stream = timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| AttemptError::Connect("timed out".to_owned()))?
        .map_err(|e| AttemptError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut plain = BufReader::new(stream);
    let t = timeouts.command;

    expect(&mut plain, t, "greeting", 220).await?;
    let ehlo = command(&mut plain, t, "EHLO", &format!("EHLO {helo_name}\r\n")).await?;
    if !ehlo.is_positive() {
        return Err(AttemptError::Refused {
            stage: "EHLO",
            reply: ehlo,
        });
    }
    if !ehlo.advertises("STARTTLS") {
        let _ = command(&mut plain, t, "QUIT", "QUIT\r\n").await;
        return Err(AttemptError::NoStartTls);
    }
    let ready = command(&mut plain, t, "STARTTLS", "STARTTLS\r\n").await?;
    if ready.code != 220 {
        return Err(AttemptError::StartTlsRefused(ready));
    }
    // RFC 3207 §5: anything already buffered was sent before the handshake by whoever sits in
    // the path; acting on it would be acting on plaintext.
    if !plain.buffer().is_empty() {
        return Err(AttemptError::Injection);
    }
    let tcp = plain.into_inner();
    let name = ServerName::try_from(mx_host.to_owned())
        .map_err(|e| AttemptError::Tls(format!("{mx_host} is no valid server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let stream = timeout(t, connector.connect(name, tcp))
        .await
        .map_err(|_| AttemptError::Tls("the handshake timed out".to_owned()))?
        .map_err(|e| AttemptError::Tls(e.to_string()))?;
    let facts = tls_facts(stream.get_ref().1, mx_host);
    let mut secure = BufReader::new(stream);

    // RFC 3207 §4.2: forget what the plaintext EHLO said; ask again.
    let ehlo = command(&mut secure, t, "EHLO", &format!("EHLO {helo_name}\r\n")).await?;
    if !ehlo.is_positive() {
        return Err(AttemptError::Refused {
            stage: "EHLO",
            reply: ehlo,
        });
    }
    let mut mail = format!("MAIL FROM:<{}>", envelope.from);
    if ehlo.advertises("SIZE") {
        mail.push_str(&format!(" SIZE={}", body.len()));
    }
    if ehlo.advertises("8BITMIME") && !body.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    mail.push_str("\r\n");
    let reply = command(&mut secure, t, "MAIL FROM", &mail).await?;
    if !reply.is_positive() {
        return Err(AttemptError::Refused {
            stage: "MAIL FROM",
            reply,
        });
    }
    let mut recipients = Vec::with_capacity(envelope.recipients.len());
    for recipient in envelope.recipients {
        let reply = command(
            &mut secure,
            t,
            "RCPT TO",
            &format!("RCPT TO:<{recipient}>\r\n"),
        )
        .await?;
        recipients.push(RecipientReply {
            recipient: recipient.clone(),
            reply,
        });
    }
    let mut session = Session {
        tls: facts,
        recipients,
        data_reply: None,
    };
    if !session.recipients.iter().any(|r| r.reply.is_positive()) {
        let _ = command(&mut secure, t, "QUIT", "QUIT\r\n").await;
        return Ok(session);
    }
    let reply = command(&mut secure, t, "DATA", "DATA\r\n").await?;
    if reply.code != 354 {
        return Err(AttemptError::Refused {
            stage: "DATA",
            reply,
        });
    }
    timeout(timeouts.data, write_data(secure.get_mut(), body))
        .await
        .map_err(|_| io_error("message", "timed out"))?
        .map_err(|e| io_error("message", e))?;
    let reply = timeout(timeouts.data_end, read_reply(&mut secure))
        .await
        .map_err(|_| io_error("end of data", "timed out"))?
        .map_err(|e| io_error("end of data", e))?;
    session.data_reply = Some(reply);
    let _ = command(&mut secure, t, "QUIT", "QUIT\r\n").await;
    let _ = secure.get_mut().shutdown().await;
    Ok(session)
}

fn tls_facts(connection: &rustls::ClientConnection, mx_host: &str) -> TlsFacts {
    let version = connection
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let cipher = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| CertificateFacts::of(leaf.as_ref()));
    TlsFacts {
        version,
        cipher,
        sni: mx_host.to_owned(),
        certificate,
    }
}

/// Writes the body dot-stuffed (RFC 5321 §4.5.2), then the terminating `.`.
async fn write_data<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut line_start = true;
    for &byte in body {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    writer.write_all(&out).await?;
    writer.flush().await
}

async fn expect<S: AsyncBufRead + Unpin>(
    stream: &mut S,
    t: Duration,
    stage: &'static str,
    code: u16,
) -> Result<Reply, AttemptError> {
    let reply = timeout(t, read_reply(stream))
        .await
        .map_err(|_| io_error(stage, "timed out"))?
        .map_err(|e| io_error(stage, e))?;
    if reply.code != code {
        return Err(AttemptError::Refused { stage, reply });
    }
    Ok(reply)
}

async fn command<S: AsyncBufRead + AsyncWrite + Unpin>(
    stream: &mut S,
    t: Duration,
    stage: &'static str,
    line: &str,
) -> Result<Reply, AttemptError> {
    let exchange = async {
        stream.write_all(line.as_bytes()).await?;
        stream.flush().await?;
        read_reply(stream).await
    };
    timeout(t, exchange)
        .await
        .map_err(|_| io_error(stage, "timed out"))?
        .map_err(|e| io_error(stage, e))
}

fn io_error(stage: &'static str, reason: impl ToString) -> AttemptError {
    AttemptError::Io {
        stage,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;
