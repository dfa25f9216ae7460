//! SMTP AUTH (RFC 4954) PLAIN and LOGIN, with or without an initial response; the caller
//! allows it only over TLS.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::time::timeout;

use super::session::{MAX_COMMAND_LINE, read_line, send};
use super::{Gate, InboundConfig};

/// How an AUTH exchange ended.
pub(super) enum Auth<A> {
    Ok(A),
    Failed,
    Reply(String),
    Broken,
}

/// AUTH PLAIN / LOGIN, with or without an initial response.
pub(super) async fn authenticate<S, G>(
    stream: &mut BufReader<S>,
    arg: &str,
    config: &InboundConfig,
    gate: &G,
) -> Auth<G::Account>
where
    S: AsyncRead + AsyncWrite + Unpin,
    G: Gate,
{
    let mut words = arg.split_whitespace();
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let (username, password) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => match challenge(stream, "", config).await {
                    Some(r) => r,
                    None => return Auth::Broken,
                },
            };
            if response == "*" {
                return Auth::Reply("501 5.7.0 Authentication cancelled\r\n".into());
            }
            let Some(decoded) = decode(&response) else {
                return Auth::Reply("501 5.5.2 Cannot decode the response\r\n".into());
            };
            let mut parts = decoded.split('\0');
            let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
            match (user, pass, parts.next()) {
                (Some(user), Some(pass), None) => (user.to_owned(), pass.to_owned()),
                _ => return Auth::Reply("501 5.5.2 Malformed PLAIN response\r\n".into()),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(r) => r,
                None => match challenge(stream, "VXNlcm5hbWU6", config).await {
                    Some(r) => r,
                    None => return Auth::Broken,
                },
            };
            let Some(pass) = challenge(stream, "UGFzc3dvcmQ6", config).await else {
                return Auth::Broken;
            };
            if user == "*" || pass == "*" {
                return Auth::Reply("501 5.7.0 Authentication cancelled\r\n".into());
            }
            match (decode(&user), decode(&pass)) {
                (Some(user), Some(pass)) => (user, pass),
                _ => return Auth::Reply("501 5.5.2 Cannot decode the response\r\n".into()),
            }
        }
        _ => return Auth::Reply("504 5.5.4 Unrecognized authentication type\r\n".into()),
    };
    match gate.authenticate(&username, &password).await {
        Ok(Some(account)) => Auth::Ok(account),
        Ok(None) => Auth::Failed,
        Err(e) => {
            tracing::warn!(error = %e, "checking relay credentials failed");
            Auth::Reply("454 4.7.0 Temporary authentication failure\r\n".into())
        }
    }
}

async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    prompt: &str,
    config: &InboundConfig,
) -> Option<String> {
    send(stream, &format!("334 {prompt}\r\n")).await.ok()?;
    let line = timeout(config.idle_timeout, read_line(stream, MAX_COMMAND_LINE))
        .await
        .ok()?
        .ok()??;
    Some(String::from_utf8_lossy(&line).trim().to_owned())
}

fn decode(text: &str) -> Option<String> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    String::from_utf8(bytes).ok()
}
