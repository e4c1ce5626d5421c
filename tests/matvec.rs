mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, Gpu, GpuError, GpuOptions};
use tokenmill::ops::matvec::Fused;
use tokenmill::ops::{MatVecTune, QMatVec};
use tokenmill::quant::{dequantize, quantize};

const FORMATS: [DType; 5] = [
    DType::F32,
    DType::F16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
];

/// Launch shapes that cover each reduction path: whole-workgroup rows (subgroup or tree),
/// thread-per-row (no reduction), and small row groups reduced by the shared tree.
const TUNES: [MatVecTune; 4] = [
    MatVecTune::GPU,
    MatVecTune::SOFTWARE,
    MatVecTune {
        wg: 32,
        tpr: 8,
        rows: 3,
    },
    MatVecTune {
        wg: 8,
        tpr: 1,
        rows: 5,
    },
];

/// Run y (+)= W x on the GPU and compare with the f64 reference of the dequantized weights.
fn check(
    gpu: &Gpu,
    dtype: DType,
    rows: usize,
    cols: usize,
    accumulate: bool,
    tune: MatVecTune,
    seed: u64,
) -> usize {
    let wf = rand_vec(rows * cols, seed, 1.0);
    let x = rand_vec(cols, seed + 1, 2.0);
    let y0 = rand_vec(rows, seed + 2, 3.0);
    let bytes = quantize(dtype, &wf);
    let w = gpu
        .upload_chunked("w", [rows, cols], dtype, &bytes)
        .unwrap();
    let gx = gpu.upload_f32("x", &[cols], &x).unwrap();
    let gy = gpu.upload_f32("y", &[rows], &y0).unwrap();
    let d = QMatVec::prepare_tuned(gpu, &w, &gx, &gy, accumulate, tune).unwrap();
    gpu.run(&d).unwrap();
    let got = gpu.read_f32(&gy).unwrap();
    let want = QMatVec::reference(dtype, &bytes, cols, &x, accumulate.then_some(&y0[..]));
    // f32 accumulation of K products: rounding grows like sqrt(K) * |w| * |x| (plus |y0| when
    // accumulating). 1e-5 per sqrt(K) is ~100x the expected error and far below the error of
    // any misread weight (|w| * |x| ~ 0.1 or more).
    let wmax = dequantize(dtype, &bytes)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let atol = 1e-5 * (cols as f32).sqrt() * 2.0 * wmax.max(1e-3);
    let what = format!("{dtype:?} {rows}x{cols} acc={accumulate} {tune:?}");
    assert_close(&what, &got, &want, atol, 1e-6);
    w.chunks.len()
}

#[test]
fn matvec_every_format_and_awkward_shape() {
    for_each_gpu(|t| {
        for dtype in FORMATS {
            for (ri, rows) in [1usize, 7, 67, 257].into_iter().enumerate() {
                // cols 32 and 96 have an odd block count (unpaired q8_0 / q4_0 blocks).
                for (ci, cols) in [32usize, 96, 4096].into_iter().enumerate() {
                    // Every tuning meets every column count, with and without accumulation.
                    let tune = TUNES[(ri + ci) % TUNES.len()];
                    check(
                        &t.gpu,
                        dtype,
                        rows,
                        cols,
                        ri % 2 == 1,
                        tune,
                        (rows * 131 + cols) as u64,
                    );
                }
            }
        }
    });
}

/// The fused forms: RMSNorm on load, (gate, up) pairs with SiLU, and both, with and without a
/// residual add, under every reduction path.
#[test]
fn matvec_fused_norm_and_glu() {
    let tunes = [
        MatVecTune::GPU,
        MatVecTune::SOFTWARE,
        MatVecTune {
            wg: 32,
            tpr: 8,
            rows: 4,
        },
        MatVecTune {
            wg: 8,
            tpr: 1,
            rows: 6,
        },
    ];
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let mut case = 0u64;
        // (format, rows, cols, norm, glu): each case gets the next launch shape, so every
        // fused form meets a whole-workgroup and a thread-per-row reduction somewhere.
        let cases = [
            (DType::Q4_1, 130, 96, true, false),
            (DType::Q4_1, 70, 576, false, true),
            (DType::Q4_1, 2, 32, true, true),
            (DType::Q4_1, 198, 64, true, true),
            (DType::Q8_0, 70, 576, true, true),
            (DType::Q4_0, 130, 96, true, true),
            (DType::F16, 34, 64, true, false),
            (DType::Q8_0, 66, 96, false, true),
            // An odd pair count per row: q8_0 units alternate 4- and 8-byte starts (the INT64
            // path realigns them).
            (DType::Q8_0, 50, 576, false, false),
        ];
        for (dtype, rows, cols, norm, glu) in cases {
            case += 1;
            let tune = tunes[case as usize % tunes.len()];
            let accumulate = case.is_multiple_of(3);
            let wf = rand_vec(rows * cols, case, 1.0);
            let x = rand_vec(cols, case + 100, 2.0);
            let nw = rand_vec(cols, case + 200, 1.5);
            let out_rows = if glu { rows / 2 } else { rows };
            let y0 = rand_vec(out_rows, case + 300, 3.0);
            let bytes = quantize(dtype, &wf);
            let w = gpu
                .upload_chunked("w", [rows, cols], dtype, &bytes)
                .unwrap();
            let gx = gpu.upload_f32("x", &[cols], &x).unwrap();
            let gn = gpu.upload_f32("norm", &[cols], &nw).unwrap();
            let gy = gpu.upload_f32("y", &[out_rows], &y0).unwrap();
            let eps = 1e-5;
            let fused = Fused {
                accumulate,
                norm: norm.then_some((&gn, eps)),
                glu,
                ..Default::default()
            };
            let d = QMatVec::prepare_fused(gpu, &w, &gx, &gy, fused, tune).unwrap();
            gpu.run(&d).unwrap();
            let got = gpu.read_f32(&gy).unwrap();
            let want = QMatVec::reference_fused(
                dtype,
                &bytes,
                cols,
                &x,
                norm.then_some((&nw[..], eps)),
                glu,
                accumulate.then_some(&y0[..]),
            );
            // Normed x has |x| ~ |weight| ~ 1.5; a GLU output is a product of two dots.
            let scale = if glu { (cols as f32).sqrt() * 4.0 } else { 4.0 };
            let atol = 2e-5 * (cols as f32).sqrt() * scale;
            let what = format!(
                "{} {dtype:?} {rows}x{cols} norm={norm} glu={glu} acc={accumulate} {tune:?}",
                t.label
            );
            assert_close(&what, &got, &want, atol, 1e-5);
        }
        // GLU needs pairs: an odd row count is a shape error, not a wrong answer.
        let w = gpu
            .upload_chunked("w", [3, 32], DType::F32, &[0u8; 3 * 32 * 4])
            .unwrap();
        let x = gpu.upload_f32("x", &[32], &[0.0; 32]).unwrap();
        let y = gpu.upload_f32("y", &[1], &[0.0]).unwrap();
        let glu = Fused {
            glu: true,
            ..Default::default()
        };
        let err = QMatVec::prepare_fused(gpu, &w, &x, &y, glu, MatVecTune::GPU)
            .expect_err("odd GLU rows")
            .to_string();
        assert!(err.contains("GLU"), "{err}");
    });
}

#[test]
fn software_preset_keeps_every_host_thread_busy() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let preset = |rows| MatVecTune::preset(gpu, rows);
        if !gpu.desc.software {
            assert_eq!(preset(576), MatVecTune::GPU);
            return;
        }
        let threads = tokenmill::ops::matvec::host_threads();
        // The model's decode shapes and a tiny one: the busiest thread (whole workgroups,
        // handed out in turn) gets at most one row group of 8 per thread over an even share.
        for rows in [8, 576, 960, 3072, 49152] {
            let tune = preset(rows);
            assert!(tune.check(gpu).is_ok(), "{tune:?}");
            let per_wg = tune.rows_per_workgroup() as usize;
            let wgs = rows.div_ceil(per_wg);
            let busiest = wgs.div_ceil(threads) * per_wg;
            let even = rows.div_ceil(threads);
            assert!(
                busiest <= even.max(8) + 8 * threads,
                "{rows} rows as {tune:?}: {wgs} workgroups, busiest thread {busiest} rows, even share {even}"
            );
        }
    });
}

#[test]
fn matvec_large_k_and_accumulate() {
    for_each_gpu(|t| {
        for dtype in FORMATS {
            check(
                &t.gpu,
                dtype,
                33,
                11008,
                false,
                MatVecTune::for_gpu(&t.gpu),
                5,
            );
            check(&t.gpu, dtype, 33, 11008, true, MatVecTune::GPU, 6);
            check(&t.gpu, dtype, 33, 11008, true, TUNES[3], 7);
        }
    });
}

#[test]
fn matvec_over_several_chunks() {
    let opts = GpuOptions {
        max_binding_size: Some(1 << 20),
        ..Default::default()
    };
    let gpus: Vec<Gpu> = Gpu::open_all_blocking(&opts)
        .into_iter()
        .filter_map(|r| r.ok())
        .filter(|g| g.desc.backend != "gl")
        .collect();
    for gpu in &gpus {
        eprintln!("-- on {} (1 MiB bindings)", gpu.desc.name);
        // Each weight is 1.2 to 2.3 MiB, so 2 or 3 chunks (q4_0: 2304 bytes a row, 455 rows a chunk).
        for (dtype, rows, cols) in [
            (DType::Q4_0, 1000, 4096),
            (DType::Q8_0, 700, 2048),
            (DType::Q4_1, 1000, 2048),
            (DType::F32, 300, 1024),
            (DType::F16, 601, 1024),
        ] {
            for tune in [MatVecTune::GPU, MatVecTune::SOFTWARE] {
                let chunks = check(gpu, dtype, rows, cols, rows % 2 == 1, tune, 9);
                assert!(
                    chunks > 1,
                    "{dtype:?} {rows}x{cols} should need several chunks, got {chunks}"
                );
            }
        }
    }
}

#[test]
fn matvec_rejects_bad_shapes_and_types() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let w = gpu
            .upload_chunked(
                "w",
                [4, 64],
                DType::Q4_0,
                &quantize(DType::Q4_0, &[0.5; 256]),
            )
            .unwrap();
        let y = gpu.zeros("y", &[4], DType::F32).unwrap();
        let x_short = gpu.zeros("x", &[32], DType::F32).unwrap();
        let msg = QMatVec::prepare(gpu, &w, &x_short, &y, false)
            .expect_err("x length")
            .to_string();
        assert!(
            msg.contains("matvec") && msg.contains("[32]") && msg.contains("[64]"),
            "{msg}"
        );

        let x_f16 = gpu.zeros("x", &[64], DType::F16).unwrap();
        let err = QMatVec::prepare(gpu, &w, &x_f16, &y, false).expect_err("x dtype");
        assert!(
            matches!(
                err,
                GpuError::Shape {
                    kernel: "matvec",
                    ..
                }
            ),
            "{err}"
        );

        let x = gpu.zeros("x", &[64], DType::F32).unwrap();
        let y_long = gpu.zeros("y", &[5], DType::F32).unwrap();
        let msg = QMatVec::prepare(gpu, &w, &x, &y_long, true)
            .expect_err("y length")
            .to_string();
        assert!(msg.contains("[5]") && msg.contains("[4]"), "{msg}");

        let wu = gpu
            .upload_chunked("w", [4, 64], DType::U32, &[0u8; 1024])
            .unwrap();
        let msg = QMatVec::prepare(gpu, &wu, &x, &y, false)
            .expect_err("W dtype")
            .to_string();
        assert!(msg.contains("u32"), "{msg}");

        let w30 = gpu
            .upload_chunked("w", [4, 30], DType::F32, &[0u8; 480])
            .unwrap();
        let x30 = gpu.zeros("x", &[30], DType::F32).unwrap();
        let msg = QMatVec::prepare(gpu, &w30, &x30, &y, false)
            .expect_err("cols")
            .to_string();
        assert!(msg.contains("multiple of 32"), "{msg}");

        let bad = MatVecTune {
            wg: 48,
            tpr: 1,
            rows: 2,
        };
        let msg = QMatVec::prepare_tuned(gpu, &w, &x, &y, false, bad)
            .expect_err("tune")
            .to_string();
        assert!(msg.contains("tuning"), "{msg}");
    });
}
