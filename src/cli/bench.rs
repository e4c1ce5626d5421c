//! `tokenmill bench`: the same workload on every selected adapter, gated on correctness, with
//! median and spread, appended to the ledger.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokenmill::generate::{GenerateOptions, Session};
use tokenmill::gpu::{list_adapters, AdapterDesc, DeviceChoice, Gpu, GpuOptions};
use tokenmill::ledger::{self, stats, Cost, Record};
use tokenmill::model::{GgufFile, Llama};
use tokenmill::ops::measure_read_bandwidth;
use tokenmill::sampling::{LogitsNeed, SamplingParams};
use tokenmill::tokenizer::Tokenizer;

use super::load::{model_hash, model_path, quant_name, ModelArgs};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// all, or a comma-separated list of adapter indices or name parts
    #[arg(long, default_value = "all")]
    pub devices: String,
    /// Prompt lengths to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub prompt_tokens: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Ledger file [default: the user's data directory]
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Price of the machine per hour, for USD per 1M tokens
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// Average power draw, for joules per token (else a GPU power sensor if the OS has one)
    #[arg(long)]
    pub watts: Option<f64>,
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/smollm2_reference.json"
);

fn selected(all: &[AdapterDesc], spec: &str) -> Result<Vec<AdapterDesc>> {
    if spec.eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let found = match part.parse::<DeviceChoice>().unwrap_or_default() {
            DeviceChoice::Index(i) => all.iter().find(|d| d.index == i),
            _ => all
                .iter()
                .find(|d| d.name.to_lowercase().contains(&part.to_lowercase())),
        };
        out.push(
            found
                .cloned()
                .with_context(|| format!("no adapter matches '{part}'"))?,
        );
    }
    Ok(out)
}

/// Greedy tokens against llama.cpp's fixture when this is the fixture's model: teacher-forced,
/// every position where llama.cpp's top-1 leads by more than 0.75 must agree.
fn gate(gpu: &Gpu, model: &mut Llama, file_name: &str) -> (bool, String) {
    let Some(fx) = std::fs::read(FIXTURE)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return (false, "unchecked: reference fixture not found".into());
    };
    if fx["model"].as_str() != Some(file_name) {
        return (
            false,
            format!("unchecked: no reference outputs for {file_name}"),
        );
    }
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect()
    };
    let (mut checked, mut wrong) = (0, Vec::new());
    for case in fx["prompts"].as_array().into_iter().flatten().take(3) {
        let (prompt, greedy) = (ids(&case["prompt_ids"]), ids(&case["greedy_ids"]));
        model.reset();
        let mut next = model.forward(gpu, &prompt, LogitsNeed::Argmax);
        for (i, top5) in case["top5"]
            .as_array()
            .into_iter()
            .flatten()
            .take(8)
            .enumerate()
        {
            let Ok(tokenmill::model::Logits::Argmax(ours)) = next else {
                return (false, format!("forward failed: {:?}", next.err()));
            };
            let (t1, t2) = (
                top5[0][1].as_f64().unwrap_or(0.0),
                top5[1][1].as_f64().unwrap_or(0.0),
            );
            if t1 - t2 > 0.75 {
                checked += 1;
                if Some(ours) != top5[0][0].as_u64().map(|v| v as u32) {
                    wrong.push(format!(
                        "prompt {:?} position {i}",
                        case["prompt"].as_str().unwrap_or("")
                    ));
                }
            }
            next = model.forward(gpu, &greedy[i..i + 1], LogitsNeed::Argmax);
        }
    }
    model.reset();
    if wrong.is_empty() {
        (
            true,
            format!("greedy tokens equal llama.cpp's at {checked} clear positions"),
        )
    } else {
        (
            false,
            format!(
                "greedy tokens differ from llama.cpp at {}",
                wrong.join(", ")
            ),
        )
    }
}

/// A prompt of exactly `n` tokens, from benches/prompt_128.txt repeated.
fn prompt_of(tokenizer: &Tokenizer, n: usize) -> Result<Vec<u32>> {
    let text = include_str!("../../benches/prompt_128.txt");
    let base = tokenizer.encode(text, true)?;
    Ok(base.iter().cycle().take(n).copied().collect())
}

pub fn run(args: BenchArgs) -> Result<()> {
    let path = model_path(&args.model)?;
    let file = GgufFile::open(&path)?;
    let file_name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let tokenizer = Tokenizer::from_gguf(&file.gguf().metadata)?;
    let adapters = selected(&pollster::block_on(list_adapters()), &args.devices)?;
    if adapters.is_empty() {
        bail!("no GPU adapter found");
    }
    let ledger_path = args
        .ledger
        .clone()
        .or_else(ledger::default_ledger_path)
        .context("no ledger path: give --ledger")?;
    let total = adapters.len() * args.prompt_tokens.len() * (args.repeats + 1);
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len}")
            .unwrap()
            .progress_chars("=> "),
    );
    let mut records = Vec::new();
    let mut spreads = Vec::new();
    for desc in &adapters {
        bar.set_message(format!("{} ({})", desc.name, desc.backend));
        let gpu = Gpu::open_blocking(&GpuOptions {
            device: DeviceChoice::Index(desc.index),
            ..Default::default()
        })?;
        let ctx = args.prompt_tokens.iter().max().copied().unwrap_or(128) + args.gen_tokens + 8;
        // Launch shapes as `run` uses them: the device's tuning cache, tuned on first use.
        let tune_cache = super::tune::apply_cache(&args.model, &gpu);
        let mut model = Llama::load(&gpu, &file, ctx, |_, _| {})?;
        if super::tune::first_use(&gpu, tune_cache.as_ref(), &model) {
            drop(model);
            model = Llama::load(&gpu, &file, ctx, |_, _| {})?;
        }
        let (passed, detail) = gate(&gpu, &mut model, &file_name);
        let device_gb_s = measure_read_bandwidth(&gpu, 64 << 20, 5).ok();
        let mut session = Session::new(model);
        for &n in &args.prompt_tokens {
            let prompt = prompt_of(&tokenizer, n)?;
            let opts = GenerateOptions {
                max_tokens: args.gen_tokens,
                sampling: SamplingParams::default(),
                ..Default::default()
            };
            let mut runs = Vec::new();
            for r in 0..=args.repeats {
                session.cached.clear();
                let out =
                    session.generate(&gpu, &prompt, &opts, &|_| String::new(), &mut |_| {})?;
                if r > 0 {
                    runs.push(out.stats);
                }
                bar.inc(1);
            }
            let decode: Vec<f64> = runs.iter().map(|s| s.decode_tok_s()).collect();
            spreads.push(stats::min_max(&decode).unwrap_or((0.0, 0.0)));
            records.push(record(
                &args,
                &gpu,
                &file,
                &session,
                (n, passed, &detail),
                &runs,
                device_gb_s,
            ));
        }
    }
    bar.finish_and_clear();
    ledger::append_all(&ledger_path, &records)?;
    super::print(&table(&records, &spreads))?;
    eprintln!(
        "{} record(s) appended to {}",
        records.len(),
        ledger_path.display()
    );
    Ok(())
}

fn record(
    args: &BenchArgs,
    gpu: &Gpu,
    file: &GgufFile,
    session: &Session,
    (n, passed, detail): (usize, bool, &str),
    runs: &[tokenmill::generate::Stats],
    device_gb_s: Option<f64>,
) -> Record {
    let med = |f: &dyn Fn(&tokenmill::generate::Stats) -> f64| {
        stats::median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0)
    };
    let decode = med(&|s| s.decode_tok_s());
    let latencies: Vec<f64> = runs
        .iter()
        .flat_map(|s| s.token_secs.iter().map(|t| t * 1e3))
        .collect();
    let (p50, p95) = stats::latency_p50_p95(&latencies).unwrap_or((0.0, 0.0));
    let m = &session.model;
    let (w, kv, act) = m.memory();
    // Bytes one decode step reads: every weight once, plus K and V up to the mean position.
    let kv_row = (m.cfg.n_kv_heads * m.cfg.head_dim * 2 * m.kv.dtype.block_bytes()) as f64;
    let mean_len = n as f64 + args.gen_tokens as f64 / 2.0;
    let bytes = w as f64 + kv_row * mean_len * m.cfg.n_layers as f64;
    let achieved = decode * bytes / 1e9;
    let cfg = &m.cfg;
    let params = (cfg.vocab_size * cfg.n_embd) as u64
        + cfg.n_layers as u64
            * (cfg.n_embd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim
                + 3 * cfg.n_embd * cfg.n_ff) as u64;
    let power = args.watts.map(|w| (w, "given".to_string()));
    Record {
        schema_version: ledger::record::SCHEMA_VERSION,
        time: ledger::record::now_rfc3339(),
        tokenmill: ledger::record::Build::current(),
        host: ledger::record::Host::current(),
        adapter: (&gpu.desc).into(),
        features: (&gpu.caps).into(),
        model: ledger::record::ModelInfo {
            name: file
                .gguf()
                .metadata
                .opt_str("general.name")
                .ok()
                .flatten()
                .unwrap_or("unknown")
                .to_string(),
            architecture: cfg.architecture.clone(),
            parameters: params,
            file_hash: model_hash(file),
            quant: quant_name(file),
        },
        workload: ledger::record::Workload {
            prompt_tokens: n as u32,
            gen_tokens: args.gen_tokens as u32,
            batch: 1,
            context: m.ctx() as u32,
        },
        results: ledger::record::Results {
            prefill_tok_s: med(&|s| s.prefill_tok_s()),
            decode_tok_s: decode,
            ttft_ms: med(&|s| s.time_to_first_token * 1e3),
            token_latency_p50_ms: p50,
            token_latency_p95_ms: p95,
            gpu_memory_bytes: Some(w + kv + act),
            achieved_gb_s: Some(achieved),
            device_gb_s,
            roofline_fraction: device_gb_s.map(|d| achieved / d),
        },
        correctness: ledger::record::Correctness {
            passed,
            detail: detail.to_string(),
        },
        cost: Cost::from_inputs(args.price_per_hour, power, decode),
    }
}

/// One line per record; `spreads` holds each record's decode min and max over the repeats.
fn table(records: &[Record], spreads: &[(f64, f64)]) -> String {
    let mut s = format!(
        "{:<40} {:>7} {:>12} {:>12} {:>13} {:>9} {:>9}  correctness\n",
        "device", "prompt", "prefill t/s", "decode t/s", "decode range", "GB/s", "roofline"
    );
    for (r, (lo, hi)) in records.iter().zip(spreads) {
        let res = &r.results;
        s += &format!(
            "{:<40} {:>7} {:>12.1} {:>12.1} {:>13} {:>9.2} {:>8.0}%  {}\n",
            format!("{} ({})", r.adapter.name, r.adapter.backend),
            r.workload.prompt_tokens,
            res.prefill_tok_s,
            res.decode_tok_s,
            format!("{lo:.1}-{hi:.1}"),
            res.achieved_gb_s.unwrap_or(0.0),
            res.roofline_fraction.unwrap_or(0.0) * 100.0,
            if r.correctness.passed {
                "passed"
            } else {
                "FAILED"
            }
        );
    }
    s
}
