//! MTA-STS end to end: the policy comes over HTTPS from `mta-sts.example.test` (a certificate
//! from the test CA), the MX is a real Postfix, and the decision table decides.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferry_relay::deliver::{Method, RecipientStatus};
use ferry_relay::mta_sts::discover::MemoryPolicyCache;
use ferry_testkit::https::{HttpsServer, Response};
use ferry_testkit::postfix::{PostfixMx, free_port_on, loopback_ip};

use crate::bed::{Bed, Relay, delivered, send};

const POLICY_HOST: &str = "mta-sts.example.test";

/// example.test with one good MX (`mx1.example.test`) and a policy server.
struct Sts {
    bed: Bed,
    mx: PostfixMx,
    https: HttpsServer,
    relay: Relay,
}

impl Sts {
    async fn new() -> anyhow::Result<Self> {
        let bed = Bed::new().await?;
        let mx_ip = loopback_ip(1);
        let mx_port = free_port_on(&[mx_ip])?;
        let mx = bed.good_mx(mx_ip, mx_port, "mx1.example.test").await?;
        bed.dns.mx("example.test", &[(10, "mx1.example.test")])?;
        let https_ip = loopback_ip(2);
        let https = HttpsServer::start(
            SocketAddr::new(https_ip.into(), 0),
            &bed.ca.leaf(&[POLICY_HOST])?,
        )
        .await?;
        bed.dns.address(POLICY_HOST, IpAddr::V4(https_ip));
        let relay = bed.relay(
            mx_port,
            https.addr().port(),
            Arc::new(MemoryPolicyCache::default()),
        )?;
        Ok(Self {
            bed,
            mx,
            https,
            relay,
        })
    }

    /// Publishes `policy` under `id`.
    fn publish(&self, id: &str, response: Response) {
        self.bed
            .dns
            .txt("_mta-sts.example.test", &[&format!("v=STSv1; id={id}")]);
        self.https.set(POLICY_HOST, response);
    }
}

fn policy(mode: &str, mx: &[&str]) -> Response {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\nmax_age: 86400\r\n");
    for host in mx {
        text.push_str(&format!("mx: {host}\r\n"));
    }
    Response::policy(&text)
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_with_the_mx_listed_delivers_and_records_the_policy() -> anyhow::Result<()> {
    let sts = Sts::new().await?;
    sts.publish("20261204", policy("enforce", &["mx1.example.test"]));

    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;

    assert_eq!(proof[0].outcome, RecipientStatus::Delivered, "{proof:#?}");
    assert_eq!(proof[0].method, Some(Method::MtaSts));
    let facts = proof[0].mta_sts.as_ref().expect("policy facts");
    assert_eq!(
        (facts.id.as_str(), facts.mode.as_str()),
        ("20261204", "enforce")
    );
    assert!(facts.fetched_at.is_some());
    delivered(&sts.mx, 1)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_without_the_mx_holds_and_never_connects() -> anyhow::Result<()> {
    let sts = Sts::new().await?;
    sts.publish("1", policy("enforce", &["other.example.test"]));
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert!(
        matches!(&proof[0].outcome, RecipientStatus::Deferred(why) if why.contains("lists none")),
        "{proof:#?}"
    );

    // `*.test` covers one label (`example.test`), not `mx1.example.test`.
    sts.publish("2", policy("enforce", &["*.test"]));
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert!(
        matches!(&proof[0].outcome, RecipientStatus::Deferred(why) if why.contains("lists none")),
        "{proof:#?}"
    );
    assert_eq!(proof[0].mta_sts.as_ref().map(|p| p.id.as_str()), Some("2"));
    assert!(!sts.mx.log().contains("connect from"), "{}", sts.mx.log());

    // `*.example.test` covers it.
    sts.publish("3", policy("enforce", &["*.example.test"]));
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(proof[0].outcome, RecipientStatus::Delivered, "{proof:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn testing_delivers_over_verified_tls_and_reports() -> anyhow::Result<()> {
    let sts = Sts::new().await?;
    sts.publish("t1", policy("testing", &["other.example.test"]));
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(proof[0].outcome, RecipientStatus::Delivered, "{proof:#?}");
    assert_eq!(
        proof[0].method,
        Some(Method::Webpki),
        "not authenticated by the policy"
    );
    assert_eq!(
        proof[0].mta_sts.as_ref().map(|p| p.mode.as_str()),
        Some("testing")
    );
    assert!(proof[0].tls.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_or_an_oversized_policy_is_ignored() -> anyhow::Result<()> {
    let sts = Sts::new().await?;
    // Behind the redirect an enforce policy would exclude the MX: following it would hold.
    sts.publish(
        "r1",
        Response::redirect("https://mta-sts.example.test/.well-known/elsewhere.txt"),
    );
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(proof[0].outcome, RecipientStatus::Delivered, "{proof:#?}");
    assert_eq!(proof[0].method, Some(Method::Webpki));
    let error = proof[0].mta_sts_fetch_error.clone().unwrap_or_default();
    assert!(error.contains("301"), "{error}");
    assert_eq!(
        sts.https.hits(POLICY_HOST),
        1,
        "the redirect was not followed"
    );

    // 64 KB and one byte more, of an otherwise valid policy that would exclude the MX.
    let mut text =
        "version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\nmx: other.example.test\r\n"
            .to_owned();
    while text.len() <= 64 * 1024 {
        text.push_str("comment: padding padding padding padding padding\r\n");
    }
    sts.publish("r2", Response::policy(&text));
    let proof = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(proof[0].outcome, RecipientStatus::Delivered, "{proof:#?}");
    assert_eq!(proof[0].method, Some(Method::Webpki));
    let error = proof[0].mta_sts_fetch_error.clone().unwrap_or_default();
    assert!(error.contains("larger"), "{error}");
    delivered(&sts.mx, 2)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_is_cached_by_id_and_applied_when_a_fetch_fails() -> anyhow::Result<()> {
    let sts = Sts::new().await?;
    sts.publish("c1", policy("enforce", &["mx1.example.test"]));
    let first = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(first[0].method, Some(Method::MtaSts), "{first:#?}");
    assert_eq!(sts.https.hits(POLICY_HOST), 1);

    // Same id: no fetch.
    let second = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(second[0].method, Some(Method::MtaSts), "{second:#?}");
    assert_eq!(sts.https.hits(POLICY_HOST), 1, "the cached policy was used");

    // A new id whose fetch fails: the cached (still fresh) policy holds, and is reported.
    sts.publish(
        "c2",
        Response {
            status: 500,
            headers: Vec::new(),
            body: Vec::new(),
        },
    );
    let third = send(&sts.relay, "example.test", &["bob@example.test"]).await;
    assert_eq!(sts.https.hits(POLICY_HOST), 2);
    assert_eq!(third[0].method, Some(Method::MtaSts), "{third:#?}");
    assert_eq!(third[0].mta_sts.as_ref().map(|p| p.id.as_str()), Some("c1"));
    assert!(
        third[0]
            .mta_sts_fetch_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{third:#?}"
    );
    assert_eq!(third[0].outcome, RecipientStatus::Delivered);
    delivered(&sts.mx, 3)?;
    Ok(())
}
