//! The comparison as one self-contained HTML page: inline CSS, one inline SVG bar chart per
//! workload (decode and prefill tokens/s per device, min-max whiskers, values on the bars), then
//! the table. No scripts, fonts or other external resources.

use std::fmt::Write;

use super::compare::{fmt, row_cells, Comparison, DeviceRow, WorkloadGroup, COLUMNS};
use super::record::GroupBy;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar colour per vendor (their brand hues), neutral for mixed or unknown.
fn vendor_colour(vendor: Option<&str>) -> &'static str {
    match vendor.map(|v| v.to_ascii_lowercase()).as_deref() {
        Some("nvidia") => "#76b900",
        Some("amd") => "#e0322d",
        Some("intel") => "#0071c5",
        Some("apple") => "#8e8e93",
        Some("qualcomm") => "#3253dc",
        Some("arm") => "#0091bd",
        _ => "#7a869a",
    }
}

/// A round tick step (1, 2 or 5 times a power of ten) near `x`.
fn nice_step(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    let f = x / p;
    p * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn tick_label(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 300.0;
const PLOT_W: f64 = 560.0;
const BAR_H: f64 = 20.0;
const ROW_H: f64 = 30.0;
const TITLE_H: f64 = 30.0;
const AXIS_H: f64 = 44.0;

/// One horizontal bar panel starting at `top`; returns its height.
fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    rows: &[DeviceRow],
    baseline: Option<&str>,
    value: impl Fn(&DeviceRow) -> (f64, (f64, f64)),
) -> f64 {
    let max = rows
        .iter()
        .map(|r| {
            let (v, (_, hi)) = value(r);
            v.max(hi)
        })
        .fold(0.0, f64::max);
    let step = nice_step(max / 5.0);
    let top_val = ((max / step).ceil() * step).max(step);
    let x = |v: f64| LABEL_W + v / top_val * PLOT_W;
    let plot_top = top + TITLE_H;
    let plot_bottom = plot_top + rows.len() as f64 * ROW_H;
    let _ = write!(
        svg,
        r#"<text x="{LABEL_W}" y="{}" class="ptitle">{}</text>"#,
        top + 19.0,
        escape(title)
    );
    let mut t = 0.0;
    while t <= top_val + step * 0.01 {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{plot_top}" x2="{0:.1}" y2="{plot_bottom}" stroke="#e3e6ea"/><text x="{0:.1}" y="{1}" class="tick">{2}</text>"##,
            x(t),
            plot_bottom + 15.0,
            tick_label(t, step)
        );
        t += step;
    }
    let _ = write!(
        svg,
        r##"<line x1="{LABEL_W}" y1="{plot_top}" x2="{LABEL_W}" y2="{plot_bottom}" stroke="#6b7280"/><text x="{}" y="{}" class="axis">tokens/s (bar: median; line: min–max)</text>"##,
        LABEL_W + PLOT_W / 2.0,
        plot_bottom + 36.0
    );
    for (i, r) in rows.iter().enumerate() {
        let (v, (lo, hi)) = value(r);
        let y = plot_top + i as f64 * ROW_H + (ROW_H - BAR_H) / 2.0;
        let mid = y + BAR_H / 2.0;
        let is_base = baseline == Some(r.label.as_str());
        // Bold (baseline) text is wider: clip it shorter so it stays inside the label column.
        let label = if is_base {
            clip(&r.label, 33) + " ★"
        } else {
            clip(&r.label, 40)
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="label{}"><title>{}</title>{}</text>"#,
            LABEL_W - 10.0,
            mid + 4.5,
            if is_base { " base" } else { "" },
            escape(&r.label),
            escape(&label)
        );
        let _ = write!(
            svg,
            r#"<rect x="{LABEL_W}" y="{y:.1}" width="{:.1}" height="{BAR_H}" rx="2" fill="{}"/>"#,
            (x(v) - LABEL_W).max(1.0),
            vendor_colour(r.vendor.as_deref())
        );
        if r.runs > 1 && hi > lo {
            let _ = write!(
                svg,
                r##"<path d="M{0:.1} {2:.1}V{3:.1}M{0:.1} {4:.1}H{1:.1}M{1:.1} {2:.1}V{3:.1}" stroke="#1f2937" stroke-width="1.5" fill="none"/>"##,
                x(lo),
                x(hi),
                mid - 5.0,
                mid + 5.0,
                mid
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="value">{}</text>"#,
            x(v.max(hi)) + 6.0,
            mid + 4.5,
            fmt::rate(v)
        );
    }
    TITLE_H + rows.len() as f64 * ROW_H + AXIS_H
}

/// The SVG chart of one workload: a decode panel above a prefill panel, and a vendor legend.
pub fn chart(g: &WorkloadGroup) -> String {
    let mut body = String::new();
    let base = g.baseline.as_deref();
    let mut y = 8.0;
    y += panel(&mut body, y, "Decode", &g.rows, base, |r| {
        (r.decode_tok_s, r.decode_range)
    });
    y += 6.0;
    y += panel(&mut body, y, "Prefill", &g.rows, base, |r| {
        (r.prefill_tok_s, r.prefill_range)
    });
    let mut vendors: Vec<Option<&str>> = g.rows.iter().map(|r| r.vendor.as_deref()).collect();
    vendors.dedup();
    vendors.sort();
    vendors.dedup();
    let mut lx = WIDTH - 10.0;
    for v in vendors.iter().rev() {
        let name = v.unwrap_or("mixed");
        let w = 34.0 + 7.5 * name.chars().count() as f64;
        lx -= w;
        let _ = write!(
            body,
            r#"<rect x="{lx:.1}" y="12" width="12" height="12" rx="2" fill="{}"/><text x="{:.1}" y="22" class="legend">{}</text>"#,
            vendor_colour(*v),
            lx + 17.0,
            escape(name)
        );
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="{aria}">{body}</svg>"#,
        h = y.ceil(),
        aria = escape(&format!(
            "tokens per second per device, {}, {}",
            g.model_title(),
            g.workload_title()
        )),
    )
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;font-size:14px;margin:24px auto;max-width:1000px;color:#1f2937;background:#fff;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:0}
.meta,.sub{color:#6b7280;margin:4px 0 12px}
section{border-top:1px solid #e5e7eb;padding:18px 0 8px}
svg.chart{display:block;max-width:100%;height:auto}
svg text{font-family:inherit;font-size:13px;fill:#1f2937}
svg .label{text-anchor:end}
svg .base{font-weight:600}
svg .tick{text-anchor:middle;fill:#6b7280;font-size:11px}
svg .axis{text-anchor:middle;fill:#6b7280;font-size:12px}
svg .ptitle{font-weight:600;font-size:14px}
svg .value{font-size:12px;font-variant-numeric:tabular-nums}
svg .legend{font-size:12px}
table{border-collapse:collapse;margin:12px 0;font-size:13px;width:100%}
th,td{padding:5px 6px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;white-space:normal;vertical-align:bottom}
td.l,th.l{text-align:left}
.w{white-space:normal;text-align:left}
td{font-variant-numeric:tabular-nums}
ul{margin:6px 0;padding-left:20px}
.ratios li{font-variant-numeric:tabular-nums}
.notes li,.excluded td{color:#92400e}
";

/// An HTML table; columns in `left` are left-aligned, those in `wrap` may also wrap.
fn table(
    header: &[&str],
    rows: &[Vec<String>],
    left: &[usize],
    wrap: &[usize],
    class: &str,
) -> String {
    let cell = |tag: &str, i: usize, c: &str| {
        let cls = if wrap.contains(&i) {
            r#" class="w""#
        } else if left.contains(&i) {
            r#" class="l""#
        } else {
            ""
        };
        format!("<{tag}{cls}>{}</{tag}>", escape(c))
    };
    let mut s = format!(r#"<table class="{class}"><thead><tr>"#);
    for (i, h) in header.iter().enumerate() {
        s += &cell("th", i, h);
    }
    s += "</tr></thead><tbody>";
    for r in rows {
        s += "<tr>";
        for (i, c) in r.iter().enumerate() {
            s += &cell("td", i, c);
        }
        s += "</tr>";
    }
    s + "</tbody></table>"
}

fn list(items: &[String], class: &str) -> String {
    if items.is_empty() {
        return String::new();
    }
    let li: String = items
        .iter()
        .map(|i| format!("<li>{}</li>", escape(i)))
        .collect();
    format!(r#"<ul class="{class}">{li}</ul>"#)
}

/// The full HTML page for a comparison; `generated` is shown in the header (e.g. a timestamp).
pub fn html(c: &Comparison, generated: &str) -> String {
    let by = match c.by {
        GroupBy::Vendor => "vendor",
        GroupBy::Device => "device",
        GroupBy::Backend => "backend",
    };
    let ranked: usize = c.groups.iter().flat_map(|g| &g.rows).map(|r| r.runs).sum();
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    s += "<title>tokenmill device comparison</title><style>";
    s += CSS;
    s += "</style></head><body><h1>tokenmill device comparison</h1>";
    let _ = write!(
        s,
        r#"<p class="meta">grouped by {by} · {} workloads · {ranked} runs ranked · {} not ranked · {}</p>"#,
        c.groups.len(),
        c.excluded.len(),
        escape(generated)
    );
    if c.groups.is_empty() {
        s += "<p>No rankable records.</p>";
    }
    for g in &c.groups {
        let _ = write!(
            s,
            r#"<section class="workload"><h2>{}</h2><p class="sub">{}{}</p>"#,
            escape(&g.model_title()),
            escape(&g.workload_title()),
            g.baseline
                .as_ref()
                .filter(|_| g.rows.len() > 1)
                .map(|b| format!(" · baseline ★ {}", escape(b)))
                .unwrap_or_default()
        );
        s += &chart(g);
        let rows: Vec<Vec<String>> = g
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| row_cells(i + 1, r))
            .collect();
        s += &table(&COLUMNS, &rows, &[1], &[], "results");
        s += &list(&g.ratio_lines(), "ratios");
        s += &list(&g.notes, "notes");
        s += "</section>";
    }
    if !c.excluded.is_empty() {
        s += "<section><h2>Not ranked</h2>";
        let rows: Vec<Vec<String>> = c
            .excluded
            .iter()
            .map(|e| {
                vec![
                    e.device.clone(),
                    e.host.clone(),
                    e.time.clone(),
                    e.workload.clone(),
                    e.reason.clone(),
                ]
            })
            .collect();
        s += &table(
            &["device", "host", "time", "workload", "reason"],
            &rows,
            &[0, 1, 2],
            &[3, 4],
            "excluded",
        );
        s += "</section>";
    }
    if !c.notes.is_empty() {
        s += "<section><h2>Notes</h2>";
        s += &list(&c.notes, "notes");
        s += "</section>";
    }
    s + "</body></html>\n"
}
