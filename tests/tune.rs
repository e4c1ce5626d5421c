//! Autotuning: the cache file (round trip, bad files ignored, key changes, deletion), the
//! lookups ops make, and the tuner on every adapter with tuned results against the CPU
//! reference. Tuner runs use tiny shapes and two or three candidates: lavapipe compiles slowly.

mod common;
#[path = "common/model_file.rs"]
mod model_file;

use std::path::PathBuf;
use std::sync::Mutex;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, Gpu};
use tokenmill::ops::attention::Attention;
use tokenmill::ops::{MatMul, MatMulTune, MatVecTune, QMatVec};
use tokenmill::quant::dequantize;
use tokenmill::tune::tuner::{self, synthetic_weights, TuneOptions, Workload};
use tokenmill::tune::{
    self, AttnChoice, AttnShape, CacheLoad, DeviceKey, MatMulChoice, MatVecChoice, Tuning,
};

/// Tests that set a device's tuning hold this, so they never see each other's tables.
static TUNING: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    TUNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn key() -> DeviceKey {
    DeviceKey {
        adapter: "Test GPU 9000".into(),
        vendor_id: 0x10de,
        device_id: 0x1234,
        backend: "vulkan".into(),
        driver: "test driver".into(),
        driver_info: "1.2.3".into(),
        shaders: tune::shader_hash(),
        version: "0.1.0".into(),
        f16: true,
        subgroup: false,
    }
}

fn sample() -> Tuning {
    let mut t = Tuning::default();
    t.set_matvec(MatVecChoice {
        dtype: DType::Q4_1,
        rows: 576,
        cols: 1536,
        tune: MatVecTune {
            wg: 8,
            tpr: 1,
            rows: 32,
        },
        speedup: 1.2,
    });
    t.set_matmul(MatMulChoice {
        dtype: DType::Q8_0,
        tune: MatMulTune {
            bk: 32,
            ..MatMulTune::CPU
        },
        speedup: 1.1,
    });
    t.set_attention(AttnChoice {
        shape: AttnShape {
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            max_ctx: 512,
        },
        splits: 4,
        speedup: 1.05,
    });
    t
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tokenmill-tune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn cache_round_trip() {
    let dir = temp_dir("roundtrip");
    let k = key();
    let path = tune::cache_path(&dir, &k);
    assert!(path.starts_with(dir.join("tune")), "{}", path.display());
    assert_eq!(tune::load(&path, &k), CacheLoad::Missing);
    let t = sample();
    tune::save(&path, &k, &t).unwrap();
    assert_eq!(tune::load(&path, &k), CacheLoad::Hit(t.clone()));
    // Saving again replaces the file; no temporary file is left beside it.
    let mut t2 = t.clone();
    t2.merge(&Tuning {
        matvec: vec![MatVecChoice {
            rows: 192,
            ..t.matvec[0]
        }],
        ..Default::default()
    });
    tune::save(&path, &k, &t2).unwrap();
    assert_eq!(tune::load(&path, &k).tuning(), Some(t2.clone()));
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        t2.matvec(DType::Q4_1, 192, 1536),
        Some(t.matvec[0].tune),
        "merge adds"
    );
    assert_eq!(t2.matvec(DType::Q4_1, 576, 1536), Some(t.matvec[0].tune));
    assert_eq!(t2.matvec(DType::Q4_0, 576, 1536), None, "exact match only");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_files_are_ignored() {
    let dir = temp_dir("bad");
    let k = key();
    let path = tune::cache_path(&dir, &k);
    tune::save(&path, &k, &sample()).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let ignored = |what: &str| match tune::load(&path, &k) {
        CacheLoad::Ignored(why) => eprintln!("{what}: {why}"),
        other => panic!("{what}: expected the file to be ignored, got {other:?}"),
    };

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    ignored("truncated");
    std::fs::write(&path, b"\x00\xff not json at all").unwrap();
    ignored("garbage");
    std::fs::write(&path, "").unwrap();
    ignored("empty");
    std::fs::write(&path, "{\"format\": 1}").unwrap();
    ignored("fields missing");
    std::fs::write(&path, good.replace("\"format\": 1", "\"format\": 99")).unwrap();
    ignored("another format");

    // A file measured under another driver, renamed to this key's name.
    let other = DeviceKey {
        driver: "other driver".into(),
        ..key()
    };
    tune::save(&path, &other, &sample()).unwrap();
    ignored("another key");
    // A file whose recorded key was edited to match but whose device fields were not.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&other.hash(), &k.hash())).unwrap();
    ignored("forged key");

    // A directory where the file should be.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    ignored("a directory");
    std::fs::remove_dir(&path).unwrap();

    // Whatever was there, a save replaces it and is read back.
    std::fs::write(&path, "junk").unwrap();
    tune::save(&path, &k, &sample()).unwrap();
    assert_eq!(tune::load(&path, &k).tuning(), Some(sample()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn key_changes_with_driver_shaders_and_device() {
    let k = key();
    assert_eq!(k.hash(), key().hash(), "deterministic");
    assert_eq!(k.hash().len(), 64);
    let changed = [
        DeviceKey {
            driver: "test driver 2".into(),
            ..key()
        },
        DeviceKey {
            driver_info: "1.2.4".into(),
            ..key()
        },
        DeviceKey {
            shaders: "0".repeat(64),
            ..key()
        },
        DeviceKey {
            adapter: "Test GPU 9001".into(),
            ..key()
        },
        DeviceKey {
            device_id: 0x1235,
            ..key()
        },
        DeviceKey {
            version: "0.2.0".into(),
            ..key()
        },
        DeviceKey {
            f16: false,
            ..key()
        },
        // Field boundaries count: moving text from one field to the next is another key.
        DeviceKey {
            driver: "test drive".into(),
            driver_info: "r1.2.3".into(),
            ..key()
        },
    ];
    let dir = PathBuf::from("/cache");
    for c in &changed {
        assert_ne!(c.hash(), k.hash(), "{c:?}");
        assert_ne!(tune::cache_path(&dir, c), tune::cache_path(&dir, &k));
    }
    let h = tune::shader_hash();
    assert_eq!(h, tune::shader_hash());
    assert_eq!(h.len(), 64);
}

#[test]
fn deleted_cache_gives_presets() {
    let _g = lock();
    let dir = temp_dir("deleted");
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let k = DeviceKey::of(gpu);
        let path = tune::cache_path(&dir, &k);
        let mut tuned = Tuning::default();
        let other = MatVecTune {
            wg: 4,
            tpr: 1,
            rows: 8,
        };
        tuned.set_matvec(MatVecChoice {
            dtype: DType::Q8_0,
            rows: 64,
            cols: 64,
            tune: other,
            speedup: 1.5,
        });
        tune::save(&path, &k, &tuned).unwrap();
        gpu.set_tuning(tune::load(&path, &k).tuning().unwrap_or_default());
        assert_eq!(MatVecTune::for_shape(gpu, DType::Q8_0, 64, 64), other);

        std::fs::remove_dir_all(dir.join("tune")).unwrap();
        assert_eq!(tune::load(&path, &k), CacheLoad::Missing);
        gpu.set_tuning(tune::load(&path, &k).tuning().unwrap_or_default());
        assert!(gpu.tuning().is_empty());
        assert_eq!(
            MatVecTune::for_shape(gpu, DType::Q8_0, 64, 64),
            MatVecTune::preset(gpu, 64)
        );
        assert_eq!(
            MatMulTune::for_dtype(gpu, DType::Q4_1),
            MatMulTune::for_device(gpu)
        );
        let attn = Attention::new(9, 3, 64);
        assert_eq!(
            tune::attention_splits(gpu, &attn, 2048),
            attn.preset_splits(gpu, 2048)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lookups_match_exactly_and_skip_invalid_choices() {
    let _g = lock();
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let good = MatVecTune {
            wg: 16,
            tpr: 1,
            rows: 16,
        };
        let bad = MatVecTune {
            wg: 3,
            tpr: 1,
            rows: 16,
        };
        let mut tuning = sample();
        for (rows, tune) in [(100, good), (101, bad)] {
            tuning.set_matvec(MatVecChoice {
                dtype: DType::F16,
                rows,
                cols: 64,
                tune,
                speedup: 2.0,
            });
        }
        tuning.set_attention(AttnChoice {
            shape: AttnShape::of(&Attention::new(4, 2, 16), 100),
            splits: 0,
            speedup: 1.0,
        });
        gpu.set_tuning(tuning);
        assert_eq!(MatVecTune::for_shape(gpu, DType::F16, 100, 64), good);
        assert_eq!(
            MatVecTune::for_shape(gpu, DType::F16, 101, 64),
            MatVecTune::preset(gpu, 101)
        );
        assert_eq!(
            MatVecTune::for_shape(gpu, DType::F16, 100, 96),
            MatVecTune::preset(gpu, 100)
        );
        let attn = Attention::new(9, 3, 64);
        assert_eq!(tune::attention_splits(gpu, &attn, 512), 4);
        assert_eq!(
            tune::attention_splits(gpu, &attn, 1024),
            attn.preset_splits(gpu, 1024)
        );
        // Zero splits cannot run: the rule applies.
        let small = Attention::new(4, 2, 16);
        assert_eq!(tune::attention_splits(gpu, &small, 100), 1);
        let mm = MatMulTune {
            bk: 32,
            ..MatMulTune::CPU
        };
        let want = if mm.check(gpu).is_ok() {
            mm
        } else {
            MatMulTune::for_device(gpu)
        };
        assert_eq!(MatMulTune::for_dtype(gpu, DType::Q8_0), want);
        assert_eq!(
            MatMulTune::for_dtype(gpu, DType::Q4_0),
            MatMulTune::for_device(gpu)
        );
        gpu.set_tuning(Tuning::default());
    });
}

#[test]
fn workload_missing_keeps_only_untuned_shapes() {
    let attn = AttnShape::of(&Attention::new(9, 3, 64), 512);
    let work = Workload {
        matvec: vec![(DType::Q4_1, 576, 1536), (DType::Q4_1, 192, 576)],
        matmul_m: 64,
        matmul: vec![
            (DType::Q4_1, vec![(576, 1536)]),
            (DType::Q8_0, vec![(8, 32)]),
        ],
        attention: vec![
            attn,
            AttnShape {
                max_ctx: 2048,
                ..attn
            },
        ],
    };
    assert_eq!(work.len(), 6);
    assert_eq!(work.missing(&Tuning::default()), work);
    let m = work.missing(&sample());
    assert_eq!(m.matvec, vec![(DType::Q4_1, 192, 576)]);
    assert_eq!(m.matmul, vec![(DType::Q4_1, vec![(576, 1536)])]);
    assert_eq!(
        m.attention,
        vec![AttnShape {
            max_ctx: 2048,
            ..attn
        }]
    );
    assert!(work
        .missing(&{
            let mut t = sample();
            t.merge(&Tuning {
                matvec: vec![MatVecChoice {
                    rows: 192,
                    cols: 576,
                    ..sample().matvec[0]
                }],
                matmul: vec![MatMulChoice {
                    dtype: DType::Q4_1,
                    ..sample().matmul[0]
                }],
                attention: vec![AttnChoice {
                    shape: AttnShape {
                        max_ctx: 2048,
                        ..attn
                    },
                    ..sample().attention[0]
                }],
            });
            t
        })
        .is_empty());
}

#[test]
fn synthetic_weights_are_finite_and_sized() {
    for dtype in [
        DType::F32,
        DType::F16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
    ] {
        let b = synthetic_weights(dtype, 3, 64, 1);
        assert_eq!(b.len(), dtype.bytes_for(3 * 64).unwrap());
        let v = dequantize(dtype, &b);
        assert!(
            v.iter().all(|x| x.is_finite() && x.abs() < 20.0),
            "{dtype:?}"
        );
        assert!(v.iter().any(|&x| x != 0.0), "{dtype:?}");
    }
}

/// Small, fast options: few launches, few repeats, the given candidates.
fn quick(matvec: Vec<MatVecTune>) -> TuneOptions {
    TuneOptions {
        max_candidates: 3,
        repeats: 2,
        target_secs: 0.002,
        max_per_submit: 4,
        span_bytes: 1 << 16,
        matvec_candidates: Some(matvec),
        matmul_candidates: Some(vec![]),
        split_candidates: Some(vec![2]),
        ..Default::default()
    }
}

/// Run the model-side matvec (`QMatVec::prepare`, which consults the tuning) and compare it
/// with the CPU reference.
fn check_prepared(gpu: &Gpu, dtype: DType, rows: usize, cols: usize, seed: u64) {
    let bytes = synthetic_weights(dtype, rows, cols, seed);
    let x = rand_vec(cols, seed + 1, 1.0);
    let w = gpu
        .upload_chunked("w", [rows, cols], dtype, &bytes)
        .unwrap();
    let gx = gpu.upload_f32("x", &[cols], &x).unwrap();
    let gy = gpu.zeros("y", &[rows], DType::F32).unwrap();
    let d = QMatVec::prepare(gpu, &w, &gx, &gy, false).unwrap();
    gpu.run(&d).unwrap();
    let got = gpu.read_f32(&gy).unwrap();
    let want = QMatVec::reference(dtype, &bytes, cols, &x, None);
    let wmax = dequantize(dtype, &bytes)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let atol = 1e-5 * (cols as f32).sqrt() * 2.0 * wmax.max(1e-3);
    let tune = MatVecTune::for_shape(gpu, dtype, rows, cols);
    assert_close(
        &format!("{dtype:?} {rows}x{cols} {tune:?}"),
        &got,
        &want,
        atol,
        1e-6,
    );
}

#[test]
fn tuner_picks_a_valid_matvec_that_matches_the_reference() {
    let _g = lock();
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let alt = if gpu.desc.software {
            MatVecTune {
                wg: 8,
                tpr: 1,
                rows: 16,
            }
        } else {
            MatVecTune {
                wg: 32,
                tpr: 32,
                rows: 1,
            }
        };
        let (rows, cols) = (70, 96);
        let opts = quick(vec![alt]);
        let (choice, report) = tuner::tune_matvec(gpu, DType::Q4_1, rows, cols, &opts).unwrap();
        eprintln!("{report:?}");
        assert_eq!(
            (choice.dtype, choice.rows, choice.cols),
            (DType::Q4_1, rows, cols)
        );
        assert!([MatVecTune::preset(gpu, rows), alt].contains(&choice.tune));
        assert!(choice.tune.check(gpu).is_ok());
        assert_eq!(report.trials.len(), 2, "both candidates ran");
        assert!(report.trials.iter().all(|t| t.secs > 0.0));
        assert!(report.speedup() >= 1.0);

        // Whatever was chosen, and the other candidate forced, the prepared matvec is right.
        for tune in [choice.tune, alt] {
            let mut tuning = Tuning::default();
            tuning.set_matvec(MatVecChoice { tune, ..choice });
            gpu.set_tuning(tuning);
            assert_eq!(MatVecTune::for_shape(gpu, DType::Q4_1, rows, cols), tune);
            check_prepared(gpu, DType::Q4_1, rows, cols, 3);
        }
        gpu.set_tuning(Tuning::default());
    });
}

#[test]
fn tuner_runs_matmul_and_attention_on_tiny_shapes() {
    let _g = lock();
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let attn = AttnShape::of(&Attention::new(4, 2, 16), 64);
        let work = Workload {
            matvec: vec![(DType::Q8_0, 40, 64)],
            matmul_m: 8,
            matmul: vec![(DType::Q8_0, vec![(40, 64), (24, 64)])],
            attention: vec![attn],
        };
        let mut seen = Vec::new();
        let opts = quick(vec![]);
        let (tuning, reports) = tuner::run(gpu, &work, &opts, |done, total, what| {
            seen.push((done, total, what.to_string()))
        })
        .unwrap();
        assert_eq!(reports.len(), 3);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen.last().unwrap().0, 3);
        assert!(work.missing(&tuning).is_empty(), "{tuning:?}");
        assert_eq!(
            tuning.matmul(DType::Q8_0),
            Some(MatMulTune::for_device(gpu)),
            "the only candidate"
        );
        let splits = tuning.attention(attn).unwrap();
        assert!([1, 2].contains(&splits), "{splits}");

        // The tuned table drives MatMul::new through prepare; still right.
        gpu.set_tuning(tuning);
        let (m, n, k) = (8, 40, 64);
        let bytes = synthetic_weights(DType::Q8_0, n, k, 9);
        let a = rand_vec(m * k, 10, 1.0);
        let ga = gpu.upload_f32("a", &[m, k], &a).unwrap();
        let gw = gpu
            .upload_chunked("w", [n, k], DType::Q8_0, &bytes)
            .unwrap();
        let gc = gpu.zeros("c", &[m, n], DType::F32).unwrap();
        let d = MatMul::new(gpu).prepare(gpu, &ga, &gw, &gc).unwrap();
        gpu.run(&d).unwrap();
        let got = gpu.read_f32(&gc).unwrap();
        let want = tokenmill::ops::matmul::reference(&a, m, k, DType::Q8_0, &bytes, n, None);
        // f16 tiles round A and W to f16: about 1e-3 relative per product.
        assert_close("matmul", &got, &want, 2e-2, 1e-2);
        gpu.set_tuning(Tuning::default());
    });
}

#[test]
fn model_workload_lists_every_decode_shape() {
    let Some(path) = model_file::model_path() else {
        return;
    };
    let Some(t) = common::gpus().first() else {
        return;
    };
    let file = tokenmill::model::GgufFile::open(&path).unwrap();
    let model = tokenmill::model::Llama::load(&t.gpu, &file, 64, |_, _| {}).unwrap();
    let shapes = model.matvec_shapes();
    let c = &model.cfg;
    let (d, q, kv) = (c.n_embd, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
    // Decode's matvecs: fused QKV, output, fused (gate, up) pairs, down.
    for (rows, cols) in [(q + 2 * kv, d), (d, q), (2 * c.n_ff, d), (d, c.n_ff)] {
        assert!(
            shapes.iter().any(|&(_, r, cc)| (r, cc) == (rows, cols)),
            "{rows}x{cols} missing from {shapes:?}"
        );
    }
    let head = model.weights.lm_head();
    let head = (head.dtype, c.vocab_size, d);
    assert!(shapes.contains(&head), "{shapes:?}");
    let mut sorted = shapes.clone();
    sorted.sort_by_key(|s| (s.0.name(), s.1, s.2));
    sorted.dedup();
    assert_eq!(sorted.len(), shapes.len(), "distinct");

    let work = Workload::of_model(&model);
    assert_eq!(work.matvec, shapes);
    assert_eq!(work.matmul_m, model.max_batch);
    assert!(work
        .matmul
        .iter()
        .all(|(dt, s)| !s.contains(&(head.1, head.2)) || *dt != head.0));
    assert_eq!(
        work.attention,
        vec![AttnShape::of(
            &Attention::new(c.n_heads, c.n_kv_heads, c.head_dim),
            64
        )]
    );
}

#[test]
fn cli_tune_writes_the_cache_and_run_uses_it() {
    let Some(model) = model_file::model_path() else {
        return;
    };
    if common::gpus().is_empty() {
        return;
    }
    let cache = temp_dir("cli");
    let model = model.to_string_lossy().into_owned();
    let tokenmill = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmill"))
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .env_remove("TOKENMILL_NO_TUNE")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        (stdout, stderr)
    };
    let base = ["--model", &model, "--device", "0", "--ctx", "64"];
    let tune_args = [
        &["tune"],
        &base[..],
        &["--max-candidates", "2", "--repeats", "1"],
    ]
    .concat();
    let (out, _) = tokenmill(&tune_args);
    for want in [
        "matvec q4_1 576x576",
        "matmul q4_1",
        "attention 9/3 heads x 64, ctx 64",
        "preset",
        "saved",
    ] {
        assert!(out.contains(want), "'{want}' missing from:\n{out}");
    }
    let files: Vec<_> = std::fs::read_dir(cache.join("tokenmill/tune"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("\"matvec\"") && text.contains("\"attention\""),
        "{text}"
    );

    // Everything is cached: nothing is retimed, and `run` neither tunes nor complains.
    let (out, _) = tokenmill(&tune_args);
    assert!(
        out.contains("already tuned") && out.contains("0 shapes tuned"),
        "{out}"
    );
    let run_args = [
        &["run"],
        &base[..],
        &[
            "--prompt",
            "The capital of France is",
            "--temperature",
            "0",
            "--max-tokens",
            "2",
        ],
    ]
    .concat();
    let (out, err) = tokenmill(&run_args);
    assert!(out.starts_with(" Paris"), "{out}");
    assert!(!err.contains("tuning"), "{err}");
    let _ = std::fs::remove_dir_all(&cache);
}
