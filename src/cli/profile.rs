//! `tokenmill profile`: per-kernel GPU time of one decode step and one prefill chunk of the
//! loaded model, at a realistic position (after a prompt of `--prompt-tokens`), with achieved
//! GB/s and GFLOP/s per kernel and the gap between the sum of the kernels and the real step.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use tokenmill::gpu::profile::{KernelTiming, Profile, Profiler, TimingMethod};
use tokenmill::gpu::Dispatch;
use tokenmill::model::{Llama, Logits};
use tokenmill::ops::StepParams;
use tokenmill::sampling::LogitsNeed;
use tokenmill::tokenizer::Tokenizer;

use super::load::{self, ModelArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// The best the device has: timestamps inside one pass, else a pass per dispatch, else the
    /// wall clock
    Auto,
    /// One compute pass per dispatch with begin/end timestamps
    Pass,
    /// One submit+wait per dispatch on the host clock (no timestamp queries)
    WallClock,
}

#[derive(Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length prefilled first: the decode step is profiled at this position, and the
    /// prefill chunk profiled is the prompt's last one
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Measurements per dispatch; the median is reported
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// How kernels are timed
    #[arg(long, value_enum, default_value = "auto")]
    pub method: Method,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

/// A prompt of exactly `n` tokens, from benches/prompt_128.txt repeated (as `bench` builds it).
fn prompt_of(tokenizer: &Tokenizer, n: usize) -> Result<Vec<u32>> {
    let base = tokenizer.encode(include_str!("../../benches/prompt_128.txt"), true)?;
    Ok(base.iter().cycle().take(n).copied().collect())
}

/// One profiled plan: which tokens at which position, and what was measured.
struct Section {
    name: &'static str,
    pos: usize,
    tokens: usize,
    profile: Profile,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let n = args.prompt_tokens;
    if n < 2 {
        bail!("--prompt-tokens must be at least 2 (a prefill chunk is profiled), got {n}");
    }
    if n + 1 > args.model.ctx {
        bail!(
            "--prompt-tokens {n} plus the decoded token does not fit --ctx {}",
            args.model.ctx
        );
    }
    let (loaded, mut session) = load::load(&args.model, (n as u32, 1))?;
    let gpu = &loaded.gpu;
    let model = &mut session.model;
    if n + 1 > model.ctx() {
        bail!(
            "--prompt-tokens {n} plus the decoded token does not fit the model's context of {}",
            model.ctx()
        );
    }
    let mut profiler = Profiler {
        repeats: args.repeats.max(1),
        timestamps: args.method != Method::WallClock,
        inside_passes: args.method == Method::Auto,
    };
    let prompt = prompt_of(&loaded.tokenizer, n)?;
    model.reset();
    let next = match model.forward(gpu, &prompt, LogitsNeed::Argmax)? {
        Logits::Argmax(id) => id,
        _ => 0,
    };
    eprintln!(
        "tokenmill: prefilled {n} tokens; profiling with {} ({} repeats)",
        profiler.method(gpu).describe(),
        profiler.repeats
    );

    // Decode: the next token at position n, with the argmax a greedy step ends with.
    write_step(gpu, model, &[next], n);
    let mut plan: Vec<Dispatch> = model.decode_dispatches().to_vec();
    plan.extend_from_slice(
        model
            .pick_dispatches(LogitsNeed::Argmax)
            .unwrap_or_default(),
    );
    let mut decode = profiler.run(gpu, &plan)?;
    // Some drivers (lavapipe) write in-pass timestamps that do not bracket each dispatch: the
    // spans then add up to well over the pass. Such numbers mislead, so measure again.
    let rejected = inside_pass_mismatch(&decode);
    if let Some(ratio) = rejected {
        eprintln!(
            "tokenmill: timestamps between dispatches summed to {:.0}% of the pass; timing a pass per dispatch instead",
            100.0 * ratio
        );
        profiler.inside_passes = false;
        decode = profiler.run(gpu, &plan)?;
    }
    sequence_costs(model, &mut decode.timings, n, 1);

    // Prefill: the prompt's last chunk, at its own position, rewriting the same cache rows.
    let t = match n % model.max_batch {
        0 => model.max_batch,
        r => r,
    };
    let pos = n - t;
    write_step(gpu, model, &prompt[pos..], pos);
    let Some(plan) = model.prefill_dispatches(t) else {
        bail!("no prefill plan for a chunk of {t} tokens after the prompt's prefill");
    };
    let mut prefill = profiler.run(gpu, plan)?;
    sequence_costs(model, &mut prefill.timings, pos, t);

    let sections = [
        Section {
            name: "decode step",
            pos: n,
            tokens: 1,
            profile: decode,
        },
        Section {
            name: "prefill chunk",
            pos,
            tokens: t,
            profile: prefill,
        },
    ];
    let model_name = load::model_path(&args.model)?
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if args.json {
        let json = serde_json::json!({
            "model": model_name,
            "adapter": gpu.desc.name,
            "backend": gpu.desc.backend,
            "method": sections[0].profile.method,
            "inside_pass_sum_rejected": rejected,
            "repeats": profiler.repeats,
            "prompt_tokens": n,
            "sections": sections.iter().map(|s| serde_json::json!({
                "name": s.name,
                "pos": s.pos,
                "tokens": s.tokens,
                "kernel_sum_us": s.profile.kernel_sum_us(),
                "step_wall_us": s.profile.step_wall_us,
                "step_gpu_us": s.profile.step_gpu_us,
                "overhead_us": s.profile.overhead_us(),
                "empty_submit_us": s.profile.empty_submit_us,
                "tok_s": tok_s(s),
                "by_kernel": s.profile.by_kernel(),
                "dispatches": s.profile.timings,
            })).collect::<Vec<_>>(),
        });
        return super::print(&format!("{}\n", serde_json::to_string_pretty(&json)?));
    }
    let mut out = String::new();
    let method = sections[0].profile.method;
    writeln!(
        out,
        "{model_name} on {} ({})\ntiming: {}; median of {} repeats",
        gpu.desc.name,
        gpu.desc.backend,
        method.describe(),
        profiler.repeats
    )?;
    if let Some(ratio) = rejected {
        writeln!(
            out,
            "(timestamps between the dispatches of one pass summed to {:.0}% of the pass on \
             this device, so each dispatch got its own pass)",
            100.0 * ratio
        )?;
    }
    for s in &sections {
        out.push('\n');
        out.push_str(&table(s, model.cfg.n_layers));
    }
    writeln!(
        out,
        "\nGB/s counts the bytes bound to each kernel (an upper bound of bytes moved; for matvec\n\
         about the weight bytes); attention, kv_store and embed count the rows of the real\n\
         sequence they touch instead. overhead = real step - sum of kernels; of it, 'in the pass'\n\
         (GPU pass - kernels) is dispatch and barrier cost, the rest encoding, submit and wait."
    )?;
    if method == TimingMethod::WallClock {
        writeln!(
            out,
            "wall clock: each kernel is one submit+wait less an empty one ({:.1} µs); kernels \
             shorter than that noise show {} µs.",
            sections[0].profile.empty_submit_us,
            tokenmill::gpu::profile::WALL_CLOCK_FLOOR_US
        )?;
    }
    super::print(&out)
}

/// With in-pass timestamps, the kernels' sum over the pass they ran in, when it exceeds the
/// pass by more than `INSIDE_PASS_SLACK` (the spans cannot be trusted then).
fn inside_pass_mismatch(p: &Profile) -> Option<f64> {
    let pass = p.step_gpu_us.filter(|&g| g > 0.0)?;
    let ratio = p.kernel_sum_us() / pass;
    (p.method == TimingMethod::InsidePass && ratio > INSIDE_PASS_SLACK).then_some(ratio)
}

/// How far in-pass kernel spans may add up past the pass (timestamp granularity and noise).
const INSIDE_PASS_SLACK: f64 = 1.1;

/// Write the ids and the `StepParams` a plan reads for `tokens` at position `pos`.
fn write_step(gpu: &tokenmill::gpu::Gpu, model: &Llama, tokens: &[u32], pos: usize) {
    gpu.queue
        .write_buffer(&model.act.ids.buffer, 0, bytemuck::cast_slice(tokens));
    let step = StepParams::new(pos, tokens.len());
    gpu.queue
        .write_buffer(&model.act.step, 0, bytemuck::bytes_of(&step));
}

/// Bytes and FLOPs of the kernels that touch only part of what they bind, and whose share
/// depends on the position, which the plans (built once for every position) cannot know:
/// attention reads K/V rows 0..pos+t (counted once), kv_store writes t rows, embed reads t rows.
fn sequence_costs(model: &Llama, timings: &mut [KernelTiming], pos: usize, t: usize) {
    let c = &model.cfg;
    let (nh, nkv, hd) = (c.n_heads as u64, c.n_kv_heads as u64, c.head_dim as u64);
    let elt = model
        .kv
        .layers
        .first()
        .and_then(|l| l.k.dtype.bytes_for(1))
        .unwrap_or(2) as u64;
    let embd_row = model.weights.token_embd.nbytes() / c.vocab_size.max(1) as u64;
    let (pos, t) = (pos as u64, t as u64);
    let seq = pos + t;
    // Keys each of the t queries attends to: pos + 1 ..= pos + t.
    let keys = t * pos + t * (t + 1) / 2;
    for timing in timings {
        match timing.kernel {
            "attention_decode" | "attention_prefill" => {
                timing.bytes = 2 * t * nh * hd * 4 + 2 * seq * nkv * hd * elt;
                timing.flops = 4 * nh * hd * keys;
            }
            "kv_store" => timing.bytes = 2 * t * nkv * hd * (4 + elt),
            "embed" => timing.bytes = t * (embd_row + c.n_embd as u64 * 4),
            _ => {}
        }
    }
}

fn tok_s(s: &Section) -> f64 {
    if s.profile.step_wall_us > 0.0 {
        s.tokens as f64 * 1e6 / s.profile.step_wall_us
    } else {
        0.0
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |r| format!("{r:.2}"))
}

/// The per-kernel table of one section and its totals.
fn table(s: &Section, layers: usize) -> String {
    let p = &s.profile;
    let step = p.step_wall_us;
    let pct = |us: f64| if step > 0.0 { 100.0 * us / step } else { 0.0 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} at position {}: {} token{}, {} layers, {} dispatches",
        s.name,
        s.pos,
        s.tokens,
        if s.tokens == 1 { "" } else { "s" },
        layers,
        p.timings.len()
    );
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>11} {:>7} {:>9} {:>9} {:>9}",
        "kernel", "calls", "total µs", "% step", "mean µs", "GB/s", "GFLOP/s"
    );
    let _ = writeln!(out, "{}", "-".repeat(20 + 7 + 12 + 8 + 10 + 10 + 10));
    for k in p.by_kernel() {
        let _ = writeln!(
            out,
            "{:<20} {:>6} {:>11.1} {:>7.1} {:>9.1} {:>9} {:>9}",
            k.kernel,
            k.calls,
            k.total_us,
            pct(k.total_us),
            k.mean_us,
            rate(k.gbps),
            rate(k.gflops)
        );
    }
    let sum = p.kernel_sum_us();
    let _ = writeln!(
        out,
        "{:<27} {:>11.1} {:>7.1}",
        "sum of kernels",
        sum,
        pct(sum)
    );
    if let Some(gpu) = p.step_gpu_us {
        let _ = writeln!(
            out,
            "{:<27} {:>11.1} {:>7.1}",
            "step, one pass (GPU)",
            gpu,
            pct(gpu)
        );
    }
    let _ = writeln!(
        out,
        "{:<27} {:>11.1} {:>7.1}",
        "step, submit+wait (real)", step, 100.0
    );
    let _ = writeln!(
        out,
        "{:<27} {:>11.1} {:>7.1}",
        "overhead (real - kernels)",
        p.overhead_us(),
        pct(p.overhead_us())
    );
    if let Some(gpu) = p.step_gpu_us {
        let _ = writeln!(
            out,
            "{:<27} {:>11.1} {:>7.1}",
            "  in the pass (GPU)",
            gpu - sum,
            pct(gpu - sum)
        );
        let _ = writeln!(
            out,
            "{:<27} {:>11.1} {:>7.1}",
            "  encode, submit, wait",
            step - gpu,
            pct(step - gpu)
        );
    }
    let _ = writeln!(
        out,
        "implied {:.1} tok/s ({} token{} per step)",
        tok_s(s),
        s.tokens,
        if s.tokens == 1 { "" } else { "s" }
    );
    out
}
