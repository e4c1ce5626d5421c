//! Comparison across devices: records merged from any number of ledgers, grouped by identical
//! workload, devices grouped by vendor / device / backend, medians, spread and baseline ratios.
//! Records whose correctness failed are excluded with the reason; different workloads are never
//! ranked together.

use std::collections::BTreeMap;

use super::record::{short_hash, GroupBy, Record, WorkloadKey};
use super::stats::{median, min_max, relative_spread};

#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    pub by: GroupBy,
    /// A device label (or a case-insensitive part of one) to divide by; default: the fastest.
    pub baseline: Option<String>,
}

/// A record left out of the ranking, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Excluded {
    pub device: String,
    pub workload: String,
    pub time: String,
    pub host: String,
    pub reason: String,
}

/// One device group's figures within one workload: medians over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRow {
    pub label: String,
    /// The vendor when every run in the row has the same one (used for chart colours).
    pub vendor: Option<String>,
    pub runs: usize,
    pub decode_tok_s: f64,
    pub decode_range: (f64, f64),
    pub prefill_tok_s: f64,
    pub prefill_range: (f64, f64),
    /// (max - min) / median of decode tok/s.
    pub spread: Option<f64>,
    /// decode tok/s / the baseline's decode tok/s.
    pub ratio: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub usd_per_mtok: Option<f64>,
    pub joules_per_token: Option<f64>,
    pub roofline_fraction: Option<f64>,
}

/// All passing runs of one identical workload, fastest device first.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadGroup {
    pub key: WorkloadKey,
    pub model: String,
    pub architecture: String,
    pub parameters: u64,
    pub rows: Vec<DeviceRow>,
    /// Label of the row the ratios divide by, when there is one.
    pub baseline: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub by: GroupBy,
    pub groups: Vec<WorkloadGroup>,
    pub excluded: Vec<Excluded>,
    pub notes: Vec<String>,
}

/// `135M`, `7.2B`: a parameter count for titles.
pub fn format_params(n: u64) -> String {
    match n {
        0 => "? params".into(),
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{}M", (n as f64 / 1e6).round()),
        n => format!("{n}"),
    }
}

fn workload_text(k: &WorkloadKey) -> String {
    format!(
        "prompt {}, generate {}, batch {}, context {}",
        k.prompt_tokens, k.gen_tokens, k.batch, k.context
    )
}

impl WorkloadGroup {
    /// `SmolLM2-135M (llama, 135M) q4_1 [sha256:…]`, the model line of the group's heading.
    pub fn model_title(&self) -> String {
        format!(
            "{} ({}, {}) {} [{}]",
            self.model,
            self.architecture,
            format_params(self.parameters),
            self.key.quant,
            short_hash(&self.key.file_hash)
        )
    }

    /// `prompt 128, generate 128, batch 1, context 2048`.
    pub fn workload_title(&self) -> String {
        workload_text(&self.key)
    }

    /// `AMD (vulkan) / NVIDIA (vulkan) = 0.83x` for each device other than the baseline.
    pub fn ratio_lines(&self) -> Vec<String> {
        let Some(base) = &self.baseline else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter(|r| &r.label != base)
            .filter_map(|r| Some(format!("{} / {} = {:.2}x", r.label, base, r.ratio?)))
            .collect()
    }
}

fn usable(r: &Record) -> Result<(), String> {
    if !r.correctness.passed {
        let detail = r.correctness.detail.trim();
        return Err(if detail.is_empty() {
            "correctness check failed".into()
        } else {
            format!("correctness check failed: {detail}")
        });
    }
    let d = r.results.decode_tok_s;
    if !(d.is_finite() && d > 0.0) {
        return Err(format!("no usable decode throughput ({d} tok/s)"));
    }
    Ok(())
}

fn median_of(rs: &[&Record], f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
    median(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

fn device_row(label: String, rs: &[&Record]) -> DeviceRow {
    let decode: Vec<f64> = rs.iter().map(|r| r.results.decode_tok_s).collect();
    let prefill: Vec<f64> = rs.iter().map(|r| r.results.prefill_tok_s).collect();
    let vendor = rs
        .iter()
        .all(|r| r.adapter.vendor == rs[0].adapter.vendor)
        .then(|| rs[0].adapter.vendor.clone());
    DeviceRow {
        label,
        vendor,
        runs: rs.len(),
        decode_tok_s: median(&decode).unwrap_or(0.0),
        decode_range: min_max(&decode).unwrap_or((0.0, 0.0)),
        prefill_tok_s: median(&prefill).unwrap_or(0.0),
        prefill_range: min_max(&prefill).unwrap_or((0.0, 0.0)),
        spread: (rs.len() > 1).then(|| relative_spread(&decode)).flatten(),
        ratio: None,
        ttft_ms: median_of(rs, |r| Some(r.results.ttft_ms).filter(|t| *t > 0.0)),
        usd_per_mtok: median_of(rs, |r| r.cost.usd_per_mtok),
        joules_per_token: median_of(rs, |r| r.cost.joules_per_token),
        roofline_fraction: median_of(rs, |r| r.results.roofline_fraction),
    }
}

/// Which row the ratios divide by, or a note saying why there is none.
fn resolve_baseline(rows: &[DeviceRow], wanted: Option<&str>) -> Result<String, String> {
    let Some(w) = wanted else {
        return Ok(rows[0].label.clone());
    };
    if let Some(r) = rows.iter().find(|r| r.label.eq_ignore_ascii_case(w)) {
        return Ok(r.label.clone());
    }
    let lw = w.to_lowercase();
    let hits: Vec<&str> = rows
        .iter()
        .filter(|r| r.label.to_lowercase().contains(&lw))
        .map(|r| r.label.as_str())
        .collect();
    match hits.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "baseline `{w}` has no passing records for this workload (devices here: {}); no ratios",
            rows.iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "baseline `{w}` matches several devices here ({}); no ratios, give more of the name",
            many.join(", ")
        )),
    }
}

/// Groups, ranks and compares `records` (already merged from any number of ledgers).
pub fn compare(records: &[Record], opts: &CompareOptions) -> Comparison {
    let mut excluded = Vec::new();
    let mut by_key: BTreeMap<WorkloadKey, Vec<&Record>> = BTreeMap::new();
    for r in records {
        match usable(r) {
            Ok(()) => by_key.entry(r.workload_key()).or_default().push(r),
            Err(reason) => excluded.push(Excluded {
                device: r.device_key(opts.by),
                workload: format!(
                    "{} {} ({})",
                    r.model.name,
                    r.model.quant,
                    workload_text(&r.workload_key())
                ),
                time: r.time.clone(),
                host: r.host.name.clone(),
                reason,
            }),
        }
    }
    let mut groups = Vec::new();
    for (key, rs) in by_key {
        let mut devices: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for r in &rs {
            devices.entry(r.device_key(opts.by)).or_default().push(r);
        }
        let mut rows: Vec<DeviceRow> = devices
            .into_iter()
            .map(|(label, rs)| device_row(label, &rs))
            .collect();
        rows.sort_by(|a, b| b.decode_tok_s.total_cmp(&a.decode_tok_s));
        let mut notes = Vec::new();
        if rows.len() == 1 {
            notes.push(
                "only one device measured for this workload; nothing to rank it against".into(),
            );
        }
        let baseline = match resolve_baseline(&rows, opts.baseline.as_deref()) {
            Ok(b) => Some(b),
            Err(note) => {
                notes.push(note);
                None
            }
        };
        if let Some(b) = baseline.as_ref().filter(|_| rows.len() > 1) {
            let base = rows.iter().find(|r| &r.label == b).map(|r| r.decode_tok_s);
            for r in &mut rows {
                r.ratio = base.map(|d| r.decode_tok_s / d);
            }
        }
        let first = rs[0];
        groups.push(WorkloadGroup {
            key,
            model: first.model.name.clone(),
            architecture: first.model.architecture.clone(),
            parameters: first.model.parameters,
            rows,
            baseline,
            notes,
        });
    }
    // Readable order: by model name, then the workload's sizes.
    groups.sort_by(|a, b| {
        let k = |g: &WorkloadGroup| {
            (
                g.model.clone(),
                g.key.quant.clone(),
                g.key.prompt_tokens,
                g.key.gen_tokens,
                g.key.batch,
                g.key.context,
                g.key.file_hash.clone(),
            )
        };
        k(a).cmp(&k(b))
    });
    Comparison {
        by: opts.by,
        notes: separation_notes(&groups),
        groups,
        excluded,
    }
}

/// Says why groups of the same model are shown apart: the fields their workloads differ in.
fn separation_notes(groups: &[WorkloadGroup]) -> Vec<String> {
    let mut first_of: BTreeMap<&str, &WorkloadGroup> = BTreeMap::new();
    let mut notes = Vec::new();
    for g in groups {
        match first_of.get(g.model.as_str()) {
            None => {
                first_of.insert(&g.model, g);
            }
            Some(f) => notes.push(format!(
                "{}: [{}] and [{}] are not ranked together: they differ in {}",
                g.model,
                f.workload_title(),
                g.workload_title(),
                f.key.differences(&g.key).join(", ")
            )),
        }
    }
    notes
}

/// Number formats shared by the text table and the HTML report.
pub mod fmt {
    pub fn rate(x: f64) -> String {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    }
    pub fn usd(x: Option<f64>) -> String {
        match x {
            Some(x) if x >= 10.0 => format!("${x:.2}"),
            Some(x) => format!("${x:.3}"),
            None => "-".into(),
        }
    }
    pub fn joules(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{x:.3}"))
    }
    pub fn percent(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{:.0}%", x * 100.0))
    }
    pub fn spread(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
    }
    pub fn ratio(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{x:.2}x"))
    }
    pub fn ms(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{x:.0}"))
    }
}

/// Column headings of the comparison table.
pub const COLUMNS: [&str; 11] = [
    "#",
    "device",
    "runs",
    "decode tok/s",
    "prefill tok/s",
    "vs baseline",
    "TTFT ms",
    "USD/1M tok",
    "J/token",
    "roofline",
    "spread",
];

/// The table cells of one row, matching `COLUMNS`.
pub fn row_cells(rank: usize, r: &DeviceRow) -> Vec<String> {
    vec![
        rank.to_string(),
        r.label.clone(),
        r.runs.to_string(),
        fmt::rate(r.decode_tok_s),
        fmt::rate(r.prefill_tok_s),
        fmt::ratio(r.ratio),
        fmt::ms(r.ttft_ms),
        fmt::usd(r.usd_per_mtok),
        fmt::joules(r.joules_per_token),
        fmt::percent(r.roofline_fraction),
        fmt::spread(r.spread),
    ]
}

/// A plain-text table, columns sized to their contents (numbers right-aligned).
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let s = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w - c.chars().count();
                if i == 1 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        out += &line(r);
    }
    out
}

impl Comparison {
    /// The whole comparison as plain text: one table per workload, then exclusions and notes.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.groups.is_empty() {
            out += "no rankable records\n";
        }
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out += &format!("== {}\n   {}\n", g.model_title(), g.workload_title());
            let rows: Vec<Vec<String>> = g
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| row_cells(i + 1, r))
                .collect();
            out += &text_table(&COLUMNS, &rows);
            if let Some(b) = &g.baseline {
                if g.rows.len() > 1 {
                    let default = if self.baseline_is_default(g) {
                        " (fastest)"
                    } else {
                        ""
                    };
                    out += &format!("baseline: {b}{default}\n");
                }
            }
            for l in g.ratio_lines() {
                out += &format!("  {l}\n");
            }
            for n in &g.notes {
                out += &format!("note: {n}\n");
            }
        }
        if !self.excluded.is_empty() {
            let n = self.excluded.len();
            let s = if n == 1 { "" } else { "s" };
            out += &format!("\nnot ranked ({n} record{s}):\n");
            for e in &self.excluded {
                out += &format!(
                    "  {} on {} at {} [{}]: {}\n",
                    e.device, e.host, e.time, e.workload, e.reason
                );
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out += &format!("note: {n}\n");
            }
        }
        out
    }

    fn baseline_is_default(&self, g: &WorkloadGroup) -> bool {
        g.baseline.as_deref() == g.rows.first().map(|r| r.label.as_str())
    }
}
