//! The inbound side against swaks (Debian's SMTP test client, a real one) and raw sockets for
//! what no well-behaved client does: STARTTLS is required before MAIL, AUTH only after it,
//! wrong credentials get 535, an injected command after STARTTLS drops the connection, and a
//! message is acknowledged with the gate's queue id.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ferry_relay::smtp::server::{Gate, InboundConfig, Received, Refusal, serve};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "fr_AAAAAAAAAAAA";
const PASSWORD: &str = "correct-horse-battery-staple";

/// The service's side, played by the test: one account, messages kept in order.
#[derive(Default)]
struct Accounts {
    queued: Mutex<Vec<(String, Received)>>,
}

impl Gate for Accounts {
    type Account = String;

    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<String>, String> {
        Ok((username == USER && password == PASSWORD).then(|| "tenant-a".to_owned()))
    }

    async fn certificate_account(&self, _names: &[String]) -> Option<String> {
        None
    }

    async fn may_send_as(&self, _account: &String, sender: &str) -> Result<bool, String> {
        Ok(sender.is_empty() || sender.ends_with("@sender.test"))
    }

    async fn accept(&self, account: &String, message: Received) -> Result<String, Refusal> {
        let mut queued = self
            .queued
            .lock()
            .map_err(|_| Refusal::Temporary("poisoned".into()))?;
        queued.push((account.clone(), message));
        Ok(format!("Q{}", queued.len()))
    }
}

async fn listen(max_message_bytes: usize) -> anyhow::Result<(SocketAddr, Arc<Accounts>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = InboundConfig::new(
        "relay.ferry.test".into(),
        ferry_relay::tls::self_signed_server("relay.ferry.test")?,
    );
    config.max_message_bytes = max_message_bytes;
    let gate = Arc::new(Accounts::default());
    tokio::spawn(serve(listener, Arc::new(config), Arc::clone(&gate)));
    Ok((addr, gate))
}

/// Runs swaks against `addr` with `args`; its whole transcript.
async fn swaks(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    swaks_from(addr, "alice@sender.test", args).await
}

/// [`swaks`] with envelope sender `from`.
async fn swaks_from(addr: SocketAddr, from: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("swaks");
    command
        .args(["--server", &addr.to_string(), "--timeout", "10"])
        .args(["--from", from, "--to", "bob@example.test"])
        .args(["--helo", "mail.sender.test"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tls_mail_is_refused_with_530() -> anyhow::Result<()> {
    let (addr, gate) = listen(1 << 20).await?;
    let transcript = swaks(addr, &[]).await?;
    assert!(
        transcript.contains("530 5.7.0 Must issue a STARTTLS"),
        "{transcript}"
    );
    assert!(gate.queued.lock().map(|q| q.is_empty()).unwrap_or(false));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_get_535_and_nothing_is_queued() -> anyhow::Result<()> {
    let (addr, gate) = listen(1 << 20).await?;
    for mechanism in ["PLAIN", "LOGIN"] {
        let transcript = swaks(
            addr,
            &[
                "-tls",
                "--auth",
                mechanism,
                "--auth-user",
                USER,
                "--auth-password",
                "wrong",
            ],
        )
        .await?;
        assert!(
            transcript.contains("535 5.7.8"),
            "{mechanism}: {transcript}"
        );
    }
    // TLS but no AUTH at all.
    let transcript = swaks(addr, &["-tls"]).await?;
    assert!(
        transcript.contains("530 5.7.0 Authentication required"),
        "{transcript}"
    );
    assert!(gate.queued.lock().map(|q| q.is_empty()).unwrap_or(false));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_relays_over_tls_with_its_account() -> anyhow::Result<()> {
    let (addr, gate) = listen(1 << 20).await?;
    for (i, mechanism) in ["PLAIN", "LOGIN"].iter().enumerate() {
        let transcript = swaks(
            addr,
            &[
                "-tls",
                "--auth",
                mechanism,
                "--auth-user",
                USER,
                "--auth-password",
                PASSWORD,
                "--header",
                "Subject: lab results",
                "--body",
                ".a line that starts with a dot\nand a bare LF",
            ],
        )
        .await?;
        let expected = format!("250 2.0.0 Ok: queued as Q{}", i + 1);
        assert!(transcript.contains(&expected), "{mechanism}: {transcript}");
    }
    let queued = gate
        .queued
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(queued.len(), 2);
    let (account, message) = &queued[0];
    assert_eq!(account, "tenant-a");
    assert_eq!(message.from, "alice@sender.test");
    assert_eq!(message.recipients, ["bob@example.test"]);
    let body = String::from_utf8_lossy(&message.body);
    assert!(body.contains("Subject: lab results\r\n"), "{body}");
    assert!(
        body.contains("\r\n.a line that starts with a dot\r\n"),
        "{body}"
    );
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "bare LF left: {body:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sender_outside_the_accounts_domains_is_refused_with_550() -> anyhow::Result<()> {
    let (addr, gate) = listen(1 << 20).await?;
    let login = [
        "-tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
    ];
    for sender in ["mallory@elsewhere.test", "alice@sender.test.evil.test"] {
        let transcript = swaks_from(addr, sender, &login).await?;
        assert!(
            transcript.contains("550 5.7.1 Sender address rejected"),
            "{sender}: {transcript}"
        );
    }
    assert!(gate.queued.lock().map(|q| q.is_empty()).unwrap_or(false));
    // The null sender (a bounce from the tenant's server) is its own.
    let transcript = swaks_from(addr, "<>", &login).await?;
    assert!(transcript.contains("250 2.0.0 Ok: queued"), "{transcript}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_size_limit_is_refused_with_552() -> anyhow::Result<()> {
    let (addr, gate) = listen(2000).await?;
    let body = "x".repeat(3000);
    let transcript = swaks(
        addr,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--body",
            &body,
        ],
    )
    .await?;
    assert!(transcript.contains("552 5.3.4"), "{transcript}");
    assert!(
        transcript.contains("SIZE 2000"),
        "the limit is advertised: {transcript}"
    );
    assert!(gate.queued.lock().map(|q| q.is_empty()).unwrap_or(false));
    Ok(())
}

/// Reads one (possibly multi-line) reply; empty at end of stream.
async fn reply(reader: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(text);
        }
        text.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(text);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_neither_offered_nor_accepted_in_clear_text() -> anyhow::Result<()> {
    let (addr, _) = listen(1 << 20).await?;
    let mut reader = BufReader::new(TcpStream::connect(addr).await?);
    assert!(reply(&mut reader).await?.starts_with("220 "));
    reader.get_mut().write_all(b"EHLO client.test\r\n").await?;
    let ehlo = reply(&mut reader).await?;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    // The password would cross the wire in clear: refused without looking at it.
    reader
        .get_mut()
        .write_all(b"AUTH PLAIN AGZyX0FBQUFBQUFBQUFBQQBjb3JyZWN0LWhvcnNlLWJhdHRlcnktc3RhcGxl\r\n")
        .await?;
    assert!(reply(&mut reader).await?.starts_with("538 5.7.11"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_injected_after_starttls_drops_the_connection() -> anyhow::Result<()> {
    let (addr, gate) = listen(1 << 20).await?;
    let mut reader = BufReader::new(TcpStream::connect(addr).await?);
    reply(&mut reader).await?;
    reader.get_mut().write_all(b"EHLO client.test\r\n").await?;
    reply(&mut reader).await?;
    // One write: the MAIL after STARTTLS arrives before any handshake.
    reader
        .get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<mallory@evil.test>\r\n")
        .await?;
    assert!(reply(&mut reader).await?.starts_with("220 "));
    assert_eq!(reply(&mut reader).await?, "", "closed, nothing more said");
    assert!(gate.queued.lock().map(|q| q.is_empty()).unwrap_or(false));
    Ok(())
}
