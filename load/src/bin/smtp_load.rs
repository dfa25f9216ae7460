//! `smtp_load`: the Rust side of `load/bench-relay`, which measures an SMTP relay (Ferry's
//! `ferry relay serve`, or Postfix) end to end.
//!
//! - `smtp_load certs --dir D --leaf mx=mx.bench.test …`: a test CA and certificates;
//! - `smtp_load dns --mx bench.test=mx.bench.test --a mx.bench.test=127.77.0.1 …`: the
//!   testkit's DNS server on 127.0.0.1 with that zone, until killed (prints its address);
//! - `smtp_load free-port IP…`: a port free on all those loopback addresses;
//! - `smtp_load run --relay ADDR --sink ADDR …`: one timed run: N messages over C
//!   connections (STARTTLS, AUTH PLAIN when `--user` is given) to the relay, which delivers
//!   them to the sink MX this process runs; one JSON line on stdout (see
//!   `ferry_load::relay_bench::run`);
//! - `smtp_load table FILE`: Markdown tables from those JSON lines.
//!
//! Exit status: 0 on success, 1 when a run lost, duplicated or could not submit a message
//! (or a relay did not refuse a wrong certificate), 2 for bad arguments or a broken bed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_load::relay_bench::cli::{CertsArgs, DnsArgs, FreePortArgs, RunArgs, TableArgs};
use ferry_load::relay_bench::{bed, run, table};

/// Command line.
#[derive(Parser)]
#[command(
    name = "smtp_load",
    about = "SMTP relay benchmark: bed, load and sink, tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A test CA and server certificates signed by it.
    Certs(CertsArgs),
    /// A DNS server on 127.0.0.1 with a fixed zone, until killed.
    Dns(DnsArgs),
    /// A port free on all the given loopback addresses.
    FreePort(FreePortArgs),
    /// One timed run against one relay, with the sink MX in this process.
    Run(Box<RunArgs>),
    /// Markdown tables from the JSON lines of runs.
    Table(TableArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("smtp_load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Certs(args) => bed::certs(&args).map(|()| true),
        Command::Dns(args) => runtime.block_on(bed::dns(&args)).map(|()| true),
        Command::FreePort(args) => bed::free_port(&args).map(|()| true),
        Command::Run(args) => runtime.block_on(run::run(*args)),
        Command::Table(args) => table::table(&args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("smtp_load: {e:#}");
            ExitCode::from(2)
        }
    }
}
