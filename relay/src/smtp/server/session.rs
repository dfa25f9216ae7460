//! One inbound connection: the command loop in clear text until STARTTLS, then again over
//! TLS with everything learned before forgotten (RFC 3207 §4.2).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::auth::{Auth, authenticate};
use super::{Gate, InboundConfig, Received, Refusal};

/// Longest command line (RFC 5321 §4.5.3.1.4 says 512; AUTH PLAIN's response needs more).
pub(super) const MAX_COMMAND_LINE: usize = 2048;
/// Longest line inside a message (RFC 5322 says 1000; some mailers exceed it).
const MAX_DATA_LINE: usize = 1024 * 1024;
/// Unknown or out-of-sequence commands before the connection is closed.
const MAX_BAD_COMMANDS: u32 = 20;
/// Longest address accepted in MAIL or RCPT.
const MAX_ADDRESS: usize = 254;

enum End {
    Close,
    StartTls,
}

struct State<A> {
    greeted: bool,
    account: Option<A>,
    auth_failures: u32,
    bad_commands: u32,
    from: Option<String>,
    recipients: Vec<String>,
}

impl<A> State<A> {
    fn new() -> Self {
        Self {
            greeted: false,
            account: None,
            auth_failures: 0,
            bad_commands: 0,
            from: None,
            recipients: Vec::new(),
        }
    }

    fn reset_transaction(&mut self) {
        self.from = None;
        self.recipients.clear();
    }
}

/// Serves one connection to its end.
pub async fn serve_connection<G: Gate>(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<InboundConfig>,
    gate: Arc<G>,
) {
    let _ = stream.set_nodelay(true);
    let mut plain = BufReader::new(stream);
    let greeting = format!("220 {} ESMTP Ferry relay\r\n", config.hostname);
    if send(&mut plain, &greeting).await.is_err() {
        return;
    }
    let mut state = State::new();
    if let End::Close = run(&mut plain, &mut state, false, &config, gate.as_ref(), peer).await {
        return;
    }
    // Bytes the client sent after STARTTLS but before the handshake would be read as if they
    // came over TLS: RFC 3207's injection. Drop the connection.
    if !plain.buffer().is_empty() {
        tracing::info!(%peer, "SMTP client sent data after STARTTLS; dropped");
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&config.tls));
    let tls = match timeout(config.idle_timeout, acceptor.accept(plain.into_inner())).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "inbound TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let names = match (&config.client_certs, tls.get_ref().1.peer_certificates()) {
        (Some(policy), Some(chain)) => policy.verified_names(chain),
        _ => None,
    };
    let mut state = State::new();
    if let Some(names) = names {
        state.account = gate.certificate_account(&names).await;
        tracing::info!(%peer, ?names, known = state.account.is_some(), "relay client certificate");
    }
    let mut secure = BufReader::new(tls);
    run(&mut secure, &mut state, true, &config, gate.as_ref(), peer).await;
    let _ = secure.get_mut().shutdown().await;
}

pub(super) async fn send<S: AsyncWrite + Unpin>(stream: &mut S, text: &str) -> std::io::Result<()> {
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}

/// A line without its line end; `None` at end of input; an error for a longer line.
pub(super) async fn read_line<S: AsyncBufRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let available = stream.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        line.extend_from_slice(&available[..take]);
        stream.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

async fn run<S, G>(
    stream: &mut BufReader<S>,
    state: &mut State<G::Account>,
    tls: bool,
    config: &InboundConfig,
    gate: &G,
    peer: SocketAddr,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
    G: Gate,
{
    loop {
        let line = match timeout(config.idle_timeout, read_line(stream, MAX_COMMAND_LINE)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return End::Close,
            Ok(Err(_)) => {
                let _ = send(stream, "500 5.5.2 Line too long\r\n").await;
                return End::Close;
            }
            Err(_) => {
                let _ = send(stream, "421 4.4.2 Idle too long, closing\r\n").await;
                return End::Close;
            }
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => "501 5.5.4 Give your host name\r\n".into(),
            "EHLO" => {
                state.greeted = true;
                state.reset_transaction();
                let mut lines = vec![
                    format!("{} greets {arg}", config.hostname),
                    format!("SIZE {}", config.max_message_bytes),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if tls {
                    lines.push("AUTH PLAIN LOGIN".into());
                } else {
                    lines.push("STARTTLS".into());
                }
                multiline(250, &lines)
            }
            "HELO" => {
                state.greeted = true;
                state.reset_transaction();
                format!("250 {}\r\n", config.hostname)
            }
            "STARTTLS" if tls => bad(state, "503 5.5.1 TLS is already active\r\n"),
            "STARTTLS" => {
                if send(stream, "220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .is_err()
                {
                    return End::Close;
                }
                return End::StartTls;
            }
            "AUTH" if !tls => bad(
                state,
                "538 5.7.11 Encryption required: issue STARTTLS first\r\n",
            ),
            "AUTH" if state.account.is_some() => bad(state, "503 5.5.1 Already authenticated\r\n"),
            "AUTH" => match authenticate(stream, &arg, config, gate).await {
                Auth::Ok(account) => {
                    state.account = Some(account);
                    "235 2.7.0 Authentication successful\r\n".into()
                }
                Auth::Failed => {
                    state.auth_failures += 1;
                    tracing::info!(%peer, failures = state.auth_failures, "relay AUTH failed");
                    if state.auth_failures >= config.max_auth_failures {
                        let _ = send(stream, "421 4.7.0 Too many failed logins\r\n").await;
                        return End::Close;
                    }
                    "535 5.7.8 Authentication credentials invalid\r\n".into()
                }
                Auth::Reply(text) => text,
                Auth::Broken => return End::Close,
            },
            "MAIL" if !tls => bad(state, "530 5.7.0 Must issue a STARTTLS command first\r\n"),
            "MAIL" if state.account.is_none() => {
                bad(state, "530 5.7.0 Authentication required\r\n")
            }
            "MAIL" if state.from.is_some() => bad(state, "503 5.5.1 Nested MAIL command\r\n"),
            "MAIL" => match parse_path(&arg, "FROM:") {
                Some((address, params)) => match check_mail_params(&params, config) {
                    Ok(()) => sender_reply(state, gate, address).await,
                    Err(reply) => reply,
                },
                None => "501 5.1.7 Bad sender address syntax\r\n".into(),
            },
            "RCPT" if state.from.is_none() => bad(state, "503 5.5.1 Need MAIL first\r\n"),
            "RCPT" if state.recipients.len() >= config.max_recipients => {
                "452 4.5.3 Too many recipients\r\n".into()
            }
            "RCPT" => match parse_path(&arg, "TO:") {
                Some((address, params)) if params.is_empty() && is_mailbox(&address) => {
                    state.recipients.push(address);
                    "250 2.1.5 Ok\r\n".into()
                }
                Some(_) => "501 5.1.3 Bad recipient address syntax\r\n".into(),
                None => "501 5.1.3 Bad recipient address syntax\r\n".into(),
            },
            "DATA" if state.recipients.is_empty() => bad(state, "503 5.5.1 Need RCPT first\r\n"),
            "DATA" => {
                if send(stream, "354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .is_err()
                {
                    return End::Close;
                }
                let body = match read_data(stream, config).await {
                    Ok(Some(body)) => body,
                    Ok(None) => {
                        state.reset_transaction();
                        let reply = format!(
                            "552 5.3.4 Message larger than {} bytes\r\n",
                            config.max_message_bytes
                        );
                        if send(stream, &reply).await.is_err() {
                            return End::Close;
                        }
                        continue;
                    }
                    Err(_) => return End::Close,
                };
                let message = Received {
                    from: state.from.take().unwrap_or_default(),
                    recipients: std::mem::take(&mut state.recipients),
                    body,
                    peer,
                };
                let account = match &state.account {
                    Some(account) => account.clone(),
                    None => return End::Close,
                };
                match gate.accept(&account, message).await {
                    Ok(id) => format!("250 2.0.0 Ok: queued as {id}\r\n"),
                    Err(Refusal::Temporary(why)) => {
                        format!(
                            "451 4.3.0 Not queued, try again later: {}\r\n",
                            one_line(&why)
                        )
                    }
                    Err(Refusal::Permanent(why)) => format!("554 5.7.1 {}\r\n", one_line(&why)),
                }
            }
            "RSET" => {
                state.reset_transaction();
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "VRFY" => "252 2.5.0 Cannot VRFY, but will accept the message\r\n".into(),
            "QUIT" => {
                let _ = send(stream, "221 2.0.0 Bye\r\n").await;
                return End::Close;
            }
            _ => bad(state, "502 5.5.2 Command not recognized\r\n"),
        };
        if state.bad_commands > MAX_BAD_COMMANDS {
            let _ = send(stream, "421 4.7.0 Too many errors, closing\r\n").await;
            return End::Close;
        }
        if send(stream, &reply).await.is_err() {
            return End::Close;
        }
    }
}

/// The reply to a well-formed MAIL: the sender is taken only when the account may send as
/// it (a domain the tenant registered; the null sender of a bounce always).
async fn sender_reply<G: Gate>(state: &mut State<G::Account>, gate: &G, address: String) -> String {
    let Some(account) = &state.account else {
        return bad(state, "530 5.7.0 Authentication required\r\n");
    };
    match gate.may_send_as(account, &address).await {
        Ok(true) => {
            state.from = Some(address);
            "250 2.1.0 Ok\r\n".into()
        }
        Ok(false) => bad(
            state,
            "550 5.7.1 Sender address rejected: not a domain this account may send from\r\n",
        ),
        Err(why) => {
            tracing::warn!(error = %why, "checking a relay sender failed");
            "451 4.3.0 Cannot check the sender now, try again later\r\n".into()
        }
    }
}

fn bad<A>(state: &mut State<A>, reply: &str) -> String {
    state.bad_commands += 1;
    reply.to_owned()
}

fn multiline(code: u16, lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{line}\r\n"));
    }
    out
}

fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `FROM:<a@b> SIZE=10` → (`a@b`, [`SIZE=10`]); `None` when malformed.
fn parse_path(arg: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    if arg.len() < keyword.len() || !arg[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, params) = rest.split_once('>')?;
    if address.len() > MAX_ADDRESS
        || address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<')
    {
        return None;
    }
    let params = params.split_whitespace().map(str::to_owned).collect();
    Some((address.to_owned(), params))
}

fn is_mailbox(address: &str) -> bool {
    matches!(address.rsplit_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
}

fn check_mail_params(params: &[String], config: &InboundConfig) -> Result<(), String> {
    for param in params {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let size: u64 = value
                    .parse()
                    .map_err(|_| "501 5.5.4 Bad SIZE parameter\r\n".to_owned())?;
                if size > config.max_message_bytes as u64 {
                    return Err(format!(
                        "552 5.3.4 Message larger than {} bytes\r\n",
                        config.max_message_bytes
                    ));
                }
            }
            "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
            _ => return Err("555 5.5.4 Unsupported MAIL parameter\r\n".to_owned()),
        }
    }
    Ok(())
}

/// The message up to the lone `.`, dot-stuffing removed, every line ending in CRLF (a bare LF
/// becomes CRLF: the bytes later signed and sent are canonical). `None` when it is larger than
/// allowed (the rest is read and discarded, so the session can go on).
async fn read_data<S: AsyncBufRead + Unpin>(
    stream: &mut S,
    config: &InboundConfig,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    let mut too_large = false;
    loop {
        let line = match timeout(config.idle_timeout, read_line(stream, MAX_DATA_LINE)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the client closed the connection inside DATA",
                ));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle inside DATA",
                ));
            }
        };
        if line == b"." {
            return Ok((!too_large).then_some(body));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if body.len() + line.len() + 2 > config.max_message_bytes {
            too_large = true;
            body = Vec::new();
        }
        if !too_large {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_strictly() {
        assert_eq!(
            parse_path("FROM:<a@b.test> SIZE=10", "FROM:"),
            Some(("a@b.test".into(), vec!["SIZE=10".into()]))
        );
        assert_eq!(
            parse_path("from: <>", "FROM:"),
            Some((String::new(), vec![]))
        );
        assert_eq!(parse_path("TO:a@b.test", "TO:"), None, "brackets required");
        assert_eq!(parse_path("TO:<a b@c.test>", "TO:"), None);
        assert_eq!(parse_path("TO:<a@b.test", "TO:"), None);
        let long = format!("TO:<{}@b.test>", "a".repeat(300));
        assert_eq!(parse_path(&long, "TO:"), None);
        assert!(is_mailbox("bob@example.test"));
        assert!(!is_mailbox("bob"));
        assert!(!is_mailbox("@example.test"));
        assert!(!is_mailbox("bob@localhost"));
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_made_canonical() {
        let config = InboundConfig::new("relay.test".into(), test_tls());
        let wire = b"Subject: x\r\n..dot\nbare lf\r\n.\r\nNEXT";
        let mut reader = BufReader::new(&wire[..]);
        let body = read_data(&mut reader, &config)
            .await
            .expect("read")
            .expect("fits");
        assert_eq!(body, b"Subject: x\r\n.dot\r\nbare lf\r\n");
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut rest)
            .await
            .expect("rest");
        assert_eq!(rest, "NEXT", "nothing after the end of data was consumed");
    }

    #[tokio::test]
    async fn oversized_data_is_read_to_its_end_and_refused() {
        let mut config = InboundConfig::new("relay.test".into(), test_tls());
        config.max_message_bytes = 10;
        let wire = b"0123456789abcdef\r\nmore\r\n.\r\nNOOP\r\n";
        let mut reader = BufReader::new(&wire[..]);
        assert_eq!(read_data(&mut reader, &config).await.expect("read"), None);
        let next = read_line(&mut reader, 100).await.expect("line");
        assert_eq!(next.as_deref(), Some(&b"NOOP"[..]));
    }

    fn test_tls() -> Arc<rustls::ServerConfig> {
        crate::tls::self_signed_server("relay.test").expect("a self-signed certificate")
    }
}
