//! What the relay keeps in Ferry's database outlives the process: an MTA-STS policy fetched
//! before a restart is applied after it without fetching again (RFC 8461 §5.1), against a real
//! Postfix MX and an HTTPS policy server on loopback addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use ferry::db::Db;
use ferry::relay::policy_cache::DbPolicyCache;
use ferry_relay::deliver::{Message, Method, Outbound, RecipientStatus};
use ferry_relay::dns::HickoryResolver;
use ferry_relay::mta_sts::fetch::PolicyFetcher;
use ferry_relay::smtp::client::Timeouts;
use ferry_relay::tls::TrustRoots;
use ferry_testkit::ca::TestCa;
use ferry_testkit::dns::DnsServer;
use ferry_testkit::https::{HttpsServer, Response};
use ferry_testkit::postfix::{MxTls, PostfixMx, free_port_on, loopback_ip};

const POLICY_HOST: &str = "mta-sts.example.test";

fn relay(
    dns: &DnsServer,
    ca_file: &std::path::Path,
    mx_port: u16,
    sts_port: u16,
    db: Db,
) -> Result<Outbound<HickoryResolver, DbPolicyCache>> {
    let resolver = Arc::new(HickoryResolver::new(Some(dns.addr()))?);
    let roots = TrustRoots::from_pem_file(ca_file)?;
    Ok(Outbound {
        fetcher: PolicyFetcher::new(Arc::clone(&resolver), &roots, sts_port)?,
        resolver,
        cache: Arc::new(DbPolicyCache(db)),
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

#[tokio::test(flavor = "multi_thread")]
async fn the_mta_sts_policy_cache_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ferry.db").display()
    );
    let ca = TestCa::new()?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem())?;

    let dns = DnsServer::start().await?;
    let mx_ip = loopback_ip(1);
    let mx_port = free_port_on(&[mx_ip])?;
    let leaf = ca.leaf(&["mx1.example.test"])?;
    let mx = tokio::task::spawn_blocking(move || {
        PostfixMx::start(
            SocketAddr::new(mx_ip.into(), mx_port),
            "mx1.example.test",
            &["example.test"],
            MxTls::On(leaf),
        )
    })
    .await??;
    dns.mx("example.test", &[(10, "mx1.example.test")])?;
    dns.address("mx1.example.test", IpAddr::V4(mx_ip));
    let https_ip = loopback_ip(2);
    let https = HttpsServer::start(
        SocketAddr::new(https_ip.into(), 0),
        &ca.leaf(&[POLICY_HOST])?,
    )
    .await?;
    dns.address(POLICY_HOST, IpAddr::V4(https_ip));
    dns.txt("_mta-sts.example.test", &["v=STSv1; id=restart1"]);
    https.set(
        POLICY_HOST,
        Response::policy("version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n"),
    );
    let recipients = ["bob@example.test".to_owned()];
    let message = Message {
        queue_id: "q1",
        message_id: "<restart@sender.test>",
        from: "alice@sender.test",
        recipients: &recipients,
        body: b"Subject: restart\r\n\r\nbody\r\n",
    };

    let db = Db::connect(&url).await?;
    let before = relay(&dns, &ca_file, mx_port, https.addr().port(), db.clone())?
        .deliver("example.test", &message)
        .await;
    ensure!(
        before[0].method == Some(Method::MtaSts),
        "{before:#?}\n{}",
        mx.log()
    );
    ensure!(https.hits(POLICY_HOST) == 1);
    db.close().await;

    // "Restart": a new pool on the same database; the policy server now fails.
    https.set(
        POLICY_HOST,
        Response {
            status: 503,
            headers: Vec::new(),
            body: Vec::new(),
        },
    );
    let db = Db::connect(&url).await?;
    let after = relay(&dns, &ca_file, mx_port, https.addr().port(), db.clone())?
        .deliver("example.test", &message)
        .await;
    ensure!(after[0].outcome == RecipientStatus::Delivered, "{after:#?}");
    ensure!(after[0].method == Some(Method::MtaSts), "{after:#?}");
    ensure!(
        after[0].mta_sts.as_ref().map(|p| p.id.as_str()) == Some("restart1"),
        "{after:#?}"
    );
    ensure!(
        https.hits(POLICY_HOST) == 1,
        "the cached policy was used, not fetched again"
    );
    db.close().await;
    Ok(())
}

/// A message is held for as long as its tenant's policy says (`relay_hold_hours`), else for
/// the deployment's hold window; the rows keep when that ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_policy_sets_how_long_its_mail_is_held() -> Result<()> {
    use ferry::audit::{Actor, AuditEntry, EventKind};
    use ferry::crypto::MasterKey;
    use ferry::relay::queue::RelayQueue;
    use ferry_relay::smtp::server::Received;

    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ferry.db").display()
    );
    let db = Db::connect(&url).await?;
    let master = Arc::new(MasterKey::from_base64(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )?);
    let queue = RelayQueue {
        db: db.clone(),
        store: Arc::new(ferry::store::disk::DiskStore::open(
            dir.path().join("objects"),
        )?),
        master: Arc::clone(&master),
        hold: Duration::from_secs(600),
        retry_base: Duration::from_secs(60),
        hostname: "relay.ferry.test".to_owned(),
        link_prefix: None,
    };
    let strict = db.create_tenant("strict").await?.id;
    let lenient = db.create_tenant("lenient").await?.id;
    let policy = ferry::policy::Policy {
        relay_hold_hours: Some(3),
        ..ferry::policy::Policy::default()
    };
    let audit = AuditEntry::new(
        &master,
        strict,
        EventKind::PolicyChanged,
        Actor::Operator,
        None,
        serde_json::json!({}),
    )?;
    db.set_policy(strict, &policy, &audit).await?;
    for (tenant, expected) in [
        (strict, time::Duration::hours(3)),
        (lenient, time::Duration::minutes(10)),
    ] {
        let id = queue
            .enqueue(
                tenant,
                Received {
                    from: "ward@hospital.test".to_owned(),
                    recipients: vec!["bob@example.test".to_owned()],
                    body: b"Subject: held\r\n\r\nbody\r\n".to_vec(),
                    peer: "127.0.0.1:4000".parse()?,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let row = db.relay_message(tenant, id.parse()?).await?;
        ensure!(
            row.hold_until - row.received_at == expected,
            "held {} instead of {expected}",
            row.hold_until - row.received_at
        );
    }
    Ok(())
}
