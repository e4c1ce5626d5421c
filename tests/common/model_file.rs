//! The real test model and the llama.cpp reference fixture. Without the model file, tests skip
//! with a message, except under CI (CI set and not "false"/"0"), where a missing model fails.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

pub const MODEL_FILE: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const FIXTURE_FILE: &str = "tests/fixtures/smollm2_reference.json";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The model's path, or `None` (after printing why) when it is absent outside CI.
pub fn model_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL_FILE);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{} is missing; CI must run models/fetch.sh before the tests",
        path.display()
    );
    // Written straight to stderr so the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {} not found; run models/fetch.sh to enable this test",
        path.display()
    );
    None
}

/// The parsed fixture (committed, always present).
pub fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_FILE);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    })
}

/// The fixture's prompts.
pub fn prompts() -> &'static [Value] {
    fixture()["prompts"]
        .as_array()
        .expect("fixture has a prompts array")
}

/// A JSON array of numbers as token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}
