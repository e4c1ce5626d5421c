//! `tokenmill devices`: every adapter as a table beside the ledger's best measured decode rate,
//! or JSON with --json.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tokenmill::gpu::{list_adapters, AdapterDesc};
use tokenmill::ledger::{self, select::best_decode, Record};

#[derive(Args)]
pub struct DevicesArgs {
    /// Print JSON (one array of adapter objects) instead of a table.
    #[arg(long)]
    json: bool,
    /// Ledger whose figures are shown beside each adapter; default: this user's ledger.
    #[arg(long, value_name = "PATH")]
    ledger: Option<PathBuf>,
}

/// Records from `--ledger` (which must exist) or the default ledger (which may not yet).
fn ledger_records(path: Option<PathBuf>) -> Result<(Vec<Record>, Option<PathBuf>)> {
    let path = match path {
        Some(p) => p,
        None => match ledger::default_ledger_path().filter(|p| p.exists()) {
            Some(p) => p,
            None => return Ok((Vec::new(), None)),
        },
    };
    let loaded = ledger::load(std::slice::from_ref(&path))?;
    for e in &loaded.errors {
        eprintln!("warning: {e} (line skipped)");
    }
    Ok((loaded.records, Some(path)))
}

pub fn run(args: DevicesArgs) -> Result<()> {
    let adapters = pollster::block_on(list_adapters());
    if args.json {
        return super::print(&format!("{}\n", serde_json::to_string_pretty(&adapters)?));
    }
    if adapters.is_empty() {
        anyhow::bail!("no GPU adapter found; on Linux without a GPU run `source scripts/lavapipe.sh` for a CPU Vulkan driver");
    }
    let (records, path) = ledger_records(args.ledger)?;
    let mut out = table(&adapters, &records);
    let measured = adapters.iter().any(|d| best_decode(&records, d).is_some());
    if !measured {
        out += &match path {
            Some(p) => format!(
                "\nno passing ledger records for these adapters in {}; run `tokenmill bench` to measure\n",
                p.display()
            ),
            None => "\nno ledger yet; run `tokenmill bench` to measure these adapters\n".into(),
        };
    }
    super::print(&out)
}

/// `312.4 tok/s SmolLM2-135M q4_1 p128/g128`: the best measured decode rate, or `-`.
fn ledger_cell(records: &[Record], d: &AdapterDesc) -> String {
    match best_decode(records, d) {
        Some((v, r)) => format!(
            "{v:.1} tok/s {} {} p{}/g{}",
            r.model.name, r.model.quant, r.workload.prompt_tokens, r.workload.gen_tokens
        ),
        None => "-".into(),
    }
}

fn yes(d: &AdapterDesc, feature: &str) -> &'static str {
    if d.features.iter().any(|f| f == feature) {
        "yes"
    } else {
        "-"
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// A plain-text table, columns sized to their contents.
pub fn table(adapters: &[AdapterDesc], records: &[Record]) -> String {
    let header = [
        "#",
        "name",
        "vendor",
        "type",
        "backend",
        "driver",
        "f16",
        "subgroup",
        "timestamps",
        "max binding",
        "subgroup size",
        "ledger best decode",
    ];
    let rows: Vec<Vec<String>> = adapters
        .iter()
        .map(|d| {
            vec![
                d.index.to_string(),
                d.name.clone(),
                format!("{} ({:#06x})", d.vendor, d.vendor_id),
                format!(
                    "{}{}",
                    d.device_type,
                    if d.software { " (software)" } else { "" }
                ),
                d.backend.clone(),
                format!("{} {}", d.driver, d.driver_info).trim().to_string(),
                yes(d, "SHADER_F16").into(),
                yes(d, "SUBGROUP").into(),
                yes(d, "TIMESTAMP_QUERY").into(),
                mib(d.max_storage_buffer_binding_size),
                format!("{}-{}", d.subgroup_min_size, d.subgroup_max_size),
                ledger_cell(records, d),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        out += &line(r);
    }
    out
}
