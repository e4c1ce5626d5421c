//! Shared test support: every adapter on this machine, opened twice — once with every optional
//! feature it has (f16, subgroups) and once with none, so both kernel paths are exercised.
#![allow(dead_code)]

use std::sync::OnceLock;

use tokenmill::gpu::{Gpu, GpuOptions};

pub struct TestGpu {
    pub gpu: Gpu,
    pub label: String,
}

fn open(opts: &GpuOptions, variant: &str) -> Vec<TestGpu> {
    Gpu::open_all_blocking(opts)
        .into_iter()
        .filter_map(|r| match r {
            Ok(gpu) => Some(TestGpu {
                label: format!(
                    "{} ({}, {variant}, f16={}, subgroup={})",
                    gpu.desc.name, gpu.desc.backend, gpu.caps.f16, gpu.caps.subgroup
                ),
                gpu,
            }),
            Err(e) => {
                eprintln!("skipping an adapter that failed to open: {e}");
                None
            }
        })
        // GL adapters duplicate the Vulkan device on Linux and lack compute features we rely on.
        .filter(|t| t.gpu.desc.backend != "gl" || std::env::var("TOKENMILL_TEST_GL").is_ok())
        .collect()
}

/// Every adapter × {full features, no optional features}.
pub fn gpus() -> &'static [TestGpu] {
    static GPUS: OnceLock<Vec<TestGpu>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let mut all = open(&GpuOptions::default(), "full");
        let fallback = GpuOptions {
            allow_f16: false,
            allow_subgroups: false,
            allow_int64: false,
            ..Default::default()
        };
        let has_optional = all
            .iter()
            .any(|t| t.gpu.caps.f16 || t.gpu.caps.subgroup || t.gpu.caps.int64);
        if has_optional {
            all.extend(open(&fallback, "fallback"));
        }
        if all.is_empty() {
            let msg = "no GPU adapter found: run `source scripts/lavapipe.sh` first";
            if std::env::var("CI")
                .map(|v| v == "true" || v == "1")
                .unwrap_or(false)
            {
                panic!("{msg} (CI=true: a missing adapter is a failure)");
            }
            eprintln!("WARNING: {msg}; GPU tests have nothing to run on");
        }
        all
    })
}

/// Run `f` on every test GPU, reporting which one failed.
pub fn for_each_gpu(mut f: impl FnMut(&TestGpu)) {
    for t in gpus() {
        eprintln!("-- on {}", t.label);
        f(t);
    }
}

/// Deterministic pseudo-random values in [-scale, scale).
pub fn rand_vec(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Assert |got - want| <= atol + rtol * |want| elementwise, naming the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let excess = err - (atol + rtol * w.abs());
        // NaN never compares as within tolerance.
        let within = excess <= 0.0;
        if !within && (excess > worst.1 || worst.1 == 0.0) {
            worst = (i, excess.max(f32::MIN_POSITIVE));
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!(
            "{what}: element {i} is {} but expected {} (atol {atol}, rtol {rtol})",
            got[i], want[i]
        );
    }
}

/// A tensor's values as f32, read back as f16 or f32 by its type (KV caches are either).
pub fn read_values(gpu: &Gpu, t: &tokenmill::gpu::GpuTensor) -> Vec<f32> {
    match t.dtype {
        tokenmill::gpu::DType::F16 => gpu
            .read_f16(t)
            .unwrap()
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        _ => gpu.read_f32(t).unwrap(),
    }
}
