//! `tokenmill devices`: every adapter as a table, or JSON with --json.

use anyhow::Result;
use clap::Args;
use tokenmill::gpu::{list_adapters, AdapterDesc};

#[derive(Args)]
pub struct DevicesArgs {
    /// Print JSON (one array of adapter objects) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DevicesArgs) -> Result<()> {
    let adapters = pollster::block_on(list_adapters());
    if args.json {
        return super::print(&format!("{}\n", serde_json::to_string_pretty(&adapters)?));
    }
    if adapters.is_empty() {
        anyhow::bail!("no GPU adapter found; on Linux without a GPU run `source scripts/lavapipe.sh` for a CPU Vulkan driver");
    }
    super::print(&table(&adapters))
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
pub fn table(adapters: &[AdapterDesc]) -> String {
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
