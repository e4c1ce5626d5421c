//! Subcommands. Each lives in its own module; this file only parses and dispatches.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod chat;
mod compare;
mod devices;
mod load;
mod profile;
mod run;
mod tune;

#[derive(Parser)]
#[command(
    name = "tokenmill",
    version,
    about = "Portable LLM inference on any GPU (wgpu: Vulkan, Metal, DX12, WebGPU)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt, streamed to stdout.
    Run(run::RunArgs),
    /// Benchmark every selected adapter on one workload and append the results to the ledger.
    Bench(bench::BenchArgs),
    /// Interactive multi-turn chat (the KV cache is kept between turns).
    Chat(chat::ChatArgs),
    /// List every GPU adapter on every backend with its features and limits.
    Devices(devices::DevicesArgs),
    /// Merge ledgers and compare devices on identical workloads (table, optional HTML report).
    Compare(compare::CompareArgs),
    /// Per-kernel time of one decode step and one prefill chunk (timestamps or wall clock).
    Profile(profile::ProfileArgs),
    /// Time kernel launch shapes for the model on this device and cache the fastest.
    Tune(tune::TuneArgs),
}

pub fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Tune(args) => tune::run(args),
    }
}

/// Write to stdout; a closed pipe (`| head`) ends output quietly instead of panicking.
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
