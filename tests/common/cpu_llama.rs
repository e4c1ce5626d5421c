//! An independent f64 CPU forward pass of a Llama GGUF model, from dequantized weights: the
//! model-level reference for the GPU forward pass (no kernel code shared with it).
#![allow(dead_code)]

use tokenmill::model::{GgufFile, LlamaConfig};

pub struct CpuLlama {
    pub cfg: LlamaConfig,
    embd: Vec<f32>,
    out_norm: Vec<f32>,
    output: Option<Vec<f32>>,
    layers: Vec<[Vec<f32>; 9]>,
    /// Per layer: cached K and V rows, [pos][kv_dim].
    kv: Vec<(Vec<Vec<f64>>, Vec<Vec<f64>>)>,
    /// Round K/V to f16 as they enter the cache (as the GPU's f16 cache does).
    pub f16_cache: bool,
    /// Quantize matvec inputs to 8-bit blocks of 32 (scale amax/127, stored as f16), as
    /// llama.cpp's CPU backend does before every quantized dot product.
    pub q8_activations: bool,
}

/// `x` rounded through 8-bit blocks of 32 with an f16 scale.
fn q8_round(x: &[f64]) -> Vec<f64> {
    x.chunks(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f64, |m, v| m.max(v.abs()));
            let d = half::f16::from_f64(amax / 127.0).to_f64();
            let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            b.iter()
                .map(move |v| (v * id).round() * d)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn matvec(w: &[f32], x: &[f64], rows: usize, q8: bool) -> Vec<f64> {
    let cols = x.len();
    let q;
    let x = if q8 {
        q = q8_round(x);
        &q[..]
    } else {
        x
    };
    (0..rows)
        .map(|r| {
            w[r * cols..(r + 1) * cols]
                .iter()
                .zip(x)
                .map(|(a, b)| *a as f64 * b)
                .sum()
        })
        .collect()
}

fn rmsnorm(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * s * *g as f64).collect()
}

/// Interleaved-pair RoPE (GGUF llama layout) on `n_heads` heads of `hd` at `pos`.
fn rope(x: &mut [f64], n_heads: usize, hd: usize, n_rot: usize, theta: f64, pos: usize) {
    for h in 0..n_heads {
        for i in 0..n_rot / 2 {
            let freq = theta.powf(-2.0 * i as f64 / n_rot as f64);
            let (s, c) = (pos as f64 * freq).sin_cos();
            let (a, b) = (x[h * hd + 2 * i], x[h * hd + 2 * i + 1]);
            x[h * hd + 2 * i] = a * c - b * s;
            x[h * hd + 2 * i + 1] = a * s + b * c;
        }
    }
}

impl CpuLlama {
    pub fn load(file: &GgufFile) -> CpuLlama {
        let cfg = LlamaConfig::from_gguf(file.gguf()).unwrap();
        let t = |name: &str| file.tensor(name).unwrap().to_f32().unwrap();
        let names = [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ];
        let layers = (0..cfg.n_layers)
            .map(|l| names.map(|n| t(&format!("blk.{l}.{n}.weight"))))
            .collect();
        CpuLlama {
            embd: t("token_embd.weight"),
            out_norm: t("output_norm.weight"),
            output: (!cfg.tied_embeddings).then(|| t("output.weight")),
            kv: vec![(Vec::new(), Vec::new()); cfg.n_layers],
            layers,
            cfg,
            f16_cache: true,
            q8_activations: false,
        }
    }

    /// Run one token at the next position; returns its logits.
    pub fn step(&mut self, token: u32) -> Vec<f64> {
        let c = &self.cfg;
        let (d, nh, nkv, hd) = (c.n_embd, c.n_heads, c.n_kv_heads, c.head_dim);
        let eps = c.rms_eps as f64;
        let pos = self.kv[0].0.len();
        let q8 = self.q8_activations;
        let mut x: Vec<f64> = self.embd[token as usize * d..(token as usize + 1) * d]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let round = |v: Vec<f64>, f16: bool| -> Vec<f64> {
            if f16 {
                v.into_iter()
                    .map(|x| half::f16::from_f64(x).to_f64())
                    .collect()
            } else {
                v
            }
        };
        for (l, w) in self.layers.iter().enumerate() {
            let xn = rmsnorm(&x, &w[0], eps);
            let mut q = matvec(&w[1], &xn, nh * hd, q8);
            let mut k = matvec(&w[2], &xn, nkv * hd, q8);
            let v = matvec(&w[3], &xn, nkv * hd, q8);
            rope(&mut q, nh, hd, c.rope_dim, c.rope_theta as f64, pos);
            rope(&mut k, nkv, hd, c.rope_dim, c.rope_theta as f64, pos);
            let (kc, vc) = &mut self.kv[l];
            kc.push(round(k, self.f16_cache));
            vc.push(round(v, self.f16_cache));
            let mut attn = vec![0.0; nh * hd];
            for h in 0..nh {
                let kh = h / (nh / nkv);
                let qh = &q[h * hd..(h + 1) * hd];
                let scores: Vec<f64> = kc
                    .iter()
                    .map(|kr| {
                        qh.iter()
                            .zip(&kr[kh * hd..(kh + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (p, vr) in e.iter().zip(vc.iter()) {
                    for i in 0..hd {
                        attn[h * hd + i] += p / z * vr[kh * hd + i];
                    }
                }
            }
            let o = matvec(&w[4], &attn, d, q8);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let xn = rmsnorm(&x, &w[5], eps);
            let g = matvec(&w[6], &xn, c.n_ff, q8);
            let u = matvec(&w[7], &xn, c.n_ff, q8);
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = matvec(&w[8], &act, d, q8);
            x.iter_mut().zip(&dn).for_each(|(a, b)| *a += b);
        }
        let xn = rmsnorm(&x, &self.out_norm, eps);
        matvec(
            self.output.as_ref().unwrap_or(&self.embd),
            &xn,
            c.vocab_size,
            q8,
        )
    }
}
