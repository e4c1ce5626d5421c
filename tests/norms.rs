//! RMSNorm (plain and fused with the residual add) and softmax against their CPU references.

mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::DType;
use tokenmill::ops::{RmsNorm, Softmax};

#[test]
fn rms_norm_matches_cpu() {
    // The GPU sums squares in f32 (per-invocation runs of <= 32 terms, then a tree), takes
    // 1/sqrt (a few ULP) and multiplies twice: a relative error of a few 1e-6 per element,
    // against an f64 reference. rtol 2e-5 leaves margin; atol covers results near zero.
    let norm = RmsNorm::new(1e-5);
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for (rows, dim) in [
            (1usize, 1usize),
            (1, 7),
            (3, 255),
            (5, 256),
            (2, 1000),
            (1, 8192),
            (67, 64),
        ] {
            let mut x = rand_vec(rows * dim, 11 + dim as u64, 4.0);
            // A zero row: the output is zero (eps keeps the scale finite).
            if rows > 2 {
                x[dim..2 * dim].fill(0.0);
            }
            let w = rand_vec(dim, 12, 1.5);
            let gx = gpu.upload_f32("x", &[rows, dim], &x).unwrap();
            let gw = gpu.upload_f32("w", &[dim], &w).unwrap();
            let out = gpu.zeros("out", &[rows, dim], DType::F32).unwrap();
            gpu.run(&[norm.prepare(gpu, &gx, &gw, &out).unwrap()])
                .unwrap();
            let got = gpu.read_f32(&out).unwrap();
            assert_close(
                &format!("rms_norm [{rows}, {dim}]"),
                &got,
                &norm.reference(&x, &w),
                1e-6,
                2e-5,
            );
        }
    });
}

#[test]
fn rms_norm_with_residual_matches_cpu() {
    // Same tolerance as the plain norm; the residual sum is one f32 add on both sides: exact.
    let norm = RmsNorm::new(1e-6);
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for (rows, dim) in [(1usize, 1usize), (1, 5), (4, 300), (2, 2048)] {
            let x = rand_vec(rows * dim, 21, 2.0);
            let r = rand_vec(rows * dim, 22, 3.0);
            let w = rand_vec(dim, 23, 1.0);
            let gx = gpu.upload_f32("x", &[rows, dim], &x).unwrap();
            let gr = gpu.upload_f32("residual", &[rows, dim], &r).unwrap();
            let gw = gpu.upload_f32("w", &[dim], &w).unwrap();
            let out = gpu.zeros("out", &[rows, dim], DType::F32).unwrap();
            let d = norm.prepare_residual(gpu, &gx, &gr, &gw, &out).unwrap();
            gpu.run(&[d]).unwrap();
            let mut want_r = r.clone();
            let want = norm.reference_residual(&x, &mut want_r, &w);
            let what = format!("add+rms_norm [{rows}, {dim}]");
            assert_eq!(gpu.read_f32(&gr).unwrap(), want_r, "{what}: residual");
            assert_close(&what, &gpu.read_f32(&out).unwrap(), &want, 1e-6, 2e-5);
        }
    });
}

#[test]
fn rms_norm_rejects_bad_shapes() {
    let norm = RmsNorm::new(1e-5);
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let x = gpu.zeros("x", &[2, 8], DType::F32).unwrap();
        let w = gpu.zeros("w", &[8], DType::F32).unwrap();
        let w7 = gpu.zeros("w", &[7], DType::F32).unwrap();
        let out = gpu.zeros("out", &[2, 8], DType::F32).unwrap();
        let out3 = gpu.zeros("out", &[3, 8], DType::F32).unwrap();
        let xh = gpu.zeros("x", &[2, 8], DType::F16).unwrap();
        let msg = |r: tokenmill::gpu::Result<_>| r.expect_err("an error").to_string();
        let m = msg(norm.prepare(gpu, &x, &w7, &out));
        assert!(
            m.contains("rms_norm") && m.contains("weight") && m.contains("[7]"),
            "{m}"
        );
        let m = msg(norm.prepare(gpu, &x, &w, &out3));
        assert!(m.contains("out") && m.contains("[3, 8]"), "{m}");
        let m = msg(norm.prepare(gpu, &xh, &w, &out));
        assert!(m.contains("f16"), "{m}");
        let m = msg(norm.prepare_residual(gpu, &x, &out3, &w, &out));
        assert!(m.contains("residual"), "{m}");
        let m = msg(RmsNorm::new(f32::NAN).prepare(gpu, &x, &w, &out));
        assert!(m.contains("eps"), "{m}");
    });
}

#[test]
fn softmax_matches_cpu() {
    // Entries with scale*x - max < -16 are below 1.2e-7 and fall under atol. Above that the
    // WGSL bound for exp (3 + 2|x| ULP) is <= 35 ULP = 2.1e-6, plus ~1e-6 for the f32 sum over
    // the row and the division: rtol 1e-5.
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for (rows, n) in [
            (1usize, 1usize),
            (3, 7),
            (2, 255),
            (1, 1000),
            (4, 257),
            (1, 49152),
        ] {
            for (op, range) in [
                (Softmax::default(), 6.0),
                (Softmax::with_temperature(0.7), 4.0),
                (Softmax::default(), 100.0),
            ] {
                let x = rand_vec(rows * n, n as u64, range);
                let gx = gpu.upload_f32("x", &[rows, n], &x).unwrap();
                let out = gpu.zeros("out", &[rows, n], DType::F32).unwrap();
                gpu.run(&[op.prepare(gpu, &gx, &out).unwrap()]).unwrap();
                let got = gpu.read_f32(&out).unwrap();
                let what = format!("softmax [{rows}, {n}] scale {} range {range}", op.scale);
                assert_close(&what, &got, &op.reference(&x, n), 1e-7, 1e-5);
            }
        }
    });
}

#[test]
fn softmax_handles_neg_infinity() {
    // Masked (-inf) entries get exactly 0; a row with every entry -inf gives zeros, not NaN.
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let n = 300;
        let mut x = rand_vec(3 * n, 5, 3.0);
        for i in (0..n).step_by(3) {
            x[i] = f32::NEG_INFINITY;
        }
        x[n..2 * n].fill(f32::NEG_INFINITY);
        x[2 * n + 17] = f32::NEG_INFINITY;
        let gx = gpu.upload_f32("x", &[3, n], &x).unwrap();
        let out = gpu.zeros("out", &[3, n], DType::F32).unwrap();
        let op = Softmax::with_temperature(1.3);
        gpu.run(&[op.prepare(gpu, &gx, &out).unwrap()]).unwrap();
        let got = gpu.read_f32(&out).unwrap();
        assert!(got.iter().all(|v| v.is_finite()), "non-finite output");
        assert!(got[n..2 * n].iter().all(|&v| v == 0.0));
        assert_eq!(got[0], 0.0);
        assert_eq!(got[2 * n + 17], 0.0);
        assert_close("softmax with -inf", &got, &op.reference(&x, n), 1e-7, 1e-5);
    });
}

#[test]
fn softmax_rejects_bad_input() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let x = gpu.zeros("x", &[2, 8], DType::F32).unwrap();
        let out = gpu.zeros("out", &[2, 9], DType::F32).unwrap();
        let m = Softmax::default()
            .prepare(gpu, &x, &out)
            .expect_err("shape error")
            .to_string();
        assert!(m.contains("softmax") && m.contains("[2, 9]"), "{m}");
        let m = Softmax { scale: 0.0 }
            .prepare(gpu, &x, &x)
            .expect_err("scale error")
            .to_string();
        assert!(m.contains("scale"), "{m}");
    });
}
