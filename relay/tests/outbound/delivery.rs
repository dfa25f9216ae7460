//! Delivery without MTA-STS: WebPKI-verified STARTTLS to a real MX, refusal of every MX that
//! cannot prove itself, and DNS answers that hold or bounce.

use std::net::{IpAddr, SocketAddr};

use ferry_relay::deliver::{Method, RecipientStatus};
use ferry_testkit::ca::self_signed;
use ferry_testkit::dns::{Answer, RecordType};
use ferry_testkit::postfix::{MxTls, free_port_on, loopback_ip};

use crate::bed::{BODY, Bed, delivered, send, start_mx};

#[tokio::test(flavor = "multi_thread")]
async fn delivers_over_verified_tls_to_a_real_mx_and_proves_it() -> anyhow::Result<()> {
    let bed = Bed::new().await?;
    let ip = loopback_ip(1);
    let port = free_port_on(&[ip])?;
    let leaf = bed.ca.leaf(&["mx1.example.test"])?;
    let mx = start_mx(
        SocketAddr::new(ip.into(), port),
        "mx1.example.test",
        MxTls::On(leaf.clone()),
    )
    .await?;
    bed.dns.mx("example.test", &[(10, "mx1.example.test")])?;
    bed.dns.address("mx1.example.test", IpAddr::V4(ip));

    let relay = bed.relay(port, 443, Default::default())?;
    let records = send(&relay, "example.test", &["bob@example.test"]).await;

    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(
        record.outcome,
        RecipientStatus::Delivered,
        "{record:#?}\n{}",
        mx.log()
    );
    assert_eq!(record.method, Some(Method::Webpki));
    assert_eq!(record.mx_host.as_deref(), Some("mx1.example.test"));
    assert_eq!(record.address.as_deref(), Some(&*format!("{ip}:{port}")));
    let tls = record.tls.as_ref().expect("TLS facts");
    assert!(tls.version.starts_with("TLSv1_"), "{tls:?}");
    let cert = tls.certificate.as_ref().expect("certificate facts");
    // The fingerprint openssl computes from the certificate the MX was given.
    let dir = tempfile::tempdir()?;
    let (cert_file, _) = leaf.write(dir.path(), "leaf")?;
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert_file)
        .output()?;
    let openssl = String::from_utf8(out.stdout)?;
    let openssl = openssl
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or("")
        .replace(':', "")
        .to_lowercase();
    assert_eq!(cert.leaf_sha256, openssl);
    assert!(cert.issuer.contains("Ferry Test CA"), "{cert:?}");
    assert_eq!(
        record.sha256,
        ferry_relay::tls::sha256_hex(BODY),
        "the record names the bytes sent"
    );

    // The MX's own account: TLS, and the message in its maildir, dot intact.
    let delivered = delivered(&mx, 1)?;
    let text = String::from_utf8_lossy(&delivered[0]);
    assert!(text.contains("The secret results.\n.leading dot"), "{text}");
    assert!(
        mx.log().contains("TLS connection established"),
        "{}",
        mx.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_byte_reaches_an_mx_without_starttls_or_with_a_bad_certificate() -> anyhow::Result<()> {
    let bed = Bed::new().await?;
    let ips: Vec<_> = (1..=4).map(loopback_ip).collect();
    let port = free_port_on(&ips)?;
    let hosts = [
        "plain.example.test",
        "selfsigned.example.test",
        "wrongname.example.test",
        "expired.example.test",
    ];
    let mxs = vec![
        start_mx(SocketAddr::new(ips[0].into(), port), hosts[0], MxTls::Off).await?,
        start_mx(
            SocketAddr::new(ips[1].into(), port),
            hosts[1],
            MxTls::On(self_signed(&[hosts[1]])?),
        )
        .await?,
        start_mx(
            SocketAddr::new(ips[2].into(), port),
            hosts[2],
            MxTls::On(bed.ca.leaf(&["other.example.test"])?),
        )
        .await?,
        start_mx(
            SocketAddr::new(ips[3].into(), port),
            hosts[3],
            MxTls::On(bed.ca.expired_leaf(&[hosts[3]])?),
        )
        .await?,
    ];
    let records: Vec<(u16, &str)> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (10 * (i as u16 + 1), *h))
        .collect();
    bed.dns.mx("example.test", &records)?;
    for (host, ip) in hosts.iter().zip(&ips) {
        bed.dns.address(host, IpAddr::V4(*ip));
    }

    let relay = bed.relay(port, 443, Default::default())?;
    let proof = send(&relay, "example.test", &["bob@example.test"]).await;

    assert_eq!(proof.len(), 4, "one record per MX tried: {proof:#?}");
    for (record, host) in proof.iter().zip(hosts) {
        assert_eq!(record.mx_host.as_deref(), Some(host), "preference order");
        assert!(
            matches!(record.outcome, RecipientStatus::Deferred(_)),
            "{record:#?}"
        );
        assert!(
            record.tls.is_none(),
            "no session reached verified TLS: {record:#?}"
        );
    }
    let reasons: Vec<String> = proof.iter().map(|r| format!("{:?}", r.outcome)).collect();
    assert!(reasons[0].contains("STARTTLS"), "{reasons:?}");
    assert!(
        reasons[1..].iter().all(|r| r.contains("TLS failed")),
        "{reasons:?}"
    );
    for mx in &mxs {
        let log = mx.log();
        assert!(!log.contains("client="), "no message was started:\n{log}");
        assert!(!log.contains("from=<alice@sender.test>"), "{log}");
        assert!(mx.delivered().is_empty());
    }
    // The MX without STARTTLS saw the EHLO and the QUIT, and nothing else.
    assert!(
        mxs[0].log().contains("ehlo=1 quit=1 commands=2"),
        "{}",
        mxs[0].log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_failure_holds_and_nonexistence_bounces() -> anyhow::Result<()> {
    let bed = Bed::new().await?;
    let relay = bed.relay(25, 443, Default::default())?;
    let recipients = ["bob@example.test"];

    bed.dns
        .set("example.test", RecordType::MX, Answer::ServFail);
    let held = send(&relay, "example.test", &recipients).await;
    assert!(
        matches!(&held[0].outcome, RecipientStatus::Deferred(why) if why.contains("held")),
        "{held:#?}"
    );
    assert!(
        held[0].mx_host.is_none(),
        "SERVFAIL must never lead to a connection"
    );

    let gone = send(&relay, "nowhere.test", &recipients).await;
    assert!(
        matches!(&gone[0].outcome, RecipientStatus::Bounced(why) if why.starts_with("5.1.2")),
        "{gone:#?}"
    );

    bed.dns.mx("nullmx.test", &[(0, ".")])?;
    let null = send(&relay, "nullmx.test", &recipients).await;
    assert!(
        matches!(&null[0].outcome, RecipientStatus::Bounced(why) if why.starts_with("5.1.10")),
        "{null:#?}"
    );
    Ok(())
}
