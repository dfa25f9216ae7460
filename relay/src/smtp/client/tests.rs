//! The client against scripted peers: what it writes before TLS is only EHLO, STARTTLS (and
//! QUIT), whatever the peer does. A real MX (Postfix) covers the successful path in the
//! relay's integration tests.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use std::net::SocketAddr;

use super::*;
use crate::tls::TrustRoots;

/// A peer that answers each read (the client writes each command in one piece) with the next
/// scripted reply (written in one piece, so piggy-backed bytes arrive together), and returns
/// everything it received.
async fn scripted_peer(
    replies: Vec<&'static str>,
) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        let mut replies = replies.into_iter();
        if let Some(greeting) = replies.next() {
            socket.write_all(greeting.as_bytes()).await.expect("write");
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            received.extend_from_slice(&buf[..n]);
            match replies.next() {
                Some(reply) => {
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        String::from_utf8_lossy(&received).into_owned()
    });
    (addr, peer)
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        command: Duration::from_secs(5),
        data: Duration::from_secs(5),
        data_end: Duration::from_secs(5),
    }
}

async fn run(addr: SocketAddr) -> Result<Session, AttemptError> {
    let recipients = vec!["bob@example.test".to_owned()];
    let envelope = Envelope {
        from: "alice@sender.test",
        recipients: &recipients,
    };
    deliver(
        addr,
        "mx.example.test",
        "relay.test",
        TrustRoots::webpki().client_config(),
        &envelope,
        b"Subject: secret\r\n\r\nthe secret body\r\n",
        &quick(),
    )
    .await
}

#[tokio::test]
async fn without_starttls_nothing_but_ehlo_is_sent() {
    let (addr, peer) = scripted_peer(vec![
        "220 mx.example.test ESMTP\r\n",
        "250-mx.example.test\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n",
        "221 bye\r\n",
    ])
    .await;
    let error = run(addr).await.expect_err("no STARTTLS must fail");
    assert!(matches!(error, AttemptError::NoStartTls), "{error}");
    let received = peer.await.expect("peer");
    assert_eq!(received, "EHLO relay.test\r\nQUIT\r\n");
}

#[tokio::test]
async fn bytes_piggy_backed_on_the_starttls_reply_drop_the_connection() {
    let (addr, peer) = scripted_peer(vec![
        "220 mx.example.test ESMTP\r\n",
        "250-mx.example.test\r\n250 STARTTLS\r\n",
        // The injected "250" would answer the client's next command if it were read.
        "220 ready\r\n250-injected\r\n250 STARTTLS\r\n",
    ])
    .await;
    let error = run(addr).await.expect_err("injection must fail");
    assert!(matches!(error, AttemptError::Injection), "{error}");
    let received = peer.await.expect("peer");
    assert_eq!(received, "EHLO relay.test\r\nSTARTTLS\r\n");
}

#[tokio::test]
async fn a_refused_starttls_sends_nothing_more() {
    let (addr, peer) = scripted_peer(vec![
        "220 mx.example.test ESMTP\r\n",
        "250-mx.example.test\r\n250 STARTTLS\r\n",
        "454 TLS not available\r\n",
    ])
    .await;
    let error = run(addr).await.expect_err("refused STARTTLS must fail");
    assert!(matches!(error, AttemptError::StartTlsRefused(_)), "{error}");
    assert!(!error.is_permanent());
    let received = peer.await.expect("peer");
    assert_eq!(received, "EHLO relay.test\r\nSTARTTLS\r\n");
}

#[tokio::test]
async fn a_peer_that_is_no_tls_server_fails_the_handshake() {
    // Answers STARTTLS with 220, then speaks SMTP instead of TLS.
    let (addr, peer) = scripted_peer(vec![
        "220 mx.example.test ESMTP\r\n",
        "250-mx.example.test\r\n250 STARTTLS\r\n",
        "220 ready\r\n",
        "250 this is not TLS\r\n",
    ])
    .await;
    let error = run(addr).await.expect_err("no TLS must fail");
    assert!(matches!(error, AttemptError::Tls(_)), "{error}");
    let received = peer.await.expect("peer");
    assert!(!received.contains("secret"), "{received}");
    assert!(!received.contains("MAIL FROM"), "{received}");
}

#[tokio::test]
async fn the_body_is_dot_stuffed_and_terminated() {
    let mut out = Vec::new();
    write_data(&mut out, b".hidden\r\nline\r\n..two\r\nlast")
        .await
        .expect("write");
    assert_eq!(out, b"..hidden\r\nline\r\n...two\r\nlast\r\n.\r\n");
    let mut out = Vec::new();
    write_data(&mut out, b"a\r\n").await.expect("write");
    assert_eq!(out, b"a\r\n.\r\n");
}
