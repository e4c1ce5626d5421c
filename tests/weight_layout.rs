//! Weights stored in row groups (CPU adapters' layout, src/gpu/chunked.rs) read the same as
//! row-major ones in every kernel that reads weights: matvec, matmul and the embedding gather,
//! each checked against its CPU reference with the same bytes uploaded both ways. The row
//! count is not a multiple of the group, so the last group is padded.

mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, GpuError, ROW_GROUP};
use tokenmill::ops::{matmul, Embedding, MatMul, MatVecTune, QMatVec};
use tokenmill::quant::quantize;

#[test]
fn grouped_and_row_major_weights_agree() {
    let (rows, cols, m) = (37, 192, 3);
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for dtype in [DType::Q4_1, DType::Q8_0] {
            let bytes = quantize(dtype, &rand_vec(rows * cols, 11, 1.0));
            let x = rand_vec(cols, 12, 2.0);
            let a = rand_vec(m * cols, 13, 1.0);
            let ids = [36u32, 0, 17, 16, 15];
            for group in [1, ROW_GROUP] {
                let what = format!("{} {dtype:?} group {group}", t.label);
                let w = gpu
                    .upload_weight("w", [rows, cols], dtype, &bytes, 1, group)
                    .unwrap();
                assert_eq!(w.grouped(), group > 1, "{what}");

                // Matvec: grouped weights are read as u64 words, so they need SHADER_INT64.
                let gx = gpu.upload_f32("x", &[cols], &x).unwrap();
                let gy = gpu.zeros("y", &[rows], DType::F32).unwrap();
                let tune = MatVecTune {
                    wg: 8,
                    tpr: 1,
                    rows: 5,
                };
                match QMatVec::prepare_tuned(gpu, &w, &gx, &gy, false, tune) {
                    Ok(d) => {
                        gpu.run(&d).unwrap();
                        let want = QMatVec::reference(dtype, &bytes, cols, &x, None);
                        assert_close(&what, &gpu.read_f32(&gy).unwrap(), &want, 2e-3, 1e-5);
                    }
                    Err(GpuError::MissingFeature { feature, .. }) => {
                        assert!(group > 1 && !gpu.caps.int64, "{what}: {feature}");
                    }
                    Err(e) => panic!("{what}: {e}"),
                }

                // Matmul (prefill).
                let ga = gpu.upload_f32("a", &[m, cols], &a).unwrap();
                let gc = gpu.zeros("c", &[m, rows], DType::F32).unwrap();
                let op = MatMul::new(gpu);
                gpu.run(&op.prepare(gpu, &ga, &w, &gc).unwrap()).unwrap();
                let want = matmul::reference(&a, m, cols, dtype, &bytes, rows, None);
                let tol = if op.tune.f16_tiles { 5e-2 } else { 2e-3 };
                assert_close(&what, &gpu.read_f32(&gc).unwrap(), &want, tol, 1e-3);

                // Embedding rows, bit for bit.
                let gids = gpu.upload_u32("ids", &[ids.len()], &ids).unwrap();
                let out = gpu.zeros("out", &[ids.len(), cols], DType::F32).unwrap();
                gpu.run(&Embedding::prepare(gpu, &gids, &w, &out).unwrap())
                    .unwrap();
                let want = Embedding::reference(&ids, &bytes, dtype, cols);
                assert_eq!(gpu.read_f32(&out).unwrap(), want, "{what}");
            }
        }
    });
}

#[test]
fn grouping_needs_paired_q4_1_or_q8_0() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        // Three blocks a row (no whole pair) and q4_0 stay row-major.
        let odd = quantize(DType::Q8_0, &rand_vec(4 * 96, 1, 1.0));
        let err = gpu
            .upload_weight("w", [4, 96], DType::Q8_0, &odd, 1, ROW_GROUP)
            .expect_err("odd block count");
        assert!(err.to_string().contains("groups"), "{err}");
        let q4_0 = quantize(DType::Q4_0, &rand_vec(4 * 64, 2, 1.0));
        assert!(gpu
            .upload_weight("w", [4, 64], DType::Q4_0, &q4_0, 1, ROW_GROUP)
            .is_err());
        assert_eq!(gpu.weight_group(DType::Q4_0, 64), 1);
        let expect = if gpu.desc.software && gpu.caps.int64 {
            ROW_GROUP
        } else {
            1
        };
        assert_eq!(gpu.weight_group(DType::Q4_1, 576), expect, "{}", t.label);
        assert_eq!(gpu.weight_group(DType::Q8_0, 96), 1);
    });
}
