//! A real MX for the relay's tests: a private Postfix instance (Debian's, installed by
//! `scripts/install-test-tools`) listening on one loopback address and port, with or without
//! STARTTLS, delivering every accepted message into one maildir. Its log is the MX's own
//! account of what happened (TLS or not, what was received).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::ChildGuard;
use crate::ca::Leaf;

/// Debian's postfix command.
const POSTFIX: &str = "/usr/sbin/postfix";

/// Whether the MX offers STARTTLS, and with which certificate.
pub enum MxTls {
    /// No STARTTLS in the EHLO reply.
    Off,
    /// STARTTLS with this certificate.
    On(Leaf),
}

/// A running instance; stopped (and its directory removed) when dropped.
pub struct PostfixMx {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    master: Option<ChildGuard>,
}

/// A loopback address no other test in this machine's concurrent runs is likely to use:
/// `127.<pid-derived>.<counter>.<n>`.
pub fn loopback_ip(n: u8) -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let counter = NEXT.fetch_add(1, Ordering::Relaxed);
    let second = (std::process::id() % 250) as u8 + 2;
    Ipv4Addr::new(127, second, (counter % 250) as u8 + 1, n.max(1))
}

/// A port free on every one of `ips` right now (for MX hosts that must share one port: the
/// relay connects to every MX on the same port).
///
/// # Errors
/// No such port found after many tries.
pub fn free_port_on(ips: &[Ipv4Addr]) -> anyhow::Result<u16> {
    let first = *ips.first().context("no address")?;
    for _ in 0..50 {
        let probe = TcpListener::bind((first, 0))?;
        let port = probe.local_addr()?.port();
        if ips[1..]
            .iter()
            .all(|ip| TcpListener::bind((*ip, port)).is_ok())
        {
            return Ok(port);
        }
    }
    bail!("no port free on all of {ips:?}")
}

fn chown(user: &str, path: &Path) -> anyhow::Result<()> {
    let status = Command::new("chown").arg(user).arg(path).status()?;
    if !status.success() {
        bail!("chown {user} {} failed", path.display());
    }
    Ok(())
}

impl PostfixMx {
    /// Starts Postfix as `hostname` on `addr`, accepting mail for `domains`, and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// Postfix is missing, fails to start, or does not listen within 30 s (the error holds
    /// its log).
    pub fn start(
        addr: SocketAddr,
        hostname: &str,
        domains: &[&str],
        tls: MxTls,
    ) -> anyhow::Result<Self> {
        if !Path::new(POSTFIX).exists() {
            bail!("{POSTFIX} is missing: run scripts/install-test-tools");
        }
        let dir = tempfile::Builder::new().prefix("ferry-mx-").tempdir()?;
        let root = dir.path();
        // Postfix's daemons run as the postfix user: it must reach into the directory.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        for sub in ["etc", "spool", "data", "mail"] {
            std::fs::create_dir(root.join(sub))?;
        }
        chown("postfix", &root.join("data"))?;
        chown("nobody", &root.join("mail"))?;
        let d = root.display();
        let tls_lines = match &tls {
            MxTls::Off => "smtpd_tls_security_level = none\n".to_owned(),
            MxTls::On(leaf) => {
                let (cert, key) = leaf.write(&root.join("etc"), "mx")?;
                format!(
                    "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\n\
                     smtpd_tls_key_file = {}\nsmtpd_tls_loglevel = 1\n",
                    cert.display(),
                    key.display()
                )
            }
        };
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/spool\n\
             data_directory = {d}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = {hostname}\n\
             mydestination =\n\
             inet_interfaces = all\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             notify_classes =\n\
             biff = no\n\
             smtputf8_enable = no\n\
             virtual_mailbox_domains = {domains}\n\
             virtual_mailbox_base = {d}/mail\n\
             virtual_mailbox_maps = static:inbox/\n\
             virtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n\
             smtpd_recipient_restrictions = reject_unauth_destination\n\
             {tls_lines}",
            domains = domains.join(" "),
        );
        std::fs::write(root.join("etc/main.cf"), main_cf)?;
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master_cf = format!("{addr} inet n - n - - smtpd\n{}\n", services.join("\n"));
        std::fs::write(root.join("etc/master.cf"), master_cf)?;

        let master = Command::new(POSTFIX)
            .arg("-c")
            .arg(root.join("etc"))
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postfix")?;
        let mut mx = Self {
            dir,
            addr,
            master: Some(ChildGuard::new(master)),
        };
        let listening = crate::eventually(Duration::from_secs(30), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            Ok(())
        });
        if let Err(e) = listening {
            let log = mx.log();
            mx.stop();
            bail!("postfix did not listen on {addr}: {e}\n--- maillog:\n{log}");
        }
        Ok(mx)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The messages it delivered, as received (oldest first by file name).
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("mail/inbox/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .filter_map(|f| std::fs::read(f).ok())
            .collect()
    }

    fn stop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("abort")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.master.take();
    }
}

impl Drop for PostfixMx {
    fn drop(&mut self) {
        self.stop();
    }
}
