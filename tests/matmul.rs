mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use half::f16;
use tokenmill::gpu::{DType, Gpu, GpuError, GpuOptions, GpuTensor};
use tokenmill::ops::matmul::reference;
use tokenmill::ops::{MatMul, MatMulTune};
use tokenmill::quant;

const FORMATS: [DType; 5] = [
    DType::F32,
    DType::F16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
];

/// Absolute tolerance for one output: rounding errors of a K-term dot product grow like
/// sqrt(K) · max|a| · max|w| · eps (random signs); 4x that bound leaves room for the worst
/// element. eps is f32's 2^-23 scaled up to 2^-16 for reduction order and accumulated
/// rounding, or f16's 2^-11 when tiles, products or C are f16 (each factor rounded once).
fn tolerance(k: usize, amax: f32, wmax: f32, f16_used: bool) -> f32 {
    let eps = if f16_used {
        1.0 / 2048.0
    } else {
        1.0 / 65536.0
    };
    4.0 * (k as f32).sqrt() * amax * wmax * eps
}

fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn upload_a(gpu: &Gpu, a: &[f32], m: usize, k: usize, a_f16: bool) -> (GpuTensor, Vec<f32>) {
    if a_f16 {
        let h: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
        let back = h.iter().map(|x| x.to_f32()).collect();
        (gpu.upload_f16("a", &[m, k], &h).unwrap(), back)
    } else {
        (gpu.upload_f32("a", &[m, k], a).unwrap(), a.to_vec())
    }
}

/// Run one matmul with `op` and compare with the CPU reference.
#[allow(clippy::too_many_arguments)]
fn check(gpu: &Gpu, op: &MatMul, fmt: DType, a_f16: bool, m: usize, n: usize, k: usize, seed: u64) {
    let a = rand_vec(m * k, seed, 1.0);
    let w = rand_vec(n * k, seed + 1, 0.5);
    let c0 = rand_vec(m * n, seed + 2, 2.0);
    let bytes = quant::quantize(fmt, &w);
    let (ga, a_used) = upload_a(gpu, &a, m, k, a_f16);
    let gw = gpu.upload_chunked("w", [n, k], fmt, &bytes).unwrap();
    let gc = gpu.upload_f32("c", &[m, n], &c0).unwrap();
    let ds = op.prepare(gpu, &ga, &gw, &gc).unwrap();
    gpu.run(&ds).unwrap();
    let got = gpu.read_f32(&gc).unwrap();
    let want = reference(
        &a_used,
        m,
        k,
        fmt,
        &bytes,
        n,
        op.accumulate.then_some(&c0[..]),
    );
    let wmax = max_abs(&quant::dequantize(fmt, &bytes));
    let tol = tolerance(k, 1.0, wmax, op.tune.f16_tiles);
    let what = format!(
        "{} A={} M={m} N={n} K={k} acc={} {:?}",
        fmt.name(),
        if a_f16 { "f16" } else { "f32" },
        op.accumulate,
        op.tune
    );
    assert_close(&what, &got, &want, tol, 0.0);
}

#[test]
fn matmul_matches_cpu_on_awkward_shapes() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let op = MatMul::new(gpu);
        for fmt in FORMATS {
            for a_f16 in [false, true] {
                let mut seed = 10;
                for k in [32, 96] {
                    for m in [1, 7, 65] {
                        for n in [1, 33, 130] {
                            seed += 3;
                            check(gpu, &op, fmt, a_f16, m, n, k, seed);
                        }
                    }
                }
                for (m, n) in [(65, 130), (1, 33), (7, 1)] {
                    check(gpu, &op, fmt, a_f16, m, n, 2048, 99);
                }
                if !fmt.is_quantized() {
                    // K not a multiple of the tile or of 32 (1000), or of 4 and 8 (13: the
                    // element-wise load paths; one A type per W format covers all four).
                    for (m, n) in [(7, 33), (65, 130)] {
                        check(gpu, &op, fmt, a_f16, m, n, 1000, 7);
                    }
                    if a_f16 == (fmt == DType::F32) {
                        check(gpu, &op, fmt, a_f16, 3, 5, 13, 8);
                    }
                }
            }
        }
    });
}

#[test]
fn matmul_accumulates_into_c() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let op = MatMul::new(gpu).accumulate(true);
        for fmt in [DType::F32, DType::Q4_1, DType::Q8_0] {
            check(gpu, &op, fmt, false, 7, 33, 96, 3);
            check(gpu, &op, fmt, true, 65, 130, 64, 4);
        }
    });
}

/// The structural variants the default tunes do not reach on this device: 4-row blocks, 2-column
/// blocks, f32 tiles, K steps of 32, with and without the subgroup broadcast; f16 math where the
/// device has SHADER_F16.
#[test]
fn matmul_tune_variants_agree() {
    let tunes = [
        MatMulTune::GPU,
        MatMulTune {
            tm: 4,
            tn: 2,
            wg_n: 16,
            wg_m: 4,
            bk: 32,
            f16_tiles: false,
            ..MatMulTune::CPU
        },
        MatMulTune {
            tm: 8,
            tn: 2,
            wg_n: 8,
            wg_m: 8,
            bk: 32,
            subgroup_a: false,
            f16_tiles: false,
            ..MatMulTune::CPU
        },
    ];
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for tune in tunes {
            let op = MatMul::new(gpu).with_tune(tune.fit(gpu)).accumulate(true);
            check(gpu, &op, DType::Q4_0, false, 65, 130, 160, 21);
            check(gpu, &op, DType::F16, true, 7, 33, 96, 22);
        }
    });
}

#[test]
fn matmul_f16_output() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (m, n, k) = (7, 33, 96);
        let a = rand_vec(m * k, 5, 1.0);
        let w = rand_vec(n * k, 6, 0.5);
        let bytes = quant::quantize(DType::Q8_0, &w);
        let ga = gpu.upload_f32("a", &[m, k], &a).unwrap();
        let gw = gpu
            .upload_chunked("w", [n, k], DType::Q8_0, &bytes)
            .unwrap();
        let gc = gpu.zeros("c", &[m, n], DType::F16).unwrap();
        let op = MatMul::new(gpu);
        let res = op.prepare(gpu, &ga, &gw, &gc);
        if !gpu.caps.f16 {
            assert!(
                matches!(res, Err(GpuError::MissingFeature { .. })),
                "{:?}",
                res.err()
            );
            return;
        }
        gpu.run(&res.unwrap()).unwrap();
        let got: Vec<f32> = gpu
            .read_f16(&gc)
            .unwrap()
            .iter()
            .map(|x| x.to_f32())
            .collect();
        let want = reference(&a, m, k, DType::Q8_0, &bytes, n, None);
        // f16 output: relative rounding 2^-11 on top of the f16 matmul bound.
        assert_close(
            "f16 C",
            &got,
            &want,
            tolerance(k, 1.0, 0.5, true),
            1.0 / 1024.0,
        );
    });
}

/// W larger than one storage binding: a 1 MiB limit splits it into row chunks, one dispatch each.
#[test]
fn matmul_chunked_weights() {
    let opts = GpuOptions {
        max_binding_size: Some(1 << 20),
        ..Default::default()
    };
    let gpus: Vec<Gpu> = Gpu::open_all_blocking(&opts)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|g| g.desc.backend != "gl")
        .collect();
    for gpu in &gpus {
        let (m, k) = (5, 1024);
        for (fmt, n) in [(DType::F32, 300), (DType::Q8_0, 2100), (DType::Q4_0, 3700)] {
            let a = rand_vec(m * k, 8, 1.0);
            let w = rand_vec(n * k, 9, 0.5);
            let bytes = quant::quantize(fmt, &w);
            assert!(bytes.len() > 1 << 20);
            let ga = gpu.upload_f32("a", &[m, k], &a).unwrap();
            let gw = gpu.upload_chunked("w", [n, k], fmt, &bytes).unwrap();
            assert!(gw.chunks.len() >= 2, "{} chunks", gw.chunks.len());
            let gc = gpu.zeros("c", &[m, n], DType::F32).unwrap();
            let op = MatMul::new(gpu);
            let ds = op.prepare(gpu, &ga, &gw, &gc).unwrap();
            assert_eq!(ds.len(), gw.chunks.len());
            gpu.run(&ds).unwrap();
            let got = gpu.read_f32(&gc).unwrap();
            let want = reference(&a, m, k, fmt, &bytes, n, None);
            let tol = tolerance(
                k,
                1.0,
                max_abs(&quant::dequantize(fmt, &bytes)),
                op.tune.f16_tiles,
            );
            assert_close(
                &format!("chunked {} on {}", fmt.name(), gpu.desc.name),
                &got,
                &want,
                tol,
                0.0,
            );
        }
    }
}

#[test]
fn matmul_rejects_bad_shapes() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let op = MatMul::new(gpu);
        let a = gpu.zeros("a", &[4, 64], DType::F32).unwrap();
        let w = gpu
            .upload_chunked("w", [8, 64], DType::F32, &vec![0u8; 8 * 64 * 4])
            .unwrap();
        let w_k32 = gpu
            .upload_chunked("w", [8, 32], DType::Q8_0, &[0u8; 8 * 34])
            .unwrap();
        let c = gpu.zeros("c", &[4, 8], DType::F32).unwrap();
        let c_bad = gpu.zeros("c", &[4, 9], DType::F32).unwrap();
        let a_3d = gpu.zeros("a", &[2, 2, 64], DType::F32).unwrap();
        let a_u32 = gpu.zeros("a", &[4, 64], DType::U32).unwrap();
        let cases: [(&str, Result<_, _>); 4] = [
            ("K of w", op.prepare(gpu, &a, &w_k32, &c)),
            ("c shape", op.prepare(gpu, &a, &w, &c_bad)),
            ("a rank", op.prepare(gpu, &a_3d, &w, &c)),
            ("a dtype", op.prepare(gpu, &a_u32, &w, &c)),
        ];
        for (what, res) in cases {
            let err = res
                .err()
                .unwrap_or_else(|| panic!("{what}: expected an error"));
            assert!(
                matches!(
                    err,
                    GpuError::Shape {
                        kernel: "matmul",
                        ..
                    }
                ),
                "{what}: {err}"
            );
        }
        let bad = MatMul::new(gpu).with_tune(MatMulTune {
            bk: 48,
            ..MatMulTune::CPU
        });
        assert!(bad.prepare(gpu, &a, &w, &c).is_err());
        let msg = op.prepare(gpu, &a, &w_k32, &c).err().unwrap().to_string();
        assert!(msg.contains("[8, 32]") && msg.contains("64"), "{msg}");
    });
}
