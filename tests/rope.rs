//! RoPE against an f64 reference: both pair layouts, partial rotary dims, q and k head counts,
//! positions up to 32000, the shared StepParams uniform, and typed errors.

mod common;

use common::{for_each_gpu, rand_vec};
use tokenmill::gpu::{DType, Gpu, GpuTensor};
use tokenmill::ops::{Rope, RopeConfig, RopeStyle, StepParams, STEP_PARAMS_WGSL};

fn step_buffer(gpu: &Gpu, pos: usize, n_tokens: usize) -> wgpu::Buffer {
    gpu.uniform("step", &StepParams::new(pos, n_tokens))
}

/// Allowed error, as a fraction of the largest |x|. The table makes pos * hi exact, so the
/// angle error is the rounding of pos * lo: |lo| < 2^-6 turns/(2 pi) per position gives at most
/// pos * 2^-29 rad. Hardware sin/cos on [-pi, pi] add ~1e-6 (lavapipe ~1e-7); the rotation's
/// f32 products a few 1e-7. Each output mixes two inputs, hence the factor 2. At pos 8000 this
/// is 3.8e-5, while a plain f32 product pos * inv_freq is off by up to 1.3e-4 rad there (even
/// with inv_freq correctly rounded), so this test would catch the naive angle. Lavapipe's worst
/// case uses about a tenth of the tolerance.
fn tolerance(max_pos: usize) -> f32 {
    2.0 * (max_pos as f32 * 2f32.powi(-29) + 4e-6)
}

fn check(what: &str, got: &[f32], want: &[f32], x: &[f32], max_pos: usize) {
    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = tolerance(max_pos) * scale;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i} is {g}, expected {w} (tol {tol})"
        );
    }
}

fn msg<T: std::fmt::Debug>(r: tokenmill::gpu::Result<T>) -> String {
    r.expect_err("an error").to_string()
}

fn run_rope(
    gpu: &Gpu,
    rope: &Rope,
    x: &[f32],
    shape: &[usize],
    n_heads: usize,
    pos: usize,
) -> Vec<f32> {
    let gx = gpu.upload_f32("x", shape, x).unwrap();
    let step = step_buffer(gpu, pos, shape[0]);
    gpu.run(&[rope.prepare(gpu, &gx, n_heads, &step).unwrap()])
        .unwrap();
    gpu.read_f32(&gx).unwrap()
}

#[test]
fn rope_matches_f64_reference() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            for (head_dim, n_rot, base) in [
                (64usize, 64usize, 10000.0),
                (128, 128, 1e6),
                (64, 32, 10000.0),
                (6, 2, 500.0),
            ] {
                let cfg = RopeConfig {
                    n_rot,
                    ..RopeConfig::new(head_dim, base, style)
                };
                let rope = Rope::new(gpu, cfg).unwrap();
                // q with 4 heads and k with 2 (GQA): same kernel, different head count.
                for (n_tokens, n_heads, pos) in [
                    (1usize, 4usize, 0usize),
                    (3, 2, 5),
                    (7, 4, 8000),
                    (2, 3, 32000),
                ] {
                    let x = rand_vec(n_tokens * n_heads * head_dim, (pos + n_heads) as u64, 2.0);
                    let got =
                        run_rope(gpu, &rope, &x, &[n_tokens, n_heads, head_dim], n_heads, pos);
                    let want = rope.reference(&x, n_heads, pos);
                    let what = format!("{style:?} head_dim {head_dim} n_rot {n_rot} base {base} [{n_tokens}, {n_heads}] pos {pos}");
                    check(&what, &got, &want, &x, pos + n_tokens);
                    // Dimensions from n_rot on pass through untouched.
                    for (row_got, row_x) in got.chunks(head_dim).zip(x.chunks(head_dim)) {
                        assert_eq!(&row_got[n_rot..], &row_x[n_rot..], "{what}: unrotated tail");
                    }
                }
            }
        }
    });
}

#[test]
fn rope_freq_factors_and_flat_shape() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (head_dim, n_heads, n_tokens) = (32usize, 3usize, 4usize);
        let factors: Vec<f32> = (0..head_dim / 2).map(|j| 1.0 + j as f32 * 0.5).collect();
        let cfg = RopeConfig {
            freq_factors: Some(factors),
            ..RopeConfig::new(head_dim, 500000.0, RopeStyle::Neox)
        };
        let rope = Rope::new(gpu, cfg).unwrap();
        let x = rand_vec(n_tokens * n_heads * head_dim, 3, 1.0);
        // [n_tokens, n_heads * head_dim], as a projection leaves it.
        let got = run_rope(
            gpu,
            &rope,
            &x,
            &[n_tokens, n_heads * head_dim],
            n_heads,
            1234,
        );
        check(
            "freq factors",
            &got,
            &rope.reference(&x, n_heads, 1234),
            &x,
            1238,
        );
    });
}

/// GGUF llama files permute each head's q/k rows so interleaved RoPE on them equals rotate-half
/// RoPE on the original rows: checks the two layouts against each other on the GPU.
#[test]
fn rope_interleaved_on_permuted_rows_equals_neox() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (head_dim, n_heads, n_tokens, pos) = (64usize, 2usize, 3usize, 77usize);
        let half = head_dim / 2;
        let x = rand_vec(n_tokens * n_heads * head_dim, 9, 1.0);
        // Interleaved slot 2j holds rotate-half slot j, slot 2j + 1 holds slot j + half.
        let permute = |v: &[f32]| -> Vec<f32> {
            v.chunks(head_dim)
                .flat_map(|h| (0..half).flat_map(move |j| [h[j], h[j + half]]))
                .collect()
        };
        let neox = Rope::new(gpu, RopeConfig::new(head_dim, 10000.0, RopeStyle::Neox)).unwrap();
        let inter = Rope::new(
            gpu,
            RopeConfig::new(head_dim, 10000.0, RopeStyle::Interleaved),
        )
        .unwrap();
        let shape = [n_tokens, n_heads, head_dim];
        let a = run_rope(gpu, &neox, &x, &shape, n_heads, pos);
        let b = run_rope(gpu, &inter, &permute(&x), &shape, n_heads, pos);
        // Same pairs, same angles, same arithmetic: identical bits.
        assert_eq!(permute(&a), b);
    });
}

/// Decode: one bind group, the step uniform rewritten between runs; tokens past
/// step.n_tokens are left alone.
#[test]
fn rope_follows_step_uniform() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (head_dim, n_heads) = (16usize, 2usize);
        let rope = Rope::new(
            gpu,
            RopeConfig::new(head_dim, 10000.0, RopeStyle::Interleaved),
        )
        .unwrap();
        let x = rand_vec(4 * n_heads * head_dim, 4, 1.0);
        let gx: GpuTensor = gpu.upload_f32("x", &[4, n_heads, head_dim], &x).unwrap();
        let step = step_buffer(gpu, 0, 4);
        let d = rope.prepare(gpu, &gx, n_heads, &step).unwrap();
        let row = n_heads * head_dim;
        for (pos, n_tokens) in [(3usize, 1usize), (100, 2), (9000, 4)] {
            gpu.queue
                .write_buffer(&gx.buffer, 0, bytemuck::cast_slice(&x));
            gpu.queue.write_buffer(
                &step,
                0,
                bytemuck::bytes_of(&StepParams::new(pos, n_tokens)),
            );
            gpu.run(std::slice::from_ref(&d)).unwrap();
            let got = gpu.read_f32(&gx).unwrap();
            let k = n_tokens * row;
            let want = rope.reference(&x[..k], n_heads, pos);
            check(
                &format!("pos {pos} n_tokens {n_tokens}"),
                &got[..k],
                &want,
                &x,
                pos + n_tokens,
            );
            assert_eq!(&got[k..], &x[k..], "tokens past step.n_tokens changed");
        }
    });
}

#[test]
fn rope_rejects_bad_input() {
    assert!(include_str!("../shaders/common.wgsl").contains(STEP_PARAMS_WGSL));
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for n_rot in [0usize, 3, 66] {
            let cfg = RopeConfig {
                n_rot,
                ..RopeConfig::new(64, 10000.0, RopeStyle::Neox)
            };
            let m = msg(Rope::new(gpu, cfg));
            assert!(m.contains("rope") && m.contains("n_rot"), "{m}");
        }
        let m = msg(Rope::new(gpu, RopeConfig::new(64, -1.0, RopeStyle::Neox)));
        assert!(m.contains("base"), "{m}");
        let bad_factors = RopeConfig {
            freq_factors: Some(vec![1.0; 5]),
            ..RopeConfig::new(64, 10000.0, RopeStyle::Neox)
        };
        assert!(msg(Rope::new(gpu, bad_factors)).contains("freq_factors"));

        let rope = Rope::new(gpu, RopeConfig::new(64, 10000.0, RopeStyle::Neox)).unwrap();
        let step = step_buffer(gpu, 0, 1);
        let x = gpu.zeros("x", &[2, 4, 32], DType::F32).unwrap();
        let m = msg(rope.prepare(gpu, &x, 4, &step));
        assert!(m.contains("[2, 4, 32]") && m.contains("64"), "{m}");
        let x = gpu.zeros("x", &[2, 4, 64], DType::F16).unwrap();
        assert!(msg(rope.prepare(gpu, &x, 4, &step)).contains("f16"));
        let x = gpu.zeros("x", &[2, 4, 64], DType::F32).unwrap();
        let small = gpu.uniform("step", &[0u32; 2]);
        assert!(msg(rope.prepare(gpu, &x, 4, &small)).contains("step"));
    });
}

/// The fused decode op: q rotated in place in the QKV row, rotated k and plain v in the cache
/// rows at the step's position, nothing else written; both pair layouts, f16 and f32 caches.
#[test]
fn rope_kv_rotates_q_and_stores_k_v() {
    use tokenmill::ops::{KvCache, QkvLayout};
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let (nh, nkv, hd, max_ctx) = (4, 2, 16, 40);
        for (style, n_rot) in [(RopeStyle::Interleaved, 16), (RopeStyle::Neox, 8)] {
            let cfg = RopeConfig {
                n_rot,
                ..RopeConfig::new(hd, 10000.0, style)
            };
            let rope = Rope::new(gpu, cfg).unwrap();
            let lay = QkvLayout::packed(nh, nkv, hd);
            let (n_tokens, pos) = (3, 29);
            let x = rand_vec(n_tokens * lay.stride, 17 + n_rot as u64, 2.0);
            let qkv = gpu.upload_f32("qkv", &[n_tokens, lay.stride], &x).unwrap();
            let cache = KvCache::new(gpu, 1, nkv, max_ctx, hd).unwrap();
            let kv = &cache.layers[0];
            // Two of the three tokens run: the third must stay untouched.
            let step = step_buffer(gpu, pos, 2);
            let d = rope.prepare_kv(gpu, &qkv, lay, &step, kv).unwrap();
            gpu.run(&[d]).unwrap();
            let got = gpu.read_f32(&qkv).unwrap();
            let read = |c: &GpuTensor| match c.dtype {
                DType::F16 => gpu
                    .read_f16(c)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_f32())
                    .collect::<Vec<f32>>(),
                _ => gpu.read_f32(c).unwrap(),
            };
            let (kc, vc) = (read(&kv.k), read(&kv.v));
            // f16 caches round each value to 11 bits.
            let cache_tol = if kv.k.dtype == DType::F16 { 2e-3 } else { 0.0 };
            for tok in 0..n_tokens {
                let row = &x[tok * lay.stride..(tok + 1) * lay.stride];
                let q = &row[..nh * hd];
                let k = &row[lay.k_off..lay.k_off + nkv * hd];
                let v = &row[lay.v_off..lay.v_off + nkv * hd];
                let got_row = &got[tok * lay.stride..(tok + 1) * lay.stride];
                let what = format!("{} {style:?} token {tok}", t.label);
                if tok == 2 {
                    assert_eq!(got_row, row, "{what}: a token past step.n_tokens changed");
                    continue;
                }
                check(
                    &what,
                    &got_row[..nh * hd],
                    &rope.reference(q, nh, pos + tok),
                    q,
                    pos + 2,
                );
                assert_eq!(
                    &got_row[nh * hd..],
                    &row[nh * hd..],
                    "{what}: k or v changed"
                );
                let k_want = rope.reference(k, nkv, pos + tok);
                for h in 0..nkv {
                    for d in 0..hd {
                        let at = (h * max_ctx + pos + tok) * hd + d;
                        let (kw, vw) = (k_want[h * hd + d], v[h * hd + d]);
                        let tol = tolerance(pos + 2) * 2.0 + cache_tol * kw.abs().max(vw.abs());
                        assert!(
                            (kc[at] - kw).abs() <= tol * 2.0,
                            "{what}: k[{h},{d}] {} vs {kw}",
                            kc[at]
                        );
                        assert!(
                            (vc[at] - vw).abs() <= cache_tol * vw.abs() + 1e-7,
                            "{what}: v[{h},{d}] {} vs {vw}",
                            vc[at]
                        );
                    }
                }
            }
            // Rows other than pos, pos + 1 stay zero.
            let written = |i: usize| {
                let p = (i / hd) % max_ctx;
                p == pos || p == pos + 1
            };
            assert!(
                kc.iter().enumerate().all(|(i, v)| written(i) || *v == 0.0),
                "k rows"
            );
            assert!(
                vc.iter().enumerate().all(|(i, v)| written(i) || *v == 0.0),
                "v rows"
            );
        }
    });
}
