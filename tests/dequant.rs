mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, GpuError};
use tokenmill::ops::Dequant;
use tokenmill::quant::quantize;

/// Dequantize on the GPU to `out` (F32 or F16) and compare with the CPU decode of the same
/// bytes. To f32 the results are exact up to f32 rounding of d * q (+ m); to f16 they are
/// rounded to f16 once more (relative 2^-11).
fn check(t: &common::TestGpu, src: DType, out: DType, n: usize) {
    let gpu = &t.gpu;
    let x = rand_vec(n, n as u64, 4.0);
    let bytes = quantize(src, &x);
    let gs = gpu.upload("src", &[n], src, &bytes).unwrap();
    let go = gpu.zeros("out", &[n], out).unwrap();
    let d = Dequant::prepare(gpu, &gs, &go).unwrap();
    gpu.run(&[d]).unwrap();
    let want = Dequant::reference(src, &bytes);
    let what = format!("{src:?} -> {out:?}, n={n}");
    if out == DType::F32 {
        let got = gpu.read_f32(&go).unwrap();
        assert_close(&what, &got, &want, 1e-6, 1e-6);
    } else {
        let got: Vec<f32> = gpu
            .read_f16(&go)
            .unwrap()
            .iter()
            .map(|h| h.to_f32())
            .collect();
        assert_close(&what, &got, &want, 1e-6, 1.0 / 1024.0);
    }
}

#[test]
fn dequant_every_format_to_f32_and_f16() {
    for_each_gpu(|t| {
        for src in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
            // Odd and even block counts (q8_0 / q4_0 blocks alternate word alignment), and a
            // count that is not a multiple of the workgroup.
            for n in [32usize, 96, 4096, 32 * 1001] {
                check(t, src, DType::F32, n);
                check(t, src, DType::F16, n);
            }
        }
        // f16 sources of odd length: the last word holds one value.
        for n in [1usize, 7, 4096, 70_001] {
            check(t, DType::F16, DType::F32, n);
            check(t, DType::F16, DType::F16, n);
        }
    });
}

#[test]
fn dequant_rejects_bad_types_and_shapes() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let q = gpu
            .upload(
                "src",
                &[64],
                DType::Q4_0,
                &quantize(DType::Q4_0, &[1.0; 64]),
            )
            .unwrap();
        let f = gpu.zeros("out", &[64], DType::F32).unwrap();
        let err = Dequant::prepare(gpu, &f, &f).expect_err("f32 source");
        assert!(
            matches!(
                err,
                GpuError::Shape {
                    kernel: "dequant",
                    ..
                }
            ),
            "{err}"
        );

        let short = gpu.zeros("out", &[32], DType::F32).unwrap();
        let msg = Dequant::prepare(gpu, &q, &short)
            .expect_err("length")
            .to_string();
        assert!(msg.contains("[32]") && msg.contains("[64]"), "{msg}");

        let wrong = gpu.zeros("out", &[64], DType::U32).unwrap();
        let msg = Dequant::prepare(gpu, &q, &wrong)
            .expect_err("out dtype")
            .to_string();
        assert!(msg.contains("u32"), "{msg}");
    });
}
