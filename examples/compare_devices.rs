//! Compare devices from the library: read one or more ledgers (written by `tokenmill bench`),
//! print the comparison, and pick the device `--device auto` would use for that model.
//! Run: cargo run --release --example compare_devices -- [LEDGER...]

use tokenmill::gpu::list_adapters;
use tokenmill::ledger::{self, CompareOptions, Objective};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    if paths.is_empty() {
        paths.extend(ledger::default_ledger_path());
    }
    let loaded = ledger::load(&paths)?;
    for e in &loaded.errors {
        eprintln!("skipped {e}");
    }
    let comparison = ledger::compare(&loaded.records, &CompareOptions::default());
    println!("{}", comparison.to_text());
    let adapters = pollster::block_on(list_adapters());
    if let Some(record) = loaded.records.first() {
        let key = record.workload_key();
        for objective in [Objective::Throughput, Objective::Cost, Objective::Energy] {
            if let Some(sel) = ledger::select(&adapters, &loaded.records, &key, objective) {
                println!("by {}: {}", objective.name(), sel.reason);
            }
        }
    }
    Ok(())
}
