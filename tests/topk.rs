//! Argmax and top-k over logits against the CPU reference: ties (lowest index first), negative
//! values, -inf entries, vocab sizes from 1 to past one merge level. The GPU copies values and
//! indices, so results must match exactly.

mod common;

use common::{for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, Gpu};
use tokenmill::ops::{Argmax, TopK};

fn gpu_argmax(gpu: &Gpu, x: &[f32]) -> u32 {
    let logits = gpu.upload_f32("logits", &[x.len()], x).unwrap();
    let out = gpu.zeros("argmax", &[1], DType::U32).unwrap();
    gpu.run(&Argmax::prepare(gpu, &logits, &out).unwrap())
        .unwrap();
    gpu.read_u32(&out).unwrap()[0]
}

/// Top-k by both paths (per-thread lists and workgroup rounds), which must agree.
fn gpu_topk(gpu: &Gpu, x: &[f32], k: usize) -> Vec<(f32, u32)> {
    let logits = gpu.upload_f32("logits", &[1, x.len()], x).unwrap();
    let run = |local: bool| {
        let out = gpu.zeros("topk", &[k, 2], DType::U32).unwrap();
        let op = TopK { k };
        let d = if local {
            op.prepare_local(gpu, &logits, &out)
        } else {
            op.prepare_rounds(gpu, &logits, &out)
        };
        gpu.run(&d.unwrap()).unwrap();
        TopK::unpack(&gpu.read_u32(&out).unwrap())
    };
    let local = run(true);
    assert_eq!(
        local,
        run(false),
        "top-{k} of {}: the two paths differ",
        x.len()
    );
    local
}

/// Logit vectors that stress ordering: random, heavy ties, all negative, -inf entries.
fn cases(n: usize) -> Vec<(&'static str, Vec<f32>)> {
    let r = rand_vec(n, n as u64, 8.0);
    let ties: Vec<f32> = r.iter().map(|v| (v * 0.5).round()).collect();
    let negative: Vec<f32> = r.iter().map(|v| -v.abs() - 1.0).collect();
    let mut masked = r.clone();
    for (i, v) in masked.iter_mut().enumerate() {
        if i % 3 != 1 {
            *v = f32::NEG_INFINITY;
        }
    }
    let mut out = vec![
        ("random", r),
        ("ties", ties),
        ("negative", negative),
        ("masked", masked),
        ("all equal", vec![0.25; n]),
        ("all -inf", vec![f32::NEG_INFINITY; n]),
    ];
    if n > 4 {
        // -0 and +0 are equal: the lower index wins.
        let mut zeros = vec![-1.0; n];
        zeros[n - 1] = 0.0;
        zeros[n / 2] = -0.0;
        out.push(("signed zeros", zeros));
    }
    out
}

#[test]
fn argmax_matches_cpu() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for n in [1usize, 5, 1000, 4097, 49152, 152064] {
            for (name, x) in cases(n) {
                assert_eq!(
                    gpu_argmax(gpu, &x),
                    Argmax::reference(&x),
                    "argmax n={n} {name}"
                );
            }
        }
        // The maximum in the last element, and ties across workgroup chunks.
        let mut x = rand_vec(70_000, 3, 1.0);
        x[69_999] = 5.0;
        assert_eq!(gpu_argmax(gpu, &x), 69_999);
        x[40_000] = 5.0;
        x[5_000] = 5.0;
        assert_eq!(gpu_argmax(gpu, &x), 5_000);
    });
}

#[test]
fn topk_matches_cpu() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        // Lavapipe runs the k rounds of barriers slowly: fewer cases for the big vocabularies.
        for (n, ks, n_cases) in [
            (1usize, &[1usize][..], 7),
            (5, &[1, 5][..], 7),
            (1000, &[1, 5, TopK::DEFAULT_K, TopK::MAX_K][..], 7),
            (2049, &[1, TopK::MAX_K][..], 7),
            (49152, &[TopK::DEFAULT_K][..], 4),
            (152064, &[TopK::MAX_K][..], 4),
        ] {
            for &k in ks {
                for (name, x) in cases(n).into_iter().take(n_cases) {
                    let want = TopK { k }.reference(&x);
                    let got = gpu_topk(gpu, &x, k);
                    assert_eq!(got, want, "top-{k} of n={n} {name}");
                }
            }
        }
    });
}

#[test]
fn topk_two_merge_levels() {
    // Past wg * wg * 8 logits (524288 with 256 invocations) the lists need two merge passes.
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let n = 600_000;
        let mut x: Vec<f32> = rand_vec(n, 77, 4.0)
            .iter()
            .map(|v| (v * 8.0).round())
            .collect();
        x[599_999] = 100.0;
        x[1] = 100.0;
        let k = TopK::MAX_K;
        assert_eq!(gpu_topk(gpu, &x, k), TopK { k }.reference(&x));
        assert_eq!(gpu_argmax(gpu, &x), 1);
    });
}

#[test]
fn topk_rejects_bad_input() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let logits = gpu.zeros("logits", &[100], DType::F32).unwrap();
        let msg = |r: tokenmill::gpu::Result<Vec<tokenmill::gpu::Dispatch>>| {
            r.expect_err("an error").to_string()
        };
        for k in [0usize, 65] {
            let out = gpu.zeros("out", &[k.max(1), 2], DType::U32).unwrap();
            assert!(msg(TopK { k }.prepare(gpu, &logits, &out)).contains("k ="));
        }
        let small = gpu.zeros("logits", &[5], DType::F32).unwrap();
        let out = gpu.zeros("out", &[6, 2], DType::U32).unwrap();
        assert!(msg(TopK { k: 6 }.prepare(gpu, &small, &out)).contains("5 logits"));
        let out = gpu.zeros("out", &[40], DType::U32).unwrap();
        let m = msg(TopK::default().prepare(gpu, &logits, &out));
        assert!(m.contains("topk") && m.contains("[40, 2]"), "{m}");
        let ints = gpu.zeros("logits", &[100], DType::U32).unwrap();
        let out = gpu.zeros("out", &[1], DType::U32).unwrap();
        assert!(msg(Argmax::prepare(gpu, &ints, &out)).contains("u32"));
        let wide = gpu.zeros("out", &[2], DType::U32).unwrap();
        assert!(msg(Argmax::prepare(gpu, &logits, &wide)).contains("argmax"));
    });
}
