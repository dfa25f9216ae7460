//! `primitives [--gib N] [--repeats N]`: what an upload's real work costs on this host, one
//! core (AES-256-GCM, BLAKE3, CRC-32 per 64 KiB segment, and a memory copy), as one JSON line
//! of seconds per GiB. `bench-single-stream` runs it beside the upload it measures.

use anyhow::Result;
use clap::Parser;

/// Options.
#[derive(Parser)]
struct Args {
    /// GiB processed per primitive and repeat.
    #[arg(long, default_value_t = 1)]
    gib: usize,
    /// Repeats; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let costs = ferry_load::primitives::measure(args.gib << 30, args.repeats)?;
    println!("{}", costs.to_json());
    Ok(())
}
