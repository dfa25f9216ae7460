//! An HTTPS server on a loopback address for MTA-STS policies: one certificate (from the test
//! CA) for every `mta-sts.<domain>` name the test uses, and per host name the response the
//! test sets — a policy, a redirect, an oversized document — counted per host, so a test can
//! tell a cached policy from a fetched one. HTTP/1.1, one request per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ca::Leaf;

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// `200`, `text/plain`, the policy document.
    pub fn policy(text: &str) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: text.as_bytes().to_vec(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 301,
            headers: vec![("Location".to_owned(), location.to_owned())],
            body: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Site {
    responses: HashMap<String, Response>,
    hits: HashMap<String, usize>,
}

/// The server; stops when dropped.
pub struct HttpsServer {
    addr: SocketAddr,
    site: Arc<Mutex<Site>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsServer {
    /// Listens on `addr` (port 0: any) with `leaf` as its certificate; answers 404 to hosts
    /// it has no response for.
    ///
    /// # Errors
    /// The certificate or key does not parse, or the address cannot be bound.
    pub async fn start(addr: SocketAddr, leaf: &Leaf) -> anyhow::Result<Self> {
        let certs = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())?];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("server certificate")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let site: Arc<Mutex<Site>> = Arc::default();
        let serving = Arc::clone(&site);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let site = Arc::clone(&serving);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let host = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("host")
                                .then(|| value.trim().to_owned())
                        })
                        .unwrap_or_default();
                    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
                    let response = {
                        let mut site = site.lock().unwrap_or_else(PoisonError::into_inner);
                        *site.hits.entry(host.clone()).or_default() += 1;
                        site.responses.get(&host).cloned()
                    };
                    let response = response.unwrap_or(Response {
                        status: 404,
                        headers: Vec::new(),
                        body: Vec::new(),
                    });
                    let mut out = format!("HTTP/1.1 {} X\r\n", response.status);
                    for (name, value) in &response.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    out.push_str(&format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n",
                        response.body.len()
                    ));
                    let _ = tls.write_all(out.as_bytes()).await;
                    let _ = tls.write_all(&response.body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Ok(Self { addr, site, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests for `host` with `response`.
    pub fn set(&self, host: &str, response: Response) {
        self.site
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .responses
            .insert(host.to_ascii_lowercase(), response);
    }

    /// How many requests for `host` arrived.
    pub fn hits(&self, host: &str) -> usize {
        self.site
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hits
            .get(&host.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }
}
