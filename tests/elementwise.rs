mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::ops::Elementwise;

#[test]
fn elementwise_matches_cpu() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for n in [1usize, 255, 256, 1000, 70_001] {
            let a = rand_vec(n, 1, 6.0);
            let b = rand_vec(n, 2, 3.0);
            let ga = gpu.upload_f32("a", &[n], &a).unwrap();
            let gb = gpu.upload_f32("b", &[n], &b).unwrap();
            let out = gpu.zeros("out", &[n], tokenmill::gpu::DType::F32).unwrap();
            for op in [
                Elementwise::Add,
                Elementwise::Mul,
                Elementwise::scale(0.125),
                Elementwise::Silu,
                Elementwise::Gelu,
                Elementwise::SiluMul,
            ] {
                let d = op.prepare(gpu, &ga, &gb, &out).unwrap();
                gpu.run(&[d]).unwrap();
                let got = gpu.read_f32(&out).unwrap();
                assert_close(
                    &format!("{op:?} n={n}"),
                    &got,
                    &op.reference(&a, &b),
                    1e-5,
                    1e-5,
                );
            }
        }
    });
}

#[test]
fn silu_mul_pairs_halves_the_last_dimension() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (rows, pairs) = (3usize, 333usize);
        let a = rand_vec(rows * pairs * 2, 9, 6.0);
        let ga = gpu.upload_f32("a", &[rows, pairs * 2], &a).unwrap();
        let out = gpu
            .zeros("out", &[rows, pairs], tokenmill::gpu::DType::F32)
            .unwrap();
        let op = Elementwise::SiluMulPairs;
        gpu.run(&[op.prepare(gpu, &ga, &ga, &out).unwrap()])
            .unwrap();
        let got = gpu.read_f32(&out).unwrap();
        assert_close("silu_mul_pairs", &got, &op.reference(&a, &a), 1e-5, 1e-5);
        // The output must be half as long as the pairs.
        let err = op.prepare(gpu, &ga, &ga, &ga).expect_err("shape error");
        assert!(err.to_string().contains("elementwise"), "{err}");
    });
}

#[test]
fn elementwise_rejects_mismatched_shapes() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = gpu.upload_f32("a", &[8], &[0.0; 8]).unwrap();
        let b = gpu.upload_f32("b", &[4], &[0.0; 4]).unwrap();
        let err = Elementwise::Add
            .prepare(gpu, &a, &b, &a)
            .expect_err("shape error");
        let msg = err.to_string();
        assert!(
            msg.contains("elementwise") && msg.contains("[4]") && msg.contains("[8]"),
            "{msg}"
        );
    });
}
