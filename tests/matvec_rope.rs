//! The QKV matvec with RoPE and the KV store as its epilogue (CPU adapters' decode) against the
//! two-dispatch path it replaces: the same matvec, then `Rope::prepare_kv`.

mod common;

use common::{assert_close, for_each_gpu, rand_vec, read_values};
use tokenmill::gpu::{DType, GpuTensor};
use tokenmill::ops::matvec::Fused;
use tokenmill::ops::rope_kv::{QkvLayout, RopeKv};
use tokenmill::ops::{KvCache, MatVecTune, QMatVec, Rope, RopeConfig, RopeStyle, StepParams};
use tokenmill::quant::quantize;

#[test]
fn rope_epilogue_matches_matvec_then_rope_kv() {
    let (nh, nkv, hd, max_ctx, pos) = (4, 2, 16, 8, 5);
    let lay = QkvLayout::packed(nh, nkv, hd);
    let rows = lay.stride;
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let rope = Rope::new(gpu, RopeConfig::new(hd, 10000.0, RopeStyle::Interleaved)).unwrap();
        let step = gpu.uniform("step", &StepParams::new(pos, 1));
        // 64 columns: a block pair (grouped and read as u64 words on CPU adapters); 96: three
        // blocks, unpaired.
        for (dtype, cols, tune) in [
            (
                DType::Q4_1,
                64,
                MatVecTune {
                    wg: 8,
                    tpr: 1,
                    rows: 6,
                },
            ),
            (
                DType::Q8_0,
                96,
                MatVecTune {
                    wg: 16,
                    tpr: 1,
                    rows: 2,
                },
            ),
        ] {
            let what = format!("{} {dtype:?} {cols} cols {tune:?}", t.label);
            let bytes = quantize(dtype, &rand_vec(rows * cols, 3, 1.0));
            let w = gpu
                .upload_chunked("w", [rows, cols], dtype, &bytes)
                .unwrap();
            let x = gpu
                .upload_f32("x", &[cols], &rand_vec(cols, 4, 2.0))
                .unwrap();
            let nw = gpu
                .upload_f32("nw", &[cols], &rand_vec(cols, 5, 1.5))
                .unwrap();
            let norm = Some((&nw, 1e-5));
            let run = |epilogue: bool| {
                let cache = KvCache::new(gpu, 1, nkv, max_ctx, hd).unwrap();
                let layer = &cache.layers[0];
                let y = gpu.zeros("y", &[rows], DType::F32).unwrap();
                let rope_kv = epilogue.then_some(RopeKv {
                    rope: &rope,
                    layout: lay,
                    step: &step,
                    kv: layer,
                });
                let fused = Fused {
                    norm,
                    rope_kv,
                    ..Default::default()
                };
                let mut plan = QMatVec::prepare_fused(gpu, &w, &x, &y, fused, tune).unwrap();
                if !epilogue {
                    let y1 = GpuTensor {
                        shape: vec![1, rows],
                        ..y.clone()
                    };
                    plan.push(rope.prepare_kv(gpu, &y1, lay, &step, layer).unwrap());
                }
                gpu.run(&plan).unwrap();
                let q = read_values(gpu, &y)[..nh * hd].to_vec();
                (q, read_values(gpu, &layer.k), read_values(gpu, &layer.v))
            };
            let (q, k, v) = run(true);
            let (q_ref, k_ref, v_ref) = run(false);
            // The epilogue stores the rotated q; the k and v of position `pos` land in the caches.
            assert_close(&format!("{what} q"), &q, &q_ref, 1e-5, 1e-5);
            let tol = if gpu.caps.f16 { 2e-3 } else { 1e-5 };
            assert_close(&format!("{what} k cache"), &k, &k_ref, tol, tol);
            assert_close(&format!("{what} v cache"), &v, &v_ref, tol, tol);
            let at = |c: &[f32], h: usize| c[(h * max_ctx + pos) * hd..][..hd].to_vec();
            assert!(at(&k, 1).iter().any(|&e| e != 0.0), "{what}: k not stored");
            assert!(at(&v, 0).iter().any(|&e| e != 0.0), "{what}: v not stored");
        }

        // Threads sharing rows cannot rotate pairs: a shape error.
        let bytes = quantize(DType::Q4_1, &rand_vec(rows * 64, 6, 1.0));
        let w = gpu
            .upload_chunked("w", [rows, 64], DType::Q4_1, &bytes)
            .unwrap();
        let cache = KvCache::new(gpu, 1, nkv, max_ctx, hd).unwrap();
        let x = gpu.zeros("x", &[64], DType::F32).unwrap();
        let nw = gpu.zeros("nw", &[64], DType::F32).unwrap();
        let y = gpu.zeros("y", &[rows], DType::F32).unwrap();
        let rope_kv = Some(RopeKv {
            rope: &rope,
            layout: lay,
            step: &step,
            kv: &cache.layers[0],
        });
        let fused = Fused {
            norm: Some((&nw, 1e-5)),
            rope_kv,
            ..Default::default()
        };
        let err = QMatVec::prepare_fused(gpu, &w, &x, &y, fused, MatVecTune::GPU).unwrap_err();
        assert!(err.to_string().contains("RoPE epilogue"), "{err}");
    });
}
