//! `ferry relay serve`: the SMTP listener and the queue worker in one process, on the
//! service's database, store, master key and audit chain. Several can run on one PostgreSQL
//! (claims keep them from delivering a recipient twice at once).

use std::sync::Arc;
use std::time::Duration;

use ferry_relay::deliver::Outbound;
use ferry_relay::dns::HickoryResolver;
use ferry_relay::mta_sts::fetch::PolicyFetcher;
use ferry_relay::smtp::client::Timeouts;
use ferry_relay::smtp::server::{ClientCertPolicy, InboundConfig, serve};
use ferry_relay::tls::{TrustRoots, self_signed_pem, server_config_with};
use tokio::net::TcpListener;

use super::config::RelayConfig;
use super::gate::ServiceGate;
use super::policy_cache::DbPolicyCache;
use super::queue::RelayQueue;
use crate::state::AppState;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[error("the relay cannot start: {0}")]
pub struct RelayStartError(String);

fn fail(e: impl std::fmt::Display) -> RelayStartError {
    RelayStartError(e.to_string())
}

/// Runs until the process ends. Prints `ferry relay listening on smtp://ADDR` once the
/// listener is bound.
///
/// # Errors
/// The certificate, trust roots, resolver or listener cannot be set up.
pub async fn run(state: AppState, config: RelayConfig) -> Result<(), RelayStartError> {
    // Microsoft 365 connectors prove themselves with a client certificate.
    let client_certs = match (&config.connector_cert_name, &config.client_ca_file) {
        (None, _) => None,
        (Some(_), Some(path)) => Some(
            ClientCertPolicy::new(&TrustRoots::from_pem_file(path).map_err(fail)?).map_err(fail)?,
        ),
        (Some(_), None) => Some(ClientCertPolicy::new(&TrustRoots::webpki()).map_err(fail)?),
    };
    let server_config =
        |cert: &[u8], key: &[u8]| server_config_with(cert, key, client_certs.as_ref());
    let tls = match &config.tls_cert {
        Some((cert, key)) => {
            let cert = std::fs::read(cert).map_err(fail)?;
            let key = std::fs::read(key).map_err(fail)?;
            server_config(&cert, &key).map_err(fail)?
        }
        None => {
            let dir = state.config.data_dir.join("relay-tls");
            let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !cert_path.exists() || !key_path.exists() {
                std::fs::create_dir_all(&dir).map_err(fail)?;
                let (cert, key) = self_signed_pem(&config.hostname).map_err(fail)?;
                std::fs::write(&cert_path, cert).map_err(fail)?;
                write_private(&key_path, key.as_bytes()).map_err(fail)?;
            }
            tracing::warn!(
                cert = %cert_path.display(),
                "FERRY_RELAY_TLS_CERT is not set: STARTTLS presents a self-signed certificate \
                 (for development only)"
            );
            let cert = std::fs::read(&cert_path).map_err(fail)?;
            let key = std::fs::read(&key_path).map_err(fail)?;
            server_config(&cert, &key).map_err(fail)?
        }
    };
    let roots = match &config.ca_file {
        Some(path) => TrustRoots::from_pem_file(path).map_err(fail)?,
        None => TrustRoots::webpki(),
    };
    let resolver = Arc::new(HickoryResolver::new(config.resolver).map_err(fail)?);
    let outbound = Outbound {
        fetcher: PolicyFetcher::new(Arc::clone(&resolver), &roots, config.mta_sts_port)
            .map_err(fail)?,
        resolver,
        cache: Arc::new(DbPolicyCache(state.db.clone())),
        tls: roots.client_config(),
        mx_port: config.mx_port,
        helo_name: config.hostname.clone(),
        timeouts: Timeouts::default(),
    };
    let queue = RelayQueue {
        db: state.db.clone(),
        store: Arc::clone(&state.store),
        master: Arc::clone(&state.master_key),
        hold: config.hold,
        retry_base: config.retry_base,
        hostname: config.hostname.clone(),
        link_prefix: Some(format!("{}/d/", state.public_url)),
    };
    let mut inbound = InboundConfig::new(config.hostname.clone(), tls);
    inbound.max_message_bytes = config.max_message_bytes;
    inbound.client_certs = client_certs;
    let listener = TcpListener::bind(config.listen).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    let gate = Arc::new(ServiceGate {
        queue: queue.clone(),
        connector_cert_name: config.connector_cert_name.clone(),
    });
    tokio::spawn(serve(listener, Arc::new(inbound), gate));
    println!("ferry relay listening on smtp://{local}");

    let claimant = format!("relay:{}:{}", config.hostname, uuid::Uuid::new_v4());
    let mut purged_at: Option<std::time::Instant> = None;
    loop {
        if purged_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            purged_at = Some(std::time::Instant::now());
            match queue.purge_finished(time::OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "purged finished relay queue rows"),
                Err(e) => tracing::warn!(error = %e, "purging finished relay queue rows failed"),
            }
        }
        match queue.work(&outbound, &claimant, 32).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(500)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the relay queue pass failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
