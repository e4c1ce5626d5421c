mod common;

use common::{for_each_gpu, rand_vec, TestGpu};
use tokenmill::gpu::{DType, Dispatch, Gpu, GpuError, GpuTensor};
use tokenmill::ops::kv_cache::{kv_store, kv_store_reference};
use tokenmill::ops::{Attention, KvCache, KvLayer, Split, StepParams};

fn step_buffer(gpu: &Gpu, pos: usize, n_tokens: usize) -> wgpu::Buffer {
    gpu.uniform("step", &StepParams::new(pos, n_tokens))
}

fn set_step(gpu: &Gpu, step: &wgpu::Buffer, pos: usize, n_tokens: usize) {
    gpu.queue
        .write_buffer(step, 0, bytemuck::bytes_of(&StepParams::new(pos, n_tokens)));
}

fn write_f32(gpu: &Gpu, t: &GpuTensor, data: &[f32]) {
    gpu.queue
        .write_buffer(&t.buffer, t.offset, bytemuck::cast_slice(data));
}

/// A host copy of one cache layer ([n_kv_heads, max_ctx, head_dim] each).
struct Host {
    k: Vec<f32>,
    v: Vec<f32>,
    max_ctx: usize,
}

impl Host {
    fn read(gpu: &Gpu, kv: &KvLayer) -> Host {
        let max_ctx = kv.k.shape[1];
        Host {
            k: common::read_values(gpu, &kv.k),
            v: common::read_values(gpu, &kv.v),
            max_ctx,
        }
    }
}

/// A one-layer cache with every position filled with random rows (through kv_store), so
/// positions past the attended range hold data the kernels must ignore.
fn filled_cache(gpu: &Gpu, a: &Attention, max_ctx: usize, seed: u64) -> KvCache {
    let cache = KvCache::new(gpu, 1, a.n_kv_heads, max_ctx, a.head_dim).unwrap();
    let shape = [max_ctx, a.n_kv_heads, a.head_dim];
    let n = max_ctx * a.n_kv_heads * a.head_dim;
    let k = gpu
        .upload_f32("k_new", &shape, &rand_vec(n, seed, 1.0))
        .unwrap();
    let v = gpu
        .upload_f32("v_new", &shape, &rand_vec(n, seed + 1, 1.0))
        .unwrap();
    let step = step_buffer(gpu, 0, max_ctx);
    gpu.run(&[cache.store(gpu, 0, &step, &k, &v).unwrap()])
        .unwrap();
    cache
}

/// Error bound for one output row of softmax(q·K * scale) V against the f64 reference.
/// A score error of at most d changes each normalized weight by a factor within e^(±2d), so
/// the output moves by at most max|v| (e^(2d) - 1). Scores carry f32 dot rounding
/// ((hd + 2) ulp of scale·Σ|q||k|) plus, against unrounded inputs, the cache rounding `u`
/// (2^-11 for f16) of each k; v adds u·max|v|. The weighted sums over n keys in f32 and
/// WGSL's exp (3 + 2|x| ulp, x <= 0 after the max-subtraction) add (2n + 64) ulp of max|v|.
fn row_bound(a: &Attention, q: &[f32], c: &Host, base: usize, n_keys: usize, u: f64) -> f32 {
    let hd = a.head_dim;
    let ulp = f64::powi(2.0, -24);
    let mut s1 = 0f64;
    let mut vmax = 0f64;
    for j in 0..n_keys {
        let kr = &c.k[(base + j) * hd..][..hd];
        let s: f64 = q
            .iter()
            .zip(kr)
            .map(|(x, y)| (x.abs() * y.abs()) as f64)
            .sum();
        s1 = s1.max(s * a.scale.abs() as f64);
        for &x in &c.v[(base + j) * hd..][..hd] {
            vmax = vmax.max(x.abs() as f64);
        }
    }
    let d = s1 * (u + (hd as f64 + 2.0) * ulp);
    (vmax * ((2.0 * d).exp_m1() + u + (2.0 * n_keys as f64 + 64.0) * ulp) + 1e-7) as f32
}

/// Compare attention output for tokens at `pos ..` with the reference computed on the cache
/// contents `c`, row by row with `row_bound`.
fn check(what: &str, a: &Attention, got: &[f32], q: &[f32], pos: usize, c: &Host, u: f64) {
    let want = a.reference(q, pos, &c.k, &c.v, c.max_ctx);
    let (nh, hd) = (a.n_heads, a.head_dim);
    let group = nh / a.n_kv_heads;
    for (row, (g, w)) in got.chunks(hd).zip(want.chunks(hd)).enumerate() {
        let (t, h) = (row / nh, row % nh);
        let n_keys = (pos + t + 1).min(c.max_ctx);
        let base = (h / group) * c.max_ctx;
        let tol = row_bound(a, &q[row * hd..][..hd], c, base, n_keys, u);
        for (d, (x, y)) in g.iter().zip(w).enumerate() {
            let msg =
                format!("{what}: token {t} head {h} dim {d}: got {x}, want {y} (bound {tol})");
            assert!((x - y).abs() <= tol, "{msg}");
        }
    }
}

/// Unit roundoff of the cache dtype, for comparisons against unrounded inputs.
fn cache_u(dtype: DType) -> f64 {
    if dtype == DType::F16 {
        f64::powi(2.0, -11)
    } else {
        0.0
    }
}

#[test]
fn kv_store_writes_rows_at_step_position() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (n_kv, max_ctx, hd) = (3, 20, 64);
        let cache = KvCache::new(gpu, 2, n_kv, max_ctx, hd).unwrap();
        assert_eq!(cache.dtype, KvCache::dtype_for(gpu));
        let mut k_ref = vec![0f32; n_kv * max_ctx * hd];
        let mut v_ref = k_ref.clone();
        let cap = 6;
        let k_new = gpu.zeros("k_new", &[cap, n_kv, hd], DType::F32).unwrap();
        let v_new = gpu.zeros("v_new", &[cap, n_kv, hd], DType::F32).unwrap();
        let step = step_buffer(gpu, 0, cap);
        let store = cache.store(gpu, 1, &step, &k_new, &v_new).unwrap();
        // Full batch, a partial batch (step.n_tokens < capacity), one past the end of the cache.
        for (i, (pos, n)) in [(0usize, 6usize), (9, 4), (17, 6)].into_iter().enumerate() {
            let kd = rand_vec(cap * n_kv * hd, 10 + i as u64, 3.0);
            let vd = rand_vec(cap * n_kv * hd, 20 + i as u64, 3.0);
            write_f32(gpu, &k_new, &kd);
            write_f32(gpu, &v_new, &vd);
            set_step(gpu, &step, pos, n);
            gpu.run(std::slice::from_ref(&store)).unwrap();
            let rows = n * n_kv * hd;
            kv_store_reference(&mut k_ref, &kd[..rows], pos, n_kv, max_ctx, hd, cache.dtype);
            kv_store_reference(&mut v_ref, &vd[..rows], pos, n_kv, max_ctx, hd, cache.dtype);
        }
        // The conversion to f16 may round either way on some drivers: allow 1 f16 ulp.
        let ulp = if cache.dtype == DType::F16 {
            f32::powi(2.0, -10)
        } else {
            0.0
        };
        for (name, got, want) in [
            ("k", common::read_values(gpu, &cache.layers[1].k), &k_ref),
            ("v", common::read_values(gpu, &cache.layers[1].v), &v_ref),
        ] {
            for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (g - w).abs() <= w.abs() * ulp,
                    "{name}[{i}]: got {g}, want {w}"
                );
            }
        }
        assert!(
            common::read_values(gpu, &cache.layers[0].k)
                .iter()
                .all(|&x| x == 0.0),
            "layer 0 untouched"
        );
    });
}

fn decode_case(t: &TestGpu, a: Attention, max_ctx: usize, splits: &[Split], q_scale: f32) {
    let gpu = &t.gpu;
    let cache = filled_cache(gpu, &a, max_ctx, 7);
    let layer = &cache.layers[0];
    let host = Host::read(gpu, layer);
    let n = a.n_heads * a.head_dim;
    let qd = rand_vec(n, 3, q_scale);
    let q = gpu.upload_f32("q", &[a.n_heads, a.head_dim], &qd).unwrap();
    let out = gpu
        .zeros("out", &[a.n_heads, a.head_dim], DType::F32)
        .unwrap();
    let step = step_buffer(gpu, 0, 1);
    for &split in splits {
        // Built once; only the step uniform changes between runs.
        let dispatches = a.decode(gpu, &step, &q, layer, &out, split).unwrap();
        let want_passes = match split {
            Split::Single => 1,
            Split::Splits(_) => 2,
            Split::Auto => 1 + (a.preset_splits(gpu, max_ctx) > 1) as usize,
        };
        assert_eq!(dispatches.len(), want_passes, "{split:?}");
        for seq_len in [1usize, 17, 300, 1, max_ctx] {
            set_step(gpu, &step, seq_len - 1, 1);
            gpu.run(&dispatches).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let what = format!(
                "{} {a:?} {split:?} seq_len {seq_len} q_scale {q_scale}",
                t.label
            );
            check(&what, &a, &got, &qd, seq_len - 1, &host, 0.0);
        }
    }
}

#[test]
fn decode_matches_cpu_single_and_split() {
    for_each_gpu(|t| {
        // GQA 3, head_dim 64 (SmolLM2-135M); max_ctx 320 -> Auto is a single pass.
        let splits = [
            Split::Single,
            Split::Splits(1),
            Split::Splits(7),
            Split::Splits(32),
            Split::Auto,
        ];
        decode_case(t, Attention::new(9, 3, 64), 320, &splits, 2.0);
        // GQA 1, head_dim 128; max_ctx 600 -> Auto splits in 3.
        decode_case(
            t,
            Attention::new(4, 4, 128),
            600,
            &[Split::Single, Split::Splits(5), Split::Auto],
            2.0,
        );
        // Ragged lane slices: head_dim 48 (12 vec4s over 8 lanes) and 16 (fewer vec4s than
        // lanes); head_dim 256 exceeds the lane path's slices and takes the workgroup path.
        for hd in [48, 16, 256] {
            decode_case(
                t,
                Attention::new(4, 2, hd),
                320,
                &[Split::Single, Split::Splits(3)],
                2.0,
            );
        }
        // Scores in the hundreds: exp would overflow without the max subtraction.
        decode_case(
            t,
            Attention::new(2, 1, 64).with_scale(0.5),
            320,
            &[Split::Single, Split::Splits(3)],
            40.0,
        );
    });
}

#[test]
fn decode_f16_cache_error_is_bounded_by_rounding() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = Attention::new(9, 3, 64);
        let (max_ctx, seq_len) = (64, 50);
        let n = max_ctx * a.n_kv_heads * a.head_dim;
        let (kd, vd) = (rand_vec(n, 41, 1.0), rand_vec(n, 42, 1.0));
        let cache = KvCache::new(gpu, 1, a.n_kv_heads, max_ctx, a.head_dim).unwrap();
        let shape = [max_ctx, a.n_kv_heads, a.head_dim];
        let k = gpu.upload_f32("k_new", &shape, &kd).unwrap();
        let v = gpu.upload_f32("v_new", &shape, &vd).unwrap();
        let step = step_buffer(gpu, 0, max_ctx);
        gpu.run(&[cache.store(gpu, 0, &step, &k, &v).unwrap()])
            .unwrap();
        // Exact inputs in cache layout [n_kv, max_ctx, hd].
        let mut exact = Host {
            k: vec![0f32; n],
            v: vec![0f32; n],
            max_ctx,
        };
        let (nkv, hd) = (a.n_kv_heads, a.head_dim);
        kv_store_reference(&mut exact.k, &kd, 0, nkv, max_ctx, hd, DType::F32);
        kv_store_reference(&mut exact.v, &vd, 0, nkv, max_ctx, hd, DType::F32);
        let qd = rand_vec(a.n_heads * hd, 43, 2.0);
        let q = gpu.upload_f32("q", &[a.n_heads, hd], &qd).unwrap();
        let out = gpu.zeros("out", &[a.n_heads, hd], DType::F32).unwrap();
        set_step(gpu, &step, seq_len - 1, 1);
        let d = a.decode(gpu, &step, &q, &cache.layers[0], &out, Split::Splits(4));
        gpu.run(&d.unwrap()).unwrap();
        let got = gpu.read_f32(&out).unwrap();
        check(
            &t.label,
            &a,
            &got,
            &qd,
            seq_len - 1,
            &exact,
            cache_u(cache.dtype),
        );
    });
}

fn prefill_case(t: &TestGpu, a: Attention, max_ctx: usize, pos: usize, n_tokens: usize) {
    let gpu = &t.gpu;
    let cache = filled_cache(gpu, &a, max_ctx, 11 + pos as u64);
    let layer = &cache.layers[0];
    let rows = n_tokens * a.n_kv_heads * a.head_dim;
    let shape = [n_tokens, a.n_kv_heads, a.head_dim];
    let k = gpu
        .upload_f32("k_new", &shape, &rand_vec(rows, 5, 1.0))
        .unwrap();
    let v = gpu
        .upload_f32("v_new", &shape, &rand_vec(rows, 6, 1.0))
        .unwrap();
    let qd = rand_vec(n_tokens * a.n_heads * a.head_dim, 8, 2.0);
    let q = gpu
        .upload_f32("q", &[n_tokens, a.n_heads, a.head_dim], &qd)
        .unwrap();
    let out = gpu
        .zeros("out", &[n_tokens, a.n_heads, a.head_dim], DType::F32)
        .unwrap();
    let step = step_buffer(gpu, pos, n_tokens);
    // Store the batch, then attend, in one pass as the model does.
    let store = cache.store(gpu, 0, &step, &k, &v).unwrap();
    let attend = a.prefill(gpu, &step, &q, layer, &out).unwrap();
    gpu.run(&[store, attend]).unwrap();
    let got = gpu.read_f32(&out).unwrap();
    let what = format!("{} {a:?} pos {pos} n_tokens {n_tokens}", t.label);
    check(&what, &a, &got, &qd, pos, &Host::read(gpu, layer), 0.0);
}

#[test]
fn prefill_matches_cpu() {
    for_each_gpu(|t| {
        for a in [Attention::new(9, 3, 64), Attention::new(4, 4, 128)] {
            for pos in [0, 40] {
                for n_tokens in [1, 5, 33] {
                    prefill_case(t, a, 80, pos, n_tokens);
                }
            }
        }
        // A batch running past max_ctx: the rows beyond are dropped, the rest attend normally.
        prefill_case(t, Attention::new(6, 2, 32), 40, 30, 12);
    });
}

/// One set of dispatches built once, replayed for a chunked prefill and then a decode loop,
/// with only buffer contents and the step uniform rewritten in between.
#[test]
fn dispatches_are_reused_across_steps() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = Attention::new(9, 3, 64);
        let (max_ctx, cap) = (48, 16);
        let (nkv, nh, hd) = (a.n_kv_heads, a.n_heads, a.head_dim);
        let cache = KvCache::new(gpu, 1, nkv, max_ctx, hd).unwrap();
        let layer = &cache.layers[0];
        let step = step_buffer(gpu, 0, cap);
        let zeros = |name, shape: &[usize]| gpu.zeros(name, shape, DType::F32).unwrap();
        let (pk, pv) = (
            zeros("k_new", &[cap, nkv, hd]),
            zeros("v_new", &[cap, nkv, hd]),
        );
        let (pq, pout) = (zeros("q", &[cap, nh, hd]), zeros("out", &[cap, nh, hd]));
        let prefill = [
            cache.store(gpu, 0, &step, &pk, &pv).unwrap(),
            a.prefill(gpu, &step, &pq, layer, &pout).unwrap(),
        ];
        let (dk, dv) = (zeros("k_new", &[1, nkv, hd]), zeros("v_new", &[1, nkv, hd]));
        let (dq, dout) = (zeros("q", &[nh, hd]), zeros("out", &[nh, hd]));
        let mut single = vec![cache.store(gpu, 0, &step, &dk, &dv).unwrap()];
        single.extend(
            a.decode(gpu, &step, &dq, layer, &dout, Split::Single)
                .unwrap(),
        );
        let mut split = vec![cache.store(gpu, 0, &step, &dk, &dv).unwrap()];
        split.extend(
            a.decode(gpu, &step, &dq, layer, &dout, Split::Splits(5))
                .unwrap(),
        );

        let mut pos = 0;
        let mut seed = 100;
        let mut next = |n: usize| {
            seed += 3;
            (
                rand_vec(n * nkv * hd, seed, 1.0),
                rand_vec(n * nkv * hd, seed + 1, 1.0),
                rand_vec(n * nh * hd, seed + 2, 2.0),
            )
        };
        for n in [16, 7] {
            let (kd, vd, qd) = next(cap);
            write_f32(gpu, &pk, &kd);
            write_f32(gpu, &pv, &vd);
            write_f32(gpu, &pq, &qd);
            set_step(gpu, &step, pos, n);
            gpu.run(&prefill).unwrap();
            let got = gpu.read_f32(&pout).unwrap();
            let qn = &qd[..n * nh * hd];
            let what = format!("{} prefill chunk pos {pos}", t.label);
            check(
                &what,
                &a,
                &got[..qn.len()],
                qn,
                pos,
                &Host::read(gpu, layer),
                0.0,
            );
            pos += n;
        }
        for i in 0..12 {
            let (kd, vd, qd) = next(1);
            write_f32(gpu, &dk, &kd);
            write_f32(gpu, &dv, &vd);
            write_f32(gpu, &dq, &qd);
            set_step(gpu, &step, pos, 1);
            gpu.run(if i % 2 == 0 { &single } else { &split }).unwrap();
            let got = gpu.read_f32(&dout).unwrap();
            let what = format!("{} decode step pos {pos}", t.label);
            check(&what, &a, &got, &qd, pos, &Host::read(gpu, layer), 0.0);
            pos += 1;
        }
    });
}

fn shape_err(r: Result<impl Sized, GpuError>, kernel: &str, needle: &str) {
    match r {
        Err(e @ GpuError::Shape { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(kernel) && msg.contains(needle), "{msg}");
        }
        Err(e) => panic!("expected a shape error about '{needle}', got {e}"),
        Ok(_) => panic!("expected a shape error about '{needle}'"),
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = Attention::new(4, 2, 64);
        let cache = KvCache::new(gpu, 1, 2, 16, 64).unwrap();
        let kv = &cache.layers[0];
        let st = &step_buffer(gpu, 0, 1);
        let f32z = |shape: &[usize]| gpu.zeros("t", shape, DType::F32).unwrap();
        let (q, out) = (&f32z(&[4, 64]), &f32z(&[4, 64]));
        let (qp, outp) = (&f32z(&[3, 4, 64]), &f32z(&[3, 4, 64]));
        let (dec, pre) = ("attention_decode", "attention_prefill");
        let q3 = &f32z(&[3, 64]);
        shape_err(
            a.decode(gpu, st, q3, kv, out, Split::Single),
            dec,
            "q has shape [3, 64]",
        );
        let out32 = &f32z(&[4, 32]);
        shape_err(a.decode(gpu, st, q, kv, out32, Split::Auto), dec, "out");
        shape_err(
            a.decode(gpu, st, q, kv, out, Split::Splits(0)),
            dec,
            "0 splits",
        );
        let (q5, out5) = (&f32z(&[5, 64]), &f32z(&[5, 64]));
        let a5 = Attention::new(5, 2, 64);
        shape_err(
            a5.decode(gpu, st, q5, kv, out5, Split::Single),
            dec,
            "n_kv_heads 2",
        );
        if kv.k.dtype != DType::F32 {
            let mixed = KvLayer {
                k: kv.k.clone(),
                v: f32z(&[2, 16, 64]),
            };
            shape_err(
                a.decode(gpu, st, q, &mixed, out, Split::Single),
                dec,
                "v cache",
            );
        }
        let v8 = gpu.zeros("v", &[2, 8, 64], kv.k.dtype).unwrap();
        let short_v = KvLayer {
            k: kv.k.clone(),
            v: v8,
        };
        shape_err(a.prefill(gpu, st, qp, &short_v, outp), pre, "v cache");
        let out2 = &f32z(&[2, 4, 64]);
        shape_err(a.prefill(gpu, st, qp, kv, out2), pre, "out");
        let flat = KvLayer {
            k: f32z(&[2, 16]),
            v: kv.v.clone(),
        };
        shape_err(
            a.prefill(gpu, st, qp, &flat, outp),
            pre,
            "expected [n_kv_heads",
        );
        let q0 = &f32z(&[0, 4, 64]);
        shape_err(a.prefill(gpu, st, q0, kv, q0), pre, "no tokens");
        let rows3 = &f32z(&[1, 3, 64]);
        shape_err(kv_store(gpu, st, rows3, rows3, kv), "kv_store", "k_new");
        let rows0 = &f32z(&[0, 2, 64]);
        shape_err(kv_store(gpu, st, rows0, rows0, kv), "kv_store", "no tokens");
        shape_err(KvCache::new(gpu, 1, 2, 16, 66), "kv_cache", "head_dim 66");
        shape_err(KvCache::new(gpu, 1, 2, 16, 260), "kv_cache", "head_dim 260");
        let row = &f32z(&[1, 2, 64]);
        shape_err(cache.store(gpu, 3, st, row, row), "kv_store", "layer 3");
        // An f16 cache on a device without SHADER_F16 names the missing feature.
        if !gpu.caps.f16 {
            let k16 = gpu.zeros("k", &[2, 16, 64], DType::F16).unwrap();
            let kv16 = KvLayer {
                k: k16.clone(),
                v: k16,
            };
            match a.decode(gpu, st, q, &kv16, out, Split::Single) {
                Err(GpuError::MissingFeature { feature, .. }) => assert_eq!(feature, "SHADER_F16"),
                Err(e) => panic!("expected MissingFeature, got {e}"),
                Ok(_) => panic!("expected MissingFeature"),
            }
        }
    });
}

/// Wall-clock timing on each adapter (full features), SmolLM2-135M attention shapes:
/// `cargo test --release --no-default-features --test attention -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    let median = |gpu: &Gpu, d: &[Dispatch]| {
        gpu.run(d).unwrap();
        let mut ts: Vec<f64> = (0..7)
            .map(|_| {
                let t0 = std::time::Instant::now();
                gpu.run(d).unwrap();
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        ts[3]
    };
    for t in common::gpus()
        .iter()
        .filter(|t| !t.label.contains("fallback"))
    {
        let gpu = &t.gpu;
        let a = Attention::new(9, 3, 64);
        let max_ctx = 2048;
        let cache = filled_cache(gpu, &a, max_ctx, 1);
        let kv = &cache.layers[0];
        let step = step_buffer(gpu, max_ctx - 1, 1);
        let q = gpu
            .upload_f32("q", &[9, 64], &rand_vec(9 * 64, 2, 1.0))
            .unwrap();
        let out = gpu.zeros("out", &[9, 64], DType::F32).unwrap();
        // Bytes of K and V the query heads read (each head reads its kv head's rows).
        let bytes = (2 * a.n_heads * max_ctx * a.head_dim * cache.dtype.block_bytes()) as f64;
        for split in [Split::Single, Split::Auto] {
            let ms = median(gpu, &a.decode(gpu, &step, &q, kv, &out, split).unwrap());
            eprintln!(
                "{}: decode seq_len {max_ctx} {split:?}: {ms:.3} ms ({:.2} GB/s)",
                t.label,
                bytes / ms / 1e6
            );
        }
        let n = 256;
        set_step(gpu, &step, 0, n);
        let qp = gpu
            .upload_f32("q", &[n, 9, 64], &rand_vec(n * 9 * 64, 3, 1.0))
            .unwrap();
        let op = gpu.zeros("out", &[n, 9, 64], DType::F32).unwrap();
        let ms = median(gpu, &[a.prefill(gpu, &step, &qp, kv, &op).unwrap()]);
        // q·k and p·v over the causal triangle: 2 * 2 * hd flops per (query head, key) pair.
        let flops = 4.0 * (a.n_heads * a.head_dim) as f64 * (n * (n + 1) / 2) as f64;
        eprintln!(
            "{}: prefill {n} tokens: {ms:.3} ms ({:.2} GFLOP/s)",
            t.label,
            flops / ms / 1e6
        );
    }
}

/// Prefill reads q from rows wider than n_heads (the q part of a fused QKV row) and ignores the
/// rest of each row.
#[test]
fn prefill_reads_q_from_a_wider_row() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = Attention::new(4, 2, 16);
        let (max_ctx, pos, n_tokens, extra) = (32, 5, 3, 4);
        let cache = filled_cache(gpu, &a, max_ctx, 21);
        let layer = &cache.layers[0];
        let width = (a.n_heads + extra) * a.head_dim;
        let wide = rand_vec(n_tokens * width, 22, 2.0);
        let qd: Vec<f32> = wide
            .chunks(width)
            .flat_map(|row| row[..a.n_heads * a.head_dim].to_vec())
            .collect();
        let q = gpu
            .upload_f32("q", &[n_tokens, a.n_heads + extra, a.head_dim], &wide)
            .unwrap();
        let out = gpu
            .zeros("out", &[n_tokens, a.n_heads, a.head_dim], DType::F32)
            .unwrap();
        let step = step_buffer(gpu, pos, n_tokens);
        gpu.run(&[a.prefill(gpu, &step, &q, layer, &out).unwrap()])
            .unwrap();
        let got = gpu.read_f32(&out).unwrap();
        let what = format!("{} wide q rows", t.label);
        check(&what, &a, &got, &qd, pos, &Host::read(gpu, layer), 0.0);
    });
}
