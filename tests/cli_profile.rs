//! `tokenmill profile` on the real model with a short prompt: the table has the decode and
//! prefill kernel rows and the totals; `--json` parses and agrees with itself.

#[path = "common/model_file.rs"]
mod model_file;

use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The model path, when the model and an adapter are present (under CI both must be).
fn ready() -> Option<std::path::PathBuf> {
    let path = model_file::model_path()?;
    if pollster::block_on(tokenmill::gpu::list_adapters()).is_empty() {
        assert!(
            !in_ci(),
            "no GPU adapter (CI=true: a missing adapter is a failure)"
        );
        eprintln!("SKIPPED: no GPU adapter; run `source scripts/lavapipe.sh` first");
        return None;
    }
    Some(path)
}

/// Run `tokenmill profile` with `extra` args; returns stdout, failing on a non-zero exit.
fn profile(model: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenmill"))
        .env("TOKENMILL_NO_TUNE", "1")
        .args(["profile", "--model"])
        .arg(model)
        .args(["--prompt-tokens", "8", "--ctx", "64", "--repeats", "1"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tokenmill profile failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn profile_prints_kernel_table_and_totals() {
    let Some(model) = ready() else { return };
    let text = profile(&model, &[]);
    let row = |kernel: &str| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(kernel))
    };
    for kernel in [
        "matvec",
        "attention_decode",
        "rms_norm",
        "matmul",
        "attention_prefill",
    ] {
        assert!(row(kernel), "no '{kernel}' row in:\n{text}");
    }
    for needle in [
        "decode step at position 8",
        "prefill chunk at position 0: 8 tokens",
        "sum of kernels",
        "step, submit+wait (real)",
        "overhead",
        "tok/s",
        "timing: ",
    ] {
        assert!(text.contains(needle), "no '{needle}' in:\n{text}");
    }
    // Timestamps taken inside one pass are kept only when the decode kernels add up to no more
    // than 110% of the pass (lavapipe's do not, and its profile falls back to a pass each).
    if text.contains("timing: GPU timestamps between dispatches in one pass") {
        let decode_sum = text
            .lines()
            .find(|l| l.starts_with("sum of kernels"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a decode 'sum of kernels' row with a share");
        assert!(
            decode_sum <= 110.0,
            "in-pass spans add up to {decode_sum}%:\n{text}"
        );
    }
}

#[test]
fn profile_json_wall_clock() {
    let Some(model) = ready() else { return };
    let text = profile(&model, &["--json", "--method", "wall-clock"]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["method"], "wall_clock");
    assert_eq!(v["prompt_tokens"], 8);
    let sections = v["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 2);
    for s in sections {
        let dispatches = s["dispatches"].as_array().unwrap();
        let by_kernel = s["by_kernel"].as_array().unwrap();
        let calls: u64 = by_kernel.iter().map(|k| k["calls"].as_u64().unwrap()).sum();
        assert_eq!(calls as usize, dispatches.len(), "{}", s["name"]);
        let sum: f64 = dispatches
            .iter()
            .map(|d| d["micros"].as_f64().unwrap())
            .sum();
        assert!(sum > 0.0 && sum.is_finite(), "{}", s["name"]);
        let kernel_sum = s["kernel_sum_us"].as_f64().unwrap();
        assert!(
            (sum - kernel_sum).abs() <= 1e-6 * kernel_sum,
            "{}",
            s["name"]
        );
        assert!(s["step_wall_us"].as_f64().unwrap() > 0.0);
        assert!(
            s["step_gpu_us"].is_null(),
            "wall clock has no GPU step time"
        );
    }
    let decode = &sections[0];
    assert_eq!(decode["tokens"], 1);
    assert!(decode["by_kernel"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kernel"] == "matvec" && k["gbps"].as_f64().is_some_and(|g| g > 0.0)));
}
