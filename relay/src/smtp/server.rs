//! The inbound side: where tenants' mail servers hand messages to the relay. STARTTLS comes
//! first (MAIL before it is refused with 530), AUTH only after it, and a message is answered
//! 250 only once the [`Gate`] says it is durably queued. Everything a client controls has a
//! bound: line length, message size, recipients, failed logins, idle time, session time.

mod auth;
mod client_cert;
mod session;

pub use client_cert::{ClientCertPolicy, name_matches};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use session::serve_connection;

/// Limits and identity of the listener.
#[derive(Clone)]
pub struct InboundConfig {
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// The certificate STARTTLS presents.
    pub tls: Arc<rustls::ServerConfig>,
    /// Largest message accepted (advertised as SIZE).
    pub max_message_bytes: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Failed AUTH attempts before the connection is closed.
    pub max_auth_failures: u32,
    /// How long the client may stay silent.
    pub idle_timeout: Duration,
    /// How long one connection may last in all.
    pub session_timeout: Duration,
    /// Client certificates that are judged after the handshake (the `tls` configuration must
    /// come from [`crate::tls::server_config_with`] with the same policy); `None`: none asked.
    pub client_certs: Option<ClientCertPolicy>,
}

impl InboundConfig {
    /// Defaults for a relay in front of a tenant's mail server: 50 MB messages (mail carries
    /// links to files, not the files), 100 recipients, 3 failed logins, 5 minutes idle
    /// (RFC 5321 §4.5.3.2), 30 minutes per connection.
    pub fn new(hostname: String, tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            hostname,
            tls,
            max_message_bytes: 50 * 1024 * 1024,
            max_recipients: 100,
            max_auth_failures: 3,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(1800),
            client_certs: None,
        }
    }
}

/// A message as the client handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `MAIL FROM` (empty for the null sender).
    pub from: String,
    /// `RCPT TO`, in order.
    pub recipients: Vec<String>,
    /// The content: CRLF line ends (bare LF made CRLF), dot-stuffing removed.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Why the gate did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Try again later (451): the queue could not store it now.
    #[error("{0}")]
    Temporary(String),
    /// Never (554/550): e.g. a sender outside the tenant's domains.
    #[error("{0}")]
    Permanent(String),
}

/// What the listener asks of the service: who a login is, and taking a message durably.
pub trait Gate: Send + Sync + 'static {
    /// Who relays (a tenant), as the service knows it.
    type Account: Send + Sync + Clone + 'static;

    /// The account behind SMTP AUTH credentials; `Ok(None)` when they are wrong.
    ///
    /// # Errors
    /// The check itself failed (database down): the client gets 454, not 535.
    fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<Self::Account>, String>> + Send;

    /// The account a client proves with its certificate (a Microsoft 365 connector), given
    /// the DNS names of a chain verified against the configured roots; `None`: the client must
    /// still AUTH.
    fn certificate_account(
        &self,
        names: &[String],
    ) -> impl Future<Output = Option<Self::Account>> + Send;

    /// Whether `account` may use `sender` (the MAIL FROM address, empty for the null
    /// sender) as the envelope sender: an account relays only for its own domains, so a
    /// leaked password cannot send as anyone else.
    ///
    /// # Errors
    /// The check itself failed: the client gets 451 and tries again.
    fn may_send_as(
        &self,
        account: &Self::Account,
        sender: &str,
    ) -> impl Future<Output = Result<bool, String>> + Send;

    /// Queues `message` for `account`; the returned id is in the 250 reply.
    ///
    /// # Errors
    /// See [`Refusal`].
    fn accept(
        &self,
        account: &Self::Account,
        message: Received,
    ) -> impl Future<Output = Result<String, Refusal>> + Send;
}

/// Accepts connections until the listener fails; each is served on its own task.
pub async fn serve<G: Gate>(listener: TcpListener, config: Arc<InboundConfig>, gate: Arc<G>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an SMTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = Arc::clone(&config);
        let gate = Arc::clone(&gate);
        tokio::spawn(async move {
            let limit = config.session_timeout;
            if tokio::time::timeout(limit, serve_connection(stream, peer, config, gate))
                .await
                .is_err()
            {
                tracing::info!(%peer, "SMTP session closed: it lasted too long");
            }
        });
    }
}
