//! A packet capture on loopback (Debian's tcpdump, installed by `scripts/install-test-tools`):
//! what really crossed the wire to some addresses and a port, as each TCP connection's bytes
//! in both directions. The relay's tests use it to show that an MX which may not be trusted
//! received nothing of a message — not from the relay's log, from the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::ChildGuard;

/// Debian's tcpdump.
const TCPDUMP: &str = "/usr/bin/tcpdump";

/// One TCP connection as captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// The side that connected.
    pub client: Option<SocketAddrV4>,
    /// The side it connected to (an address and port the capture watched).
    pub server: Option<SocketAddrV4>,
    /// Every payload byte the client sent, in order.
    pub to_server: Vec<u8>,
    /// Every payload byte the server sent, in order.
    pub to_client: Vec<u8>,
}

/// A running capture; [`Capture::stop`] ends it and reads what it saw.
pub struct Capture {
    child: ChildGuard,
    file: PathBuf,
    port: u16,
    servers: BTreeSet<Ipv4Addr>,
}

impl Capture {
    /// Captures TCP to and from `port` on `servers` on the loopback interface, into a file in
    /// `dir`; returns once tcpdump is listening.
    ///
    /// # Errors
    /// tcpdump is missing, lacks the right to capture (it needs root or CAP_NET_RAW), or did
    /// not start listening within 10 s.
    pub fn start(dir: &Path, servers: &[Ipv4Addr], port: u16) -> anyhow::Result<Self> {
        ensure!(
            Path::new(TCPDUMP).exists(),
            "{TCPDUMP} is missing (scripts/install-test-tools installs it)"
        );
        ensure!(!servers.is_empty(), "no address to watch");
        let hosts: Vec<String> = servers.iter().map(|ip| format!("host {ip}")).collect();
        let filter = format!("tcp and port {port} and ({})", hosts.join(" or "));
        let file = dir.join(format!("capture-{port}.pcap"));
        let mut child = Command::new(TCPDUMP)
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let stderr = child.stderr.take().context("tcpdump's stderr")?;
        let guard = ChildGuard::new(child);
        let (ready, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = ready.send(line);
            }
        });
        let mut said = Vec::new();
        loop {
            match listening.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => said.push(line),
                Err(_) => bail!("tcpdump did not start listening: {}", said.join(" | ")),
            }
        }
        Ok(Self {
            child: guard,
            file,
            port,
            servers: servers.iter().copied().collect(),
        })
    }

    /// Stops the capture (SIGINT: tcpdump flushes its file) and returns each connection seen,
    /// in the order they began.
    ///
    /// # Errors
    /// The file cannot be read or is not a pcap capture of Ethernet-framed IPv4.
    pub fn stop(mut self) -> anyhow::Result<Vec<Flow>> {
        let _ = Command::new("kill")
            .args(["-s", "INT"])
            .arg(self.child.id().to_string())
            .status();
        self.child.wait_timeout(Duration::from_secs(10))?;
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        self.flows(&bytes)
    }

    /// The connections in a pcap file's bytes.
    fn flows(&self, pcap: &[u8]) -> anyhow::Result<Vec<Flow>> {
        let header = pcap.get(..24).context("no pcap header")?;
        let little = match header.get(..4) {
            Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]) => true,
            Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]) => false,
            _ => bail!("not a pcap file"),
        };
        let word = |bytes: &[u8], at: usize| -> anyhow::Result<u32> {
            let four: [u8; 4] = bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .context("truncated pcap")?;
            Ok(if little {
                u32::from_le_bytes(four)
            } else {
                u32::from_be_bytes(four)
            })
        };
        ensure!(word(header, 20)? == 1, "not an Ethernet capture");
        // Per connection (by the client's port, in the order they began), and the sequence
        // numbers already taken in each direction: a retransmission carries nothing new.
        let mut flows: BTreeMap<u16, Flow> = BTreeMap::new();
        let mut order: Vec<u16> = Vec::new();
        let mut seen: BTreeSet<(u16, bool, u32)> = BTreeSet::new();
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let captured = usize::try_from(word(pcap, at + 8)?)?;
            let frame = pcap
                .get(at + 16..at + 16 + captured)
                .context("truncated packet")?;
            at += 16 + captured;
            let Some(segment) = Segment::parse(frame) else {
                continue;
            };
            let to_server =
                segment.dst.port() == self.port && self.servers.contains(segment.dst.ip());
            let (client, server) = if to_server {
                (segment.src, segment.dst)
            } else {
                (segment.dst, segment.src)
            };
            let flow = flows.entry(client.port()).or_insert_with(|| {
                order.push(client.port());
                Flow {
                    client: Some(client),
                    server: Some(server),
                    ..Flow::default()
                }
            });
            if segment.payload.is_empty() || !seen.insert((client.port(), to_server, segment.seq)) {
                continue;
            }
            let side = if to_server {
                &mut flow.to_server
            } else {
                &mut flow.to_client
            };
            side.extend_from_slice(segment.payload);
        }
        Ok(order.iter().filter_map(|port| flows.remove(port)).collect())
    }
}

/// One TCP segment of an Ethernet frame.
struct Segment<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    payload: &'a [u8],
}

impl<'a> Segment<'a> {
    /// `None` for anything but IPv4 TCP.
    fn parse(frame: &'a [u8]) -> Option<Self> {
        if frame.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ip = frame.get(14..)?;
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        if ip.get(9)? != &6 || ihl < 20 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?));
        let address = |at: usize| -> Option<Ipv4Addr> {
            let four: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(four))
        };
        let (src_ip, dst_ip) = (address(12)?, address(16)?);
        let tcp = ip.get(ihl..total.max(ihl))?;
        let port = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(tcp.get(at..at + 2)?.try_into().ok()?))
        };
        let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
        let offset = usize::from(tcp.get(12)? >> 4) * 4;
        Some(Segment {
            src: SocketAddrV4::new(src_ip, port(0)?),
            dst: SocketAddrV4::new(dst_ip, port(2)?),
            seq,
            payload: tcp.get(offset..)?,
        })
    }
}
