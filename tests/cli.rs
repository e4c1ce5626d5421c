//! Bad input to the CLI: a one-line error naming what was wrong, a non-zero exit, no panic.

#[path = "common/model_file.rs"]
mod model_file;

use std::io::Write;
use std::process::{Command, Stdio};

/// Run tokenmill with `args` and `stdin`; returns (exit code, stderr).
fn tokenmill(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenmill"))
        .args(args)
        .env("TOKENMILL_NO_TUNE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_error(args: &[&str], stdin: &[u8], expect: &str) {
    let (code, err) = tokenmill(args, stdin);
    assert_ne!(code, 0, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {err}"));
    assert!(
        line.contains(expect),
        "{args:?}: expected '{expect}' in '{line}'"
    );
}

fn temp_file(name: &str, bytes: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("tokenmill-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn missing_model_file() {
    assert_error(
        &[
            "run",
            "--model",
            "/nonexistent/model.gguf",
            "--prompt",
            "hi",
        ],
        b"",
        "not found",
    );
}

#[test]
fn not_a_gguf_file() {
    let p = temp_file("text.gguf", b"this is not a model at all");
    assert_error(
        &["run", "--model", &p, "--prompt", "hi"],
        b"",
        "not a GGUF file",
    );
}

#[test]
fn truncated_gguf_file() {
    let Some(model) = model_file::model_path() else {
        return;
    };
    let head = std::fs::read(model).unwrap()[..4096].to_vec();
    let p = temp_file("truncated.gguf", &head);
    assert_error(&["run", "--model", &p, "--prompt", "hi"], b"", "truncated");
}

#[test]
fn empty_prompt_and_empty_stdin() {
    assert_error(&["run", "--prompt", "   "], b"", "empty prompt");
    assert_error(&["run"], b"\n", "empty prompt");
}

#[test]
fn invalid_utf8_on_stdin() {
    assert_error(&["run"], b"caf\xe9 \xff\xfe", "not valid UTF-8");
}

#[test]
fn prompt_longer_than_context() {
    let Some(model) = model_file::model_path() else {
        return;
    };
    let model = model.to_string_lossy().into_owned();
    let long = "word ".repeat(100);
    assert_error(
        &["run", "--model", &model, "--ctx", "32", "--prompt", &long],
        b"",
        "longer than the context",
    );
}

#[test]
fn unknown_device() {
    let Some(model) = model_file::model_path() else {
        return;
    };
    let model = model.to_string_lossy().into_owned();
    assert_error(
        &[
            "run",
            "--model",
            &model,
            "--device",
            "no-such-gpu",
            "--prompt",
            "hi",
        ],
        b"",
        "no adapter matches",
    );
}

#[test]
fn generates_on_the_real_model() {
    // Greedy, 6 tokens: the first must be llama.cpp's (" Paris", margin 2.5 in the fixture).
    let Some(model) = model_file::model_path() else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tokenmill"))
        .env("TOKENMILL_NO_TUNE", "1")
        .args([
            "run",
            "--model",
            &model.to_string_lossy(),
            "--prompt",
            "The capital of France is",
            "--temperature",
            "0",
            "--max-tokens",
            "6",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(" Paris"),
        "stdout holds only the generated text: {stdout:?}"
    );
    assert!(
        stderr.contains("tok/s") && stderr.contains("MiB weights"),
        "summary on stderr: {stderr}"
    );
}

#[test]
fn bench_gates_measures_and_appends_to_the_ledger() {
    let Some(model) = model_file::model_path() else {
        return;
    };
    let ledger = std::env::temp_dir().join(format!("tokenmill-bench-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&ledger);
    let args = [
        "bench",
        "--model",
        &model.to_string_lossy(),
        "--devices",
        "0",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--repeats",
        "1",
        "--ledger",
        &ledger.to_string_lossy(),
        "--watts",
        "10",
    ]
    .map(String::from);
    let out = Command::new(env!("CARGO_BIN_EXE_tokenmill"))
        .env("TOKENMILL_NO_TUNE", "1")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&ledger).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["correctness"]["passed"], true, "{}", r["correctness"]);
    assert_eq!(r["workload"]["prompt_tokens"], 16);
    assert!(r["results"]["decode_tok_s"].as_f64().unwrap() > 0.0);
    assert!(r["cost"]["joules_per_token"].as_f64().unwrap() > 0.0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("passed"));
    let _ = std::fs::remove_file(&ledger);
}
