//! The device ledger without a GPU: records, files (malformed lines, concurrent appends),
//! comparison, HTML report, cost and selection.

mod ledger_fixtures;

use std::path::{Path, PathBuf};

use ledger_fixtures::*;
use tokenmill::ledger::{
    self, compare, cost, record, report, select, Basis, Build, CompareOptions, Correctness, Cost,
    GroupBy, Objective, WorkloadKey, SCHEMA_VERSION,
};

#[test]
fn record_round_trips() {
    let mut r = with_cost(rec(&amd(), SMOL, 128, 210.5), 1.2, 300.0);
    r.cost.power_source =
        Some("hwmon:/sys/class/drm/card1/device/hwmon/hwmon3/power1_average".into());
    let line = r.to_json_line().unwrap();
    assert!(!line.contains('\n'));
    let back = ledger::parse(line.as_bytes(), "mem");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.records, vec![r.clone()]);
    // A record without cost figures (and without the cost object) reads back too.
    let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v.as_object_mut().unwrap().remove("cost");
    let back = ledger::parse(v.to_string().as_bytes(), "mem");
    assert_eq!(back.records[0].cost, Cost::default());
    assert_eq!(back.records[0].results, r.results);
}

#[test]
fn time_and_hash_formats() {
    assert_eq!(record::rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        record::rfc3339_from_unix(951_782_400),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        record::rfc3339_from_unix(1_777_000_000),
        "2026-04-24T03:06:40Z"
    );
    assert_eq!(record::short_hash(SMOL), "sha256:5f1e0c1a9b7d…");
    let now = record::now_rfc3339();
    assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    assert!(!Build::current().commit.is_empty());
}

#[test]
fn default_ledger_lives_in_the_data_dir() {
    let p = ledger::default_ledger_path().expect("HOME is set in tests");
    assert!(p.ends_with("tokenmill/ledger.jsonl"), "{}", p.display());
    assert!(p.is_absolute());
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let dir = scratch("malformed");
    let path = dir.join("ledger.jsonl");
    let good = rec(&nvidia(), SMOL, 128, 300.0);
    let mut newer: serde_json::Value = serde_json::to_value(&good).unwrap();
    newer["schema_version"] = (SCHEMA_VERSION + 1).into();
    let mut missing: serde_json::Value = serde_json::to_value(&good).unwrap();
    missing.as_object_mut().unwrap().remove("results");
    let lines = [
        good.to_json_line().unwrap(),
        "{\"schema_version\": 1, \"time\": ".into(),
        String::new(),
        missing.to_string(),
        newer.to_string(),
        "[1, 2, 3]".into(),
        good.to_json_line().unwrap(),
    ];
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe\n");
    std::fs::write(&path, bytes).unwrap();
    let loaded = ledger::load(&[&path]).unwrap();
    assert_eq!(loaded.records.len(), 2);
    let at: Vec<usize> = loaded.errors.iter().map(|e| e.line).collect();
    assert_eq!(at, vec![2, 4, 5, 6, 8]);
    let file = path.display().to_string();
    assert!(loaded.errors.iter().all(|e| e.file == file));
    let msg: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        msg[0].starts_with(&format!("{file}:2: not a JSON object")),
        "{}",
        msg[0]
    );
    assert!(msg[1].contains("missing field `results`"), "{}", msg[1]);
    assert!(
        msg[2].contains("newer than this tokenmill reads"),
        "{}",
        msg[2]
    );
    assert!(msg[4].contains("UTF-8"), "{}", msg[4]);
    // An unreadable file is an error naming it.
    let err = ledger::load(&[dir.join("absent.jsonl")]).unwrap_err();
    assert!(err.to_string().contains("absent.jsonl"), "{err}");
}

#[test]
fn append_closes_off_a_torn_last_line() {
    let dir = scratch("torn");
    let path = dir.join("sub/ledger.jsonl");
    let r = rec(&amd(), SMOL, 128, 200.0);
    ledger::append(&path, &r).unwrap();
    let mut torn = std::fs::read(&path).unwrap();
    torn.extend_from_slice(b"{\"schema_version\":1,\"ti");
    std::fs::write(&path, torn).unwrap();
    ledger::append(&path, &r).unwrap();
    let loaded = ledger::load(&[&path]).unwrap();
    assert_eq!(loaded.records, vec![r.clone(), r]);
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!(loaded.errors[0].line, 2);
}

/// Appends `count` records tagged `writer` through `ledger::append`, with lines up to ~10 KB.
fn append_many(path: &Path, writer: &str, count: u32) {
    let base = rec(&intel(), SMOL, 128, 100.0);
    for i in 0..count {
        let mut r = base.clone();
        r.host.name = writer.to_string();
        r.workload.gen_tokens = i;
        r.correctness.detail = "x".repeat((i as usize % 6) * 2000);
        ledger::append(path, &r).unwrap();
    }
}

const WORKER_ENV: &str = "TOKENMILL_LEDGER_APPEND_WORKER";

/// The body of a child process in `concurrent_appends_never_corrupt`; a no-op otherwise.
#[test]
fn append_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (path, rest) = spec.split_once('|').unwrap();
    let (writer, count) = rest.split_once('|').unwrap();
    let count: u32 = count.parse().unwrap();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (path, writer) = (PathBuf::from(path), format!("{writer}-t{t}"));
            std::thread::spawn(move || append_many(&path, &writer, count))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn concurrent_appends_never_corrupt() {
    let dir = scratch("concurrent");
    let path = dir.join("ledger.jsonl");
    let (procs, per_thread) = (4, 250u32);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            std::process::Command::new(&exe)
                .args([
                    "append_worker",
                    "--exact",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(WORKER_ENV, format!("{}|p{p}|{per_thread}", path.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || append_many(&path, &format!("main-t{t}"), per_thread))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let loaded = ledger::load(&[&path]).unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", &loaded.errors[..1]);
    let writers = procs * 2 + 4;
    assert_eq!(loaded.records.len(), writers * per_thread as usize);
    let mut seen = std::collections::HashSet::new();
    for r in &loaded.records {
        assert_eq!(
            r.correctness.detail.len(),
            (r.workload.gen_tokens as usize % 6) * 2000
        );
        assert!(
            seen.insert((r.host.name.clone(), r.workload.gen_tokens)),
            "duplicate"
        );
    }
}

#[test]
fn ledgers_from_two_machines_merge() {
    let dir = scratch("merge");
    let (a, b) = (dir.join("nvidia.jsonl"), dir.join("amd.jsonl"));
    for d in [300.0, 310.0, 290.0] {
        ledger::append(&a, &rec(&nvidia(), SMOL, 128, d)).unwrap();
    }
    ledger::append_all(
        &b,
        &[rec(&amd(), SMOL, 128, 249.0), rec(&amd(), SMOL, 128, 251.0)],
    )
    .unwrap();
    let loaded = ledger::load(&[&a, &b]).unwrap();
    assert_eq!(loaded.records.len(), 5);
    let opts = CompareOptions {
        by: GroupBy::Vendor,
        baseline: Some("nvidia".into()),
    };
    let c = compare(&loaded.records, &opts);
    assert_eq!(c.groups.len(), 1);
    let g = &c.groups[0];
    assert_eq!(g.rows.len(), 2);
    assert_eq!((g.rows[0].label.as_str(), g.rows[0].runs), ("NVIDIA", 3));
    assert_eq!(g.rows[0].decode_tok_s, 300.0);
    assert_eq!(g.rows[0].decode_range, (290.0, 310.0));
    assert!((g.rows[0].spread.unwrap() - 20.0 / 300.0).abs() < 1e-12);
    assert_eq!(g.baseline.as_deref(), Some("NVIDIA"));
    assert_eq!(g.ratio_lines(), vec!["AMD / NVIDIA = 0.83x".to_string()]);
    let text = c.to_text();
    assert!(text.contains("AMD / NVIDIA = 0.83x"), "{text}");
    // By device the labels carry the adapter name and backend.
    let c = compare(&loaded.records, &CompareOptions::default());
    assert_eq!(c.groups[0].rows[1].label, "AMD Radeon RX 7900 XTX (vulkan)");
}

#[test]
fn different_workloads_are_never_ranked_together() {
    let records = vec![
        rec(&nvidia(), SMOL, 128, 300.0),
        rec(&amd(), SMOL, 512, 280.0),
        rec(&amd(), LLAMA, 128, 90.0),
    ];
    let c = compare(&records, &CompareOptions::default());
    assert_eq!(c.groups.len(), 3);
    for g in &c.groups {
        assert_eq!(g.rows.len(), 1, "{:?}", g.key);
        assert!(g.notes[0].contains("only one device"));
        assert!(g.ratio_lines().is_empty());
        let keys: std::collections::HashSet<WorkloadKey> = records
            .iter()
            .filter(|r| r.device_key(GroupBy::Device) == g.rows[0].label)
            .map(|r| r.workload_key())
            .collect();
        assert!(keys.contains(&g.key));
    }
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    assert!(c.notes[0].contains("not ranked together"), "{}", c.notes[0]);
    assert!(
        c.notes[0].contains("prompt tokens (128 vs 512)"),
        "{}",
        c.notes[0]
    );
    // Different models: file hash and quant both named.
    let d = key(SMOL, 128).differences(&key(LLAMA, 128));
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].starts_with("model file hash"));
}

#[test]
fn failed_records_are_excluded_with_the_reason() {
    let mut bad = rec(&intel(), SMOL, 128, 500.0);
    bad.correctness = Correctness {
        passed: false,
        detail: "token 3: got 1234, reference 42".into(),
    };
    let mut zero = rec(&amd(), SMOL, 128, 0.0);
    zero.results.decode_tok_s = 0.0;
    let records = vec![rec(&nvidia(), SMOL, 128, 300.0), bad, zero];
    let opts = CompareOptions {
        by: GroupBy::Device,
        baseline: Some("Arc".into()),
    };
    let c = compare(&records, &opts);
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].rows.len(), 1);
    assert_eq!(c.excluded.len(), 2);
    assert!(c.excluded[0].device.starts_with("Intel"));
    assert_eq!(
        c.excluded[0].reason,
        "correctness check failed: token 3: got 1234, reference 42"
    );
    assert!(c.excluded[1].reason.contains("no usable decode throughput"));
    // The baseline asked for has only failed records here: said so, no ratios.
    assert!(c.groups[0].baseline.is_none());
    assert!(c.groups[0]
        .notes
        .iter()
        .any(|n| n.contains("baseline `Arc` has no passing records")));
    let text = c.to_text();
    assert!(text.contains("not ranked (2 records)"), "{text}");
}

#[test]
fn html_report_has_one_chart_per_workload() {
    let c = compare(
        &sample_ledger(),
        &CompareOptions {
            by: GroupBy::Device,
            baseline: Some("RTX 4090".into()),
        },
    );
    assert_eq!(c.groups.len(), 3);
    let html = report::html(&c, "2026-05-01T00:00:00Z");
    assert_eq!(html.matches("<svg").count(), c.groups.len());
    assert_eq!(html.matches("</svg>").count(), c.groups.len());
    assert_eq!(
        html.matches("<table class=\"results\"").count(),
        c.groups.len()
    );
    // Self-contained: no scripts, links, images or fetched URLs.
    for banned in [
        "<script", "<link", "<img", "src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(banned), "{banned}");
    }
    assert!(html.contains("Intel(R) Arc(tm) A770 Graphics (vulkan)"));
    assert!(
        html.contains("AMD Radeon RX 7900 XTX (vulkan) / NVIDIA GeForce RTX 4090 (vulkan) = 0.85x")
    );
    assert!(html.contains("top-5 logits differ"));
    assert!(report::escape("<a & 'b'>") == "&lt;a &amp; &#39;b&#39;&gt;");
    // Kept for a look in a browser, and the sample as a ledger to try `tokenmill compare` on.
    let dir = scratch("sample");
    std::fs::write(dir.join("report.html"), &html).unwrap();
    ledger::append_all(&dir.join("ledger.jsonl"), &sample_ledger()).unwrap();
}

#[test]
fn cost_per_token() {
    // $3.60/h at 1000 tok/s: $0.001 per 1000 tokens, $1 per 1M.
    assert!((cost::usd_per_million_tokens(3.6, 1000.0).unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(cost::joules_per_token(300.0, 150.0), Some(2.0));
    assert_eq!(cost::usd_per_million_tokens(1.0, 0.0), None);
    assert_eq!(cost::joules_per_token(f64::NAN, 10.0), None);
    let c = Cost::from_inputs(None, Some((250.0, "given".into())), 125.0);
    assert_eq!((c.usd_per_mtok, c.joules_per_token), (None, Some(2.0)));
}

#[test]
fn power_sensor_from_sysfs() {
    let sys = scratch("sysfs");
    assert!(cost::find_gpu_power_sensor_in(&sys, 0x1002, 0x744c).is_none());
    let card = sys.join("class/drm/card1/device");
    std::fs::create_dir_all(card.join("hwmon/hwmon4")).unwrap();
    std::fs::create_dir_all(sys.join("class/drm/card1-DP-1")).unwrap();
    std::fs::write(card.join("vendor"), "0x1002\n").unwrap();
    std::fs::write(card.join("device"), "0x744c\n").unwrap();
    // Present but unreadable as a number: not a sensor.
    std::fs::write(card.join("hwmon/hwmon4/power1_average"), "n/a\n").unwrap();
    assert!(cost::find_gpu_power_sensor_in(&sys, 0x1002, 0x744c).is_none());
    std::fs::write(card.join("hwmon/hwmon4/power1_input"), "212000000\n").unwrap();
    let s = cost::find_gpu_power_sensor_in(&sys, 0x1002, 0x744c).unwrap();
    assert_eq!(s.kind, cost::SensorKind::Microwatts);
    assert!(s.source().starts_with("hwmon:") && s.source().ends_with("power1_input"));
    assert!(cost::find_gpu_power_sensor_in(&sys, 0x10de, 0x2684).is_none());
    let meter = cost::PowerMeter::start(s, std::time::Duration::from_millis(5));
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(meter.stop(), Some(212.0));
    // Intel: the RAPL uncore energy counter.
    let zone = sys.join("class/powercap/intel-rapl:0:1");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "uncore\n").unwrap();
    std::fs::write(zone.join("energy_uj"), "1000\n").unwrap();
    let s = cost::find_gpu_power_sensor_in(&sys, 0x8086, 0x56a0).unwrap();
    assert_eq!(s.kind, cost::SensorKind::Microjoules);
    assert!(s.source().starts_with("powercap:"));
}

#[test]
fn selection_picks_the_measured_best_per_objective() {
    let present = [nvidia(), amd(), intel(), lavapipe()];
    let mut records = sample_ledger();
    // Records of an adapter not present, and a failing record, never decide.
    let mut absent = rec(&nvidia(), SMOL, 128, 9000.0);
    absent.adapter.name = "NVIDIA H100".into();
    records.push(absent);
    let k = key(SMOL, 128);
    let pick = |o| select(&present, &records, &k, o).unwrap();
    let t = pick(Objective::Throughput);
    assert_eq!(t.index, 0, "{}", t.reason);
    assert!(t.reason.contains("310.0 decode tok/s"), "{}", t.reason);
    assert!(matches!(
        t.basis,
        Basis::Measured {
            exact: true,
            runs: 3,
            ..
        }
    ));
    // Cost: $0.25/h at ~151 tok/s beats $0.69/h at ~310 tok/s.
    let c = pick(Objective::Cost);
    assert_eq!(c.index, 2, "{}", c.reason);
    // Energy: 300 W / 262 tok/s (1.15 J) vs 320 W / 310 (1.03 J) vs 190 W / 151 (1.26 J).
    let e = pick(Objective::Energy);
    assert_eq!(e.index, 0, "{}", e.reason);
    // A driver update keeps the records; the same GPU through another backend does not match.
    let mut changed = present.clone();
    changed[0].driver_info = "2.0".into();
    assert_eq!(
        select(&changed, &records, &k, Objective::Throughput)
            .unwrap()
            .index,
        0
    );
    changed[0].backend = "gl".into();
    assert_eq!(
        select(&changed, &records, &k, Objective::Throughput)
            .unwrap()
            .index,
        1
    );
    // A workload not measured: the same model's nearest measured workload.
    let s = select(&present, &records, &key(LLAMA, 400), Objective::Throughput).unwrap();
    assert_eq!(s.index, 0, "{}", s.reason);
    match &s.basis {
        Basis::Measured {
            exact, workload, ..
        } => {
            assert!(!exact);
            assert_eq!(workload.prompt_tokens, 512);
        }
        Basis::Rule => panic!("expected a measured choice"),
    }
}

#[test]
fn selection_without_cost_figures_uses_throughput() {
    let present = [amd(), intel()];
    let records = vec![
        rec(&amd(), SMOL, 128, 200.0),
        rec(&intel(), SMOL, 128, 150.0),
    ];
    let s = select(&present, &records, &key(SMOL, 128), Objective::Cost).unwrap();
    assert_eq!(s.index, amd().index);
    assert!(s.reason.contains("cost figures missing"), "{}", s.reason);
}

#[test]
fn selection_falls_back_to_the_rule() {
    let integrated = adapter(
        5,
        "Intel(R) UHD Graphics 770",
        "Intel",
        0x8086,
        "IntegratedGpu",
    );
    let present = [lavapipe(), integrated.clone(), amd()];
    // Only failing records and records of other models: the rule decides.
    let mut failed = rec(&lavapipe(), SMOL, 128, 30.0);
    failed.correctness.passed = false;
    let records = vec![failed, rec(&lavapipe(), LLAMA, 128, 5.0)];
    let s = select(&present, &records, &key(SMOL, 128), Objective::Throughput).unwrap();
    assert_eq!(s.index, amd().index);
    assert_eq!(s.basis, Basis::Rule);
    assert!(s.hint.as_deref().unwrap().contains("tokenmill bench"));
    let s = select(
        &[lavapipe(), integrated.clone()],
        &[],
        &key(SMOL, 128),
        Objective::Energy,
    );
    assert_eq!(s.unwrap().index, integrated.index);
    assert!(select(&[], &records, &key(SMOL, 128), Objective::Throughput).is_none());
    assert_eq!("energy".parse::<Objective>(), Ok(Objective::Energy));
    assert!("fast".parse::<Objective>().is_err());
}
