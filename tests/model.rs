//! The whole model on the GPU against (a) an independent f64 CPU forward pass of the same file
//! and (b) llama.cpp's logits and greedy tokens from the committed fixture.
//!
//! Tolerances (measured on lavapipe, see the closing note of the generation issue):
//! - GPU vs our f64 CPU reference: same weights, same math; differences come from f32
//!   accumulation over K = 576..1536 and f16 K/V in both. 0.05 absolute on logits of magnitude
//!   ~20 (0.25%) leaves several times the observed maximum.
//! - vs llama.cpp: its CPU path quantizes activations to 8 bits before every quantized dot
//!   product (Q8_1 for Q4_1 weights, Q8_0 for the Q8_0 head). Over the 216 fixture positions
//!   that moves logits by up to 0.89 from the exact result (0.73 after removing each
//!   position's common offset, which softmax ignores); `llama_cpp_gap_is_its_8bit_activations`
//!   shows the gap closes when our f64 reference does the same rounding. Tolerances: raw
//!   logits within 1.25, logits relative to the position's top within 1.0.
//! - Greedy tokens must equal llama.cpp's wherever its top-1 leads its top-2 by more than 0.75
//!   (the worst offset-free difference measured): below that, both answers are within the
//!   noise of llama.cpp's own quantization.

mod common;
#[path = "common/cpu_llama.rs"]
mod cpu_llama;
#[path = "common/model_file.rs"]
mod model_file;

use common::gpus;
use serde_json::Value;
use tokenmill::model::{GgufFile, Llama};
use tokenmill::sampling::LogitsNeed;

const POSITIONS: usize = 24;
const MARGIN: f32 = 0.75;
const TOL_RELATIVE: f32 = 1.0;
const TOL_ABSOLUTE: f32 = 1.25;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn full(l: tokenmill::model::Logits) -> Vec<f32> {
    match l {
        tokenmill::model::Logits::Full(v) => v,
        other => panic!("asked for full logits, got {other:?}"),
    }
}

#[test]
fn gpu_forward_matches_cpu_reference() {
    let Some(path) = model_file::model_path() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let mut cpu = cpu_llama::CpuLlama::load(&file);
    let prompt = [504u32, 3575, 282, 4649, 314, 7042];
    let mut want = Vec::new();
    for &t in &prompt {
        want = cpu.step(t);
    }
    for t in gpus() {
        let mut m = Llama::load(&t.gpu, &file, 64, |_, _| {}).unwrap();
        // Prefill path for 5 tokens, then the decode path for the sixth.
        m.forward(&t.gpu, &prompt[..5], LogitsNeed::Argmax).unwrap();
        let got = full(m.forward(&t.gpu, &prompt[5..], LogitsNeed::Full).unwrap());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{}: max |gpu - cpu| over {} logits = {worst:.4}",
            t.label,
            got.len()
        );
        assert!(
            worst < 0.05,
            "{}: GPU logits differ from the f64 reference by {worst}",
            t.label
        );
    }
}

#[test]
fn greedy_and_logits_match_llama_cpp() {
    let Some(path) = model_file::model_path() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let fixture = model_file::fixture();
    for t in gpus() {
        let gpu = &t.gpu;
        let mut m = Llama::load(gpu, &file, 160, |_, _| {}).unwrap();
        let (mut worst_rel, mut worst_abs, mut checked, mut greedy_checked) = (0f32, 0f32, 0, 0);
        for case in fixture["prompts"].as_array().unwrap() {
            let prompt = ids(&case["prompt_ids"]);
            let greedy = ids(&case["greedy_ids"]);
            let top5 = case["top5"].as_array().unwrap();
            m.reset();
            // Teacher-forced: feed llama.cpp's tokens, compare our logits at every position.
            let mut logits = full(m.forward(gpu, &prompt, LogitsNeed::Full).unwrap());
            for (i, reference) in top5.iter().take(POSITIONS).enumerate() {
                let r: Vec<(u32, f32)> = reference
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32))
                    .collect();
                let ours_best = (0..logits.len())
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                    .unwrap();
                let what = format!(
                    "{}: {:?} position {i}",
                    t.label,
                    case["prompt"].as_str().unwrap()
                );
                if r[0].1 - r[1].1 > MARGIN {
                    assert_eq!(
                        ours_best as u32,
                        r[0].0,
                        "{what}: greedy token differs (reference margin {})",
                        r[0].1 - r[1].1
                    );
                    greedy_checked += 1;
                }
                for &(id, l) in &r {
                    let ours = logits[id as usize];
                    worst_abs = worst_abs.max((ours - l).abs());
                    let rel = ((ours - logits[r[0].0 as usize]) - (l - r[0].1)).abs();
                    worst_rel = worst_rel.max(rel);
                    assert!(
                        (ours - l).abs() < TOL_ABSOLUTE,
                        "{what}: logit of {id} is {ours}, llama.cpp {l}"
                    );
                    assert!(
                        rel < TOL_RELATIVE,
                        "{what}: logit of {id} relative to the top is off by {rel}"
                    );
                }
                checked += 1;
                if i + 1 < POSITIONS.min(greedy.len()) {
                    logits = full(m.forward(gpu, &greedy[i..i + 1], LogitsNeed::Full).unwrap());
                }
            }
        }
        eprintln!(
            "{}: {checked} positions ({greedy_checked} with a clear greedy winner, all equal), worst |logit diff| {worst_abs:.3}, worst offset-free diff {worst_rel:.3}",
            t.label
        );
        assert!(
            greedy_checked * 2 > checked,
            "too few positions had a clear winner to mean anything"
        );
    }
}

#[test]
fn llama_cpp_gap_is_its_8bit_activations() {
    // The exact f64 forward pass and the same with 8-bit activation rounding like llama.cpp's
    // (approximately: it uses Q8_1 with block sums for Q4_1), at the first generated position
    // of three prompts: summed over them, the rounded one must be closer to llama.cpp, which
    // is what justifies the tolerances above. (Measured: 0.76 exact vs 0.56 rounded.)
    let Some(path) = model_file::model_path() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let fixture = model_file::fixture();
    let (mut total_exact, mut total_rounded) = (0.0, 0.0);
    for case in fixture["prompts"].as_array().unwrap().iter().take(3) {
        let prompt = ids(&case["prompt_ids"]);
        let reference: Vec<(usize, f64)> = case["top5"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
            .collect();
        let err = |q8: bool| {
            let mut cpu = cpu_llama::CpuLlama::load(&file);
            cpu.q8_activations = q8;
            let mut l = Vec::new();
            for &t in &prompt {
                l = cpu.step(t);
            }
            reference
                .iter()
                .map(|&(id, want)| (l[id] - want).abs())
                .fold(0.0, f64::max)
        };
        let (exact, rounded) = (err(false), err(true));
        eprintln!(
            "{:?}: max diff to llama.cpp: exact {exact:.3}, 8-bit activations {rounded:.3}",
            case["prompt"]
        );
        total_exact += exact;
        total_rounded += rounded;
    }
    assert!(
        total_rounded < total_exact,
        "8-bit rounding should move us toward llama.cpp ({total_rounded} vs {total_exact})"
    );
}
