//! The options of `smtp_load`. As with `loadgen`, they live in the library so a run reads
//! them directly, and most of them are copied into its JSON line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::units::{parse_duration, parse_size};

/// `smtp_load certs`: a fresh test CA and server certificates signed by it.
#[derive(Args, Clone, Debug)]
pub struct CertsArgs {
    /// Directory to write `ca.pem`, `STEM.crt` and `STEM.key` into.
    #[arg(long)]
    pub dir: PathBuf,
    /// A certificate for NAME written as STEM.crt / STEM.key (repeatable), e.g.
    /// `mx=mx.bench.test`.
    #[arg(long, value_name = "STEM=NAME")]
    pub leaf: Vec<String>,
}

/// `smtp_load dns`: the testkit's DNS server on 127.0.0.1, with a fixed zone.
#[derive(Args, Clone, Debug)]
pub struct DnsArgs {
    /// `DOMAIN MX 10 HOST` (repeatable).
    #[arg(long, value_name = "DOMAIN=HOST")]
    pub mx: Vec<String>,
    /// `HOST A IP` (repeatable).
    #[arg(long, value_name = "HOST=IP")]
    pub a: Vec<String>,
}

/// `smtp_load free-port`: one port free on all the given addresses.
#[derive(Args, Clone, Debug)]
pub struct FreePortArgs {
    /// Loopback addresses that must all have the port free.
    #[arg(required = true)]
    pub ips: Vec<Ipv4Addr>,
}

/// `smtp_load run`: one timed run against one relay, with the sink MX in the same process.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The relay's SMTP address (submission: STARTTLS required).
    #[arg(long)]
    pub relay: SocketAddr,
    /// The name the relay's certificate must carry.
    #[arg(long, default_value = "relay.bench.test")]
    pub relay_name: String,
    /// PEM trust roots for the relay's certificate (the bed's CA).
    #[arg(long)]
    pub ca: PathBuf,
    /// SMTP AUTH PLAIN user (Ferry's relay account); without it no AUTH is sent.
    #[arg(long)]
    pub user: Option<String>,
    /// SMTP AUTH PLAIN password; also read from SMTP_LOAD_PASSWORD.
    #[arg(long, env = "SMTP_LOAD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Where the sink MX listens (the address DNS or the transport map gives the relay).
    #[arg(long)]
    pub sink: SocketAddr,
    /// The sink's host name (greeting, EHLO).
    #[arg(long, default_value = "mx.bench.test")]
    pub sink_name: String,
    /// The sink's certificate chain (PEM).
    #[arg(long)]
    pub sink_cert: PathBuf,
    /// The sink's key (PEM).
    #[arg(long)]
    pub sink_key: PathBuf,
    /// Messages to submit.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub messages: usize,
    /// Body size of each message (headers add about 300 bytes), e.g. 1KB, 10MB.
    #[arg(long, default_value = "1KB", value_parser = parse_size)]
    pub size: u64,
    /// Concurrent submission connections.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub concurrency: usize,
    /// Envelope and header sender.
    #[arg(long, default_value = "bench@sender.bench.test")]
    pub from: String,
    /// Recipients' domain (its MX is the sink).
    #[arg(long, default_value = "bench.test")]
    pub to_domain: String,
    /// Tag of this run's `X-Bench-Id`s and Message-IDs; must differ between runs against
    /// one relay (default: from the clock and the pid).
    #[arg(long)]
    pub tag: Option<String>,
    /// Seed of the body bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pid of the relay (Postfix: its master); memory and CPU of it and its descendants.
    #[arg(long)]
    pub relay_pid: Option<u32>,
    /// How long to wait, after the last submission, for every accepted message to arrive.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// After the last arrival, how long the relay's CPU is still counted (its bookkeeping
    /// after the delivery: Ferry's commit, Postfix's queue file removal).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub settle: Duration,
    /// Check that the relay refuses the sink's certificate instead: nothing may arrive, and
    /// the sink must see a failed handshake.
    #[arg(long)]
    pub expect_refusal: bool,
    /// With --expect-refusal: how long to wait for the failed handshake.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub refusal_wait: Duration,
    /// Label of the relay in the JSON line (ferry, postfix).
    #[arg(long, default_value = "relay")]
    pub label: String,
    /// Label of the data location in the JSON line (disk, shm).
    #[arg(long, default_value = "")]
    pub location: String,
    /// Run number in the JSON line.
    #[arg(long, default_value_t = 1)]
    pub run: u32,
}

/// `smtp_load table`: Markdown tables from the JSON lines of `smtp_load run`.
#[derive(Args, Clone, Debug)]
pub struct TableArgs {
    /// File of JSON lines (`-`: standard input).
    pub file: PathBuf,
    /// Label of the relay compared against (the ratios' denominator).
    #[arg(long, default_value = "postfix")]
    pub baseline: String,
}
