//! The test bed: Ferry (HTTP service, a tenant with a relay account and its domain
//! `hospital.test`) on one data directory, a test CA, a DNS server on loopback, Postfix MX
//! hosts on 127.0.0.x, and `ferry relay serve` pointed at them.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry_e2e::{Api, Server, ferry_bin, run_ferry};
use ferry_testkit::ChildGuard;
use ferry_testkit::ca::{Leaf, TestCa};
use ferry_testkit::dns::DnsServer;
use ferry_testkit::postfix::{MxTls, PostfixMx, free_port_on, loopback_ip};

/// `ferry relay serve` as a child; the SMTP address it printed.
fn start_relay(
    data: &std::path::Path,
    env: &[(String, String)],
) -> Result<(ChildGuard, SocketAddr)> {
    let mut child = Command::new(ferry_bin()?)
        .args(["relay", "serve"])
        .env("FERRY_DATA_DIR", data)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting ferry relay serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = ChildGuard::new(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("ferry relay listening on smtp://") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("ferry relay serve did not start listening")?;
    Ok((guard, addr.parse()?))
}

/// Ferry (HTTP service and relay account) on one data directory, a CA, DNS.
pub struct Bed {
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    pub data: std::path::PathBuf,
    pub ca: TestCa,
    pub ca_file: std::path::PathBuf,
    pub dns: DnsServer,
    pub server: Server,
    pub tenant: ferry_e2e::Tenant,
    pub user: String,
    pub password: String,
}

impl Bed {
    pub fn new() -> Result<Self> {
        Self::with_env(&[])
    }

    /// A bed whose Ferry runs with `env` (e.g. a PostgreSQL database).
    pub fn with_env(env: &[(&str, &str)]) -> Result<Self> {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-relay-e2e-")
            .tempdir()?;
        let data = dir.path().join("data");
        let ca = TestCa::new()?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        let dns = runtime.block_on(DnsServer::start())?;
        let server = Server::start_with_env(&data, env)?;
        let tenant = server.create_tenant("hospital")?;
        let created = run_ferry(
            &data,
            server.env(),
            &[
                "relay",
                "account",
                "create",
                "--tenant",
                &tenant.tenant_id,
                "--json",
            ],
        )?
        .expect_success()?;
        let account: serde_json::Value = serde_json::from_str(created.stdout.trim())?;
        let user = account["username"].as_str().unwrap_or_default().to_owned();
        let password = account["password"].as_str().unwrap_or_default().to_owned();
        // The tenant's mail server sends from hospital.test (and nothing else).
        run_ferry(
            &data,
            server.env(),
            &[
                "relay",
                "domain",
                "add",
                "--tenant",
                &tenant.tenant_id,
                "--domain",
                "hospital.test",
            ],
        )?
        .expect_success()?;
        Ok(Self {
            _runtime: runtime,
            _dir: dir,
            data,
            ca,
            ca_file,
            dns,
            server,
            tenant,
            user,
            password,
        })
    }

    /// A Postfix MX named `host` for `domain` on a fresh loopback address and `port`; DNS
    /// gets its A record.
    pub fn mx(
        &self,
        host: &str,
        domain: &str,
        port: u16,
        ip: std::net::Ipv4Addr,
        tls: MxTls,
    ) -> Result<PostfixMx> {
        let mx = PostfixMx::start(SocketAddr::new(ip.into(), port), host, &[domain], tls)?;
        self.dns.address(host, IpAddr::V4(ip));
        Ok(mx)
    }

    /// example.test's one MX, `mx1.example.test` on the first test address, with a
    /// certificate from the bed's CA; DNS answers its MX and A records. The MX, its port and
    /// its certificate.
    pub fn example_mx(&self) -> Result<(PostfixMx, u16, Leaf)> {
        let ip = loopback_ip(1);
        let port = free_port_on(&[ip])?;
        let leaf = self.ca.leaf(&["mx1.example.test"])?;
        let mx = self.mx(
            "mx1.example.test",
            "example.test",
            port,
            ip,
            MxTls::On(leaf.clone()),
        )?;
        self.dns.mx("example.test", &[(10, "mx1.example.test")])?;
        Ok((mx, port, leaf))
    }

    /// A DKIM key for hospital.test (selector `ferry1`) made with `ferry relay dkim-keygen`:
    /// the record to publish, `{name, record}`.
    pub fn dkim_key(&self, algorithm: &str) -> Result<serde_json::Value> {
        let keygen = run_ferry(
            &self.data,
            self.server.env(),
            &[
                "relay",
                "dkim-keygen",
                "--tenant",
                &self.tenant.tenant_id,
                "--domain",
                "hospital.test",
                "--selector",
                "ferry1",
                "--algorithm",
                algorithm,
                "--json",
            ],
        )?
        .expect_success()?;
        Ok(serde_json::from_str(keygen.stdout.trim())?)
    }

    /// `ferry relay serve` pointed at this bed, with `extra` settings.
    pub fn relay(&self, mx_port: u16, extra: &[(&str, &str)]) -> Result<(ChildGuard, SocketAddr)> {
        let mut env: Vec<(String, String)> = self.server.env().to_vec();
        for (key, value) in [
            ("FERRY_RELAY_LISTEN", "127.0.0.1:0".to_owned()),
            ("FERRY_RELAY_HOSTNAME", "relay.ferry.test".to_owned()),
            ("FERRY_RELAY_RESOLVER", self.dns.addr().to_string()),
            ("FERRY_RELAY_MX_PORT", mx_port.to_string()),
            ("FERRY_RELAY_CA_FILE", self.ca_file.display().to_string()),
        ] {
            env.push((key.to_owned(), value));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        start_relay(&self.data, &env)
    }

    /// swaks as the tenant's mail server: STARTTLS, AUTH PLAIN, one message.
    pub fn submit(&self, smtp: SocketAddr, from: &str, to: &str) -> Result<String> {
        self.submit_with(smtp, from, to, &[])
    }

    /// [`Bed::submit`] with more swaks arguments.
    pub fn submit_with(
        &self,
        smtp: SocketAddr,
        from: &str,
        to: &str,
        extra: &[&str],
    ) -> Result<String> {
        let output = Command::new("swaks")
            .args(["--server", &smtp.to_string(), "--timeout", "20", "-tls"])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                &self.user,
                "--auth-password",
                &self.password,
            ])
            .args(["--from", from, "--to", to])
            .args([
                "--header",
                "Subject: your results",
                "--body",
                "The results are ready.",
            ])
            .args(extra)
            .output()?;
        // swaks's own errors (a refused connection, a timeout) go to stderr: keep them.
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    pub fn audit(&self) -> Result<Vec<serde_json::Value>> {
        Api::new(self.server.url(), &self.tenant.api_key)?.audit_events()
    }
}

/// python3-dkim's verdict on `message` as an MX stored it (LF line ends back to CRLF, as it
/// crossed the wire), with the key record served for `name`.
pub fn dkim_verify(message: &[u8], name: &str, record: &str) -> Result<String> {
    const VERIFY: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
record = sys.argv[2].encode()
name = sys.argv[3].encode()
def dns(qname, timeout=5):
    return record if qname.rstrip(b'.') == name else None
print("ok" if dkim.verify(message, dnsfunc=dns) else "bad")
"#;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("m.eml");
    let text = String::from_utf8_lossy(message)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    std::fs::write(&file, text)?;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", VERIFY])
        .arg(&file)
        .arg(record)
        .arg(name)
        .output()?;
    ensure!(
        out.status.success(),
        "python3-dkim failed (scripts/install-test-tools installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Fails unless swaks's `transcript` ends with the relay's 250 for a queued message.
pub fn ensure_queued(transcript: &str) -> Result<()> {
    ensure!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    Ok(())
}

/// What `mx` received, once it holds at least `count` messages (within `within`); the MX's log
/// in the error otherwise.
pub fn wait_delivered(mx: &PostfixMx, count: usize, within: Duration) -> Result<Vec<Vec<u8>>> {
    ferry_testkit::eventually(within, || {
        let found = mx.delivered();
        ensure!(
            found.len() >= count,
            "{} of {count} messages delivered",
            found.len()
        );
        Ok(found)
    })
    .with_context(|| format!("--- MX log:\n{}", mx.log()))
}
