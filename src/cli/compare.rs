//! `tokenmill compare LEDGER... [--baseline DEVICE] [--by vendor|device|backend] [--html PATH]`:
//! merges ledgers from several machines and compares devices on identical workloads.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokenmill::ledger::{self, CompareOptions, GroupBy};

#[derive(Args)]
pub struct CompareArgs {
    /// Ledger files (JSON lines) to merge; default: this user's ledger.
    ledgers: Vec<PathBuf>,
    /// Device to divide by in the ratios (its label or a part of it); default: the fastest.
    #[arg(long, value_name = "DEVICE")]
    baseline: Option<String>,
    /// Group devices by vendor, device (adapter name and backend) or backend.
    #[arg(long, default_value = "device", value_name = "vendor|device|backend")]
    by: GroupBy,
    /// Also write a self-contained HTML report (SVG chart per workload, then the table).
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
}

pub fn run(args: CompareArgs) -> Result<()> {
    let paths = if args.ledgers.is_empty() {
        let p = ledger::default_ledger_path()
            .context("no data directory (set HOME or XDG_DATA_HOME), so give ledger files")?;
        if !p.exists() {
            anyhow::bail!(
                "no ledger at {}; run `tokenmill bench` or name ledger files",
                p.display()
            );
        }
        vec![p]
    } else {
        args.ledgers
    };
    let loaded = ledger::load(&paths)?;
    for e in &loaded.errors {
        eprintln!("warning: {e} (line skipped)");
    }
    let opts = CompareOptions {
        by: args.by,
        baseline: args.baseline,
    };
    let comparison = ledger::compare(&loaded.records, &opts);
    super::print(&comparison.to_text())?;
    if let Some(path) = args.html {
        let sources = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let generated = format!(
            "{} · tokenmill {} · from {sources}",
            ledger::record::now_rfc3339(),
            env!("CARGO_PKG_VERSION")
        );
        std::fs::write(&path, ledger::report::html(&comparison, &generated))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
