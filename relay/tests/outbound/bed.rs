//! One test's world: DNS, a CA the relay trusts (and nothing else), MX hosts, and the relay's
//! outbound side pointed at them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_relay::deliver::{Message, Outbound, ProofRecord};
use ferry_relay::dns::HickoryResolver;
use ferry_relay::mta_sts::discover::MemoryPolicyCache;
use ferry_relay::mta_sts::fetch::PolicyFetcher;
use ferry_relay::smtp::client::Timeouts;
use ferry_relay::tls::TrustRoots;
use ferry_testkit::ca::TestCa;
use ferry_testkit::dns::DnsServer;
use ferry_testkit::postfix::{MxTls, PostfixMx};

pub type Relay = Outbound<HickoryResolver, MemoryPolicyCache>;

pub struct Bed {
    pub dns: DnsServer,
    pub ca: TestCa,
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
}

pub const BODY: &[u8] = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: results\r\n\
Message-ID: <m1@sender.test>\r\n\r\nThe secret results.\r\n.leading dot\r\n";

impl Bed {
    pub async fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = TestCa::new()?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        Ok(Self {
            dns: DnsServer::start().await?,
            ca,
            _dir: dir,
            ca_file,
        })
    }

    /// The relay's outbound side: every MX on `mx_port`, policies on `sts_port`, only the test
    /// CA trusted, every lookup at this bed's DNS server; policies cached in `cache`.
    pub fn relay(
        &self,
        mx_port: u16,
        sts_port: u16,
        cache: Arc<MemoryPolicyCache>,
    ) -> anyhow::Result<Relay> {
        let resolver = Arc::new(HickoryResolver::new(Some(self.dns.addr()))?);
        let roots = TrustRoots::from_pem_file(&self.ca_file)?;
        Ok(Outbound {
            fetcher: PolicyFetcher::new(Arc::clone(&resolver), &roots, sts_port)?,
            resolver,
            cache,
            tls: roots.client_config(),
            mx_port,
            helo_name: "relay.ferry.test".to_owned(),
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                command: Duration::from_secs(10),
                data: Duration::from_secs(10),
                data_end: Duration::from_secs(10),
            },
        })
    }

    /// A Postfix MX for `example.test` named `host` at `ip:port`, with a certificate from the
    /// test CA for its name; DNS gets its A record.
    pub async fn good_mx(
        &self,
        ip: Ipv4Addr,
        port: u16,
        host: &'static str,
    ) -> anyhow::Result<PostfixMx> {
        let leaf = self.ca.leaf(&[host])?;
        self.dns.address(host, IpAddr::V4(ip));
        start_mx(SocketAddr::new(ip.into(), port), host, MxTls::On(leaf)).await
    }
}

/// Starts Postfix off the async runtime (it blocks until the MX listens).
pub async fn start_mx(
    addr: SocketAddr,
    host: &'static str,
    tls: MxTls,
) -> anyhow::Result<PostfixMx> {
    tokio::task::spawn_blocking(move || PostfixMx::start(addr, host, &["example.test"], tls))
        .await?
}

/// Sends [`BODY`] from alice@sender.test to `recipients` at `domain`.
pub async fn send(relay: &Relay, domain: &str, recipients: &[&str]) -> Vec<ProofRecord> {
    let recipients: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
    relay
        .deliver(
            domain,
            &Message {
                queue_id: "q1",
                message_id: "<m1@sender.test>",
                from: "alice@sender.test",
                recipients: &recipients,
                body: BODY,
            },
        )
        .await
}

/// Waits for the MX to have delivered `n` messages.
pub fn delivered(mx: &PostfixMx, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    ferry_testkit::eventually(Duration::from_secs(10), || {
        let found = mx.delivered();
        anyhow::ensure!(found.len() >= n, "{} of {n} delivered yet", found.len());
        Ok(found)
    })
}
