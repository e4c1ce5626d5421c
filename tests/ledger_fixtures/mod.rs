//! Fixtures for tests/ledger.rs: adapters of several vendors, records and a sample ledger.

use std::path::{Path, PathBuf};

use tokenmill::gpu::AdapterDesc;
use tokenmill::ledger::{
    record, AdapterId, Build, Correctness, Cost, FeaturesUsed, Host, ModelInfo, Record, Results,
    Workload, WorkloadKey, SCHEMA_VERSION,
};

/// A fresh empty directory under cargo's per-target temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ledger-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn adapter(index: usize, name: &str, vendor: &str, vendor_id: u32, kind: &str) -> AdapterDesc {
    AdapterDesc {
        index,
        name: name.into(),
        vendor: vendor.into(),
        vendor_id,
        device_id: 0x1000 + index as u32,
        device_type: kind.into(),
        backend: "vulkan".into(),
        driver: format!("{vendor} driver"),
        driver_info: "1.2.3".into(),
        features: vec!["SHADER_F16".into()],
        subgroup_min_size: 32,
        subgroup_max_size: 32,
        max_storage_buffer_binding_size: 1 << 30,
        max_buffer_size: 1 << 32,
        max_compute_workgroup_storage_size: 32768,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroups_per_dimension: 65535,
        software: kind == "Cpu",
    }
}

pub fn nvidia() -> AdapterDesc {
    adapter(
        0,
        "NVIDIA GeForce RTX 4090",
        "NVIDIA",
        0x10de,
        "DiscreteGpu",
    )
}
pub fn amd() -> AdapterDesc {
    adapter(1, "AMD Radeon RX 7900 XTX", "AMD", 0x1002, "DiscreteGpu")
}
pub fn intel() -> AdapterDesc {
    adapter(
        2,
        "Intel(R) Arc(tm) A770 Graphics",
        "Intel",
        0x8086,
        "DiscreteGpu",
    )
}
pub fn lavapipe() -> AdapterDesc {
    adapter(
        3,
        "llvmpipe (LLVM 15.0.6, 256 bits)",
        "Mesa",
        0x10005,
        "Cpu",
    )
}

pub const SMOL: &str = "sha256:5f1e0c1a9b7d3e2f4a6c8b0d1e3f5a7c9b1d3f5e7a9c1b3d5f7e9a1c3b5d7f9e";
pub const LLAMA: &str = "sha256:0a9b8c7d6e5f40312233445566778899aabbccddeeff00112233445566778899";

pub fn model(hash: &str) -> ModelInfo {
    let smol = hash == SMOL;
    ModelInfo {
        name: if smol {
            "SmolLM2-135M-Instruct"
        } else {
            "Llama-3.2-1B-Instruct"
        }
        .into(),
        architecture: "llama".into(),
        parameters: if smol { 134_515_008 } else { 1_235_814_400 },
        file_hash: hash.into(),
        quant: if smol { "q4_1" } else { "q4_0" }.into(),
    }
}

/// A passing record of `d` on model `hash` with `prompt` prompt tokens and decode rate `decode`.
pub fn rec(d: &AdapterDesc, hash: &str, prompt: u32, decode: f64) -> Record {
    let gb_per_token = if hash == SMOL { 0.09 } else { 0.75 };
    let bandwidth = match d.vendor.as_str() {
        "NVIDIA" => 1008.0,
        "AMD" => 960.0,
        "Intel" => 560.0,
        _ => 60.0,
    };
    Record {
        schema_version: SCHEMA_VERSION,
        time: record::rfc3339_from_unix(1_777_000_000),
        tokenmill: Build::current(),
        host: Host {
            name: format!("{}-box", d.vendor.to_lowercase()),
            os: "linux".into(),
            os_version: "Debian GNU/Linux 12 (bookworm), kernel 6.1.0".into(),
            arch: "x86_64".into(),
        },
        adapter: AdapterId::from(d),
        features: FeaturesUsed {
            f16: true,
            subgroups: d.vendor != "Mesa",
        },
        model: model(hash),
        workload: Workload {
            prompt_tokens: prompt,
            gen_tokens: 128,
            batch: 1,
            context: 2048,
        },
        results: Results {
            prefill_tok_s: decode * 9.5,
            decode_tok_s: decode,
            ttft_ms: prompt as f64 / (decode * 9.5) * 1000.0,
            token_latency_p50_ms: 1000.0 / decode,
            token_latency_p95_ms: 1100.0 / decode,
            gpu_memory_bytes: Some(300 << 20),
            achieved_gb_s: Some(decode * gb_per_token),
            device_gb_s: Some(bandwidth),
            roofline_fraction: Some(decode * gb_per_token / bandwidth),
        },
        correctness: Correctness {
            passed: true,
            detail: "greedy tokens match the reference".into(),
        },
        cost: Cost::default(),
    }
}

pub fn with_cost(mut r: Record, price: f64, watts: f64) -> Record {
    r.cost = Cost::from_inputs(
        Some(price),
        Some((watts, "given".into())),
        r.results.decode_tok_s,
    );
    r
}

pub fn key(hash: &str, prompt: u32) -> WorkloadKey {
    rec(&nvidia(), hash, prompt, 1.0).workload_key()
}

/// 3 devices x 2 workloads (3 runs each), a failed run and a same-model different workload.
pub fn sample_ledger() -> Vec<Record> {
    let mut v = Vec::new();
    for (d, smol, llama, price, watts) in [
        (nvidia(), 310.0, 128.0, 0.69, 320.0),
        (amd(), 262.0, 104.0, 0.49, 300.0),
        (intel(), 151.0, 58.0, 0.25, 190.0),
    ] {
        for jitter in [0.97, 1.0, 1.02] {
            v.push(with_cost(rec(&d, SMOL, 128, smol * jitter), price, watts));
            v.push(with_cost(rec(&d, LLAMA, 512, llama * jitter), price, watts));
        }
    }
    let mut bad = rec(&intel(), SMOL, 128, 400.0);
    bad.correctness = Correctness {
        passed: false,
        detail: "top-5 logits differ from the reference at token 2".into(),
    };
    v.push(bad);
    v.push(rec(&amd(), LLAMA, 128, 110.0));
    v
}
