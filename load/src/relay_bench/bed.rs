//! The bed both relays run in, from the relay tests' fixtures (`ferry-testkit`): a test CA
//! and its certificates, a DNS server on loopback, and ports free on several loopback
//! addresses at once.

use std::io::Write as _;
use std::net::IpAddr;

use anyhow::Context;
use ferry_testkit::ca::TestCa;
use ferry_testkit::dns::DnsServer;

use super::cli::{CertsArgs, DnsArgs, FreePortArgs};

/// `smtp_load certs`: the CA (`ca.pem`) and a certificate with its key for each
/// `STEM=NAME` (`STEM.crt`, `STEM.key`), in `--dir`.
pub fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let ca = TestCa::new()?;
    std::fs::write(args.dir.join("ca.pem"), ca.pem())?;
    for pair in &args.leaf {
        let (stem, name) = pair
            .split_once('=')
            .with_context(|| format!("--leaf {pair:?}: expected STEM=NAME"))?;
        ca.leaf(&[name])?.write(&args.dir, stem)?;
    }
    Ok(())
}

/// `smtp_load dns`: serves the zone given on the command line until killed. Prints
/// `dns listening on IP:PORT` once it answers.
pub async fn dns(args: &DnsArgs) -> anyhow::Result<()> {
    let server = DnsServer::start().await?;
    for pair in &args.mx {
        let (domain, host) = pair
            .split_once('=')
            .with_context(|| format!("--mx {pair:?}: expected DOMAIN=HOST"))?;
        server.mx(domain, &[(10, host)])?;
    }
    for pair in &args.a {
        let (host, ip) = pair
            .split_once('=')
            .with_context(|| format!("--a {pair:?}: expected HOST=IP"))?;
        let ip: IpAddr = ip.parse().with_context(|| format!("--a {pair:?}"))?;
        server.address(host, ip);
    }
    let mut out = std::io::stdout();
    writeln!(out, "dns listening on {}", server.addr())?;
    out.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}

/// `smtp_load free-port IP…`: a port free on every address (all sinks share the port the
/// relays deliver to).
pub fn free_port(args: &FreePortArgs) -> anyhow::Result<()> {
    let port = ferry_testkit::postfix::free_port_on(&args.ips)?;
    println!("{port}");
    Ok(())
}
