//! Rotary position embedding (RoPE), in place on q or k `[n_tokens, n_heads, head_dim]`.
//!
//! The position comes from the shared `StepParams` uniform, so a decode step only rewrites that
//! buffer. Per-pair frequencies are computed once on the CPU in f64 and uploaded as a small
//! table (in turns per position, split hi + lo so the GPU's angle stays exact; see rope.wgsl).

use super::StepParams;
use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const K: &str = "rope";
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    half_rot: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// Which dimensions form a rotated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i + 1): llama.cpp's layout for GGUF llama-architecture files.
    Interleaved,
    /// Pairs (i, i + n_rot / 2), "rotate-half": Hugging Face llama, Qwen2, Gemma, GPT-NeoX.
    Neox,
}

/// RoPE settings of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    pub head_dim: usize,
    /// Rotated dimensions (even, <= head_dim); the rest pass through unchanged.
    pub n_rot: usize,
    /// Theta base, e.g. 10000 or 1000000.
    pub base: f64,
    pub style: RopeStyle,
    /// Optional per-pair divisors of the frequency (`n_rot / 2` values, e.g. GGUF `rope_freqs`).
    pub freq_factors: Option<Vec<f32>>,
}

impl RopeConfig {
    pub fn new(head_dim: usize, base: f64, style: RopeStyle) -> Self {
        RopeConfig {
            head_dim,
            n_rot: head_dim,
            base,
            style,
            freq_factors: None,
        }
    }

    /// Angle per position of pair `j`, in radians: base^(-2j / n_rot) / factor_j.
    pub fn inv_freq(&self) -> Vec<f64> {
        (0..self.n_rot / 2)
            .map(|j| {
                let f = self.base.powf(-2.0 * j as f64 / self.n_rot as f64);
                f / self.freq_factors.as_ref().map_or(1.0, |v| v[j] as f64)
            })
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let bad = |d: String| Err(GpuError::shape(K, d));
        if self.n_rot == 0 || !self.n_rot.is_multiple_of(2) || self.n_rot > self.head_dim {
            return bad(format!(
                "n_rot = {} must be even, > 0 and <= head_dim = {}",
                self.n_rot, self.head_dim
            ));
        }
        if !(self.base.is_finite() && self.base > 0.0) {
            return bad(format!("theta base = {} must be finite and > 0", self.base));
        }
        if let Some(f) = &self.freq_factors {
            if f.len() != self.n_rot / 2 || f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return bad(format!(
                    "freq_factors must be {} finite values > 0",
                    self.n_rot / 2
                ));
            }
        }
        Ok(())
    }
}

/// A RoPE op bound to one model's settings and its frequency table on the GPU.
#[derive(Debug)]
pub struct Rope {
    pub cfg: RopeConfig,
    pub(crate) freqs: GpuTensor,
}

impl Rope {
    /// Check `cfg` and upload its frequency table.
    pub fn new(gpu: &Gpu, cfg: RopeConfig) -> Result<Rope> {
        cfg.validate()?;
        let table: Vec<f32> = cfg
            .inv_freq()
            .into_iter()
            .flat_map(|f| {
                let turns = f / std::f64::consts::TAU;
                // Keep 7 significant bits in hi (clear the low 17 of 23 mantissa bits).
                let hi = f32::from_bits((turns as f32).to_bits() & !((1 << 17) - 1));
                [hi, (turns - hi as f64) as f32]
            })
            .collect();
        let freqs = gpu.upload_f32("rope_freqs", &[cfg.n_rot / 2, 2], &table)?;
        Ok(Rope { cfg, freqs })
    }

    /// Prepare the in-place rotation of f32 `x`, shaped `[n_tokens, n_heads, head_dim]` or
    /// `[n_tokens, n_heads * head_dim]`. `step` is the `StepParams` uniform buffer: token t is
    /// at position `pos + t`, and only the first `min(n_tokens, step.n_tokens)` tokens are
    /// rotated.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        n_heads: usize,
        step: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let hd = self.cfg.head_dim;
        let n_tokens = x.shape.first().copied().unwrap_or(0);
        let ok = x.shape == [n_tokens, n_heads, hd] || x.shape == [n_tokens, n_heads * hd];
        if !ok || n_heads == 0 {
            return Err(GpuError::shape(
                K,
                format!(
                    "x has shape {:?}, expected [n_tokens, {n_heads}, {hd}] or [n_tokens, {}]",
                    x.shape,
                    n_heads * hd
                ),
            ));
        }
        x.expect(K, "x", &x.shape, &[DType::F32])?;
        let size = std::mem::size_of::<StepParams>() as u64;
        if step.size() < size || !step.usage().contains(wgpu::BufferUsages::UNIFORM) {
            return Err(GpuError::shape(
                K,
                format!("step must be a uniform buffer of >= {size} bytes"),
            ));
        }
        let half = self.cfg.n_rot / 2;
        let threads = n_tokens * n_heads * half;
        if x.numel() > u32::MAX as usize || threads > u32::MAX as usize {
            return Err(GpuError::shape(
                K,
                format!("{:?} exceeds u32 indexing", x.shape),
            ));
        }
        let key = PipelineKey {
            shader: "rope",
            entry: "rope",
            flags: gpu.flags(match self.cfg.style {
                RopeStyle::Neox => &["NEOX"],
                RopeStyle::Interleaved => &[],
            }),
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(
            K,
            &Params {
                n_tokens: n_tokens as u32,
                n_heads: n_heads as u32,
                head_dim: hd as u32,
                half_rot: half as u32,
            },
        );

        gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                super::step_binding(step),
                self.freqs.binding(),
                x.binding(),
            ],
            gpu.grid((threads as u32).div_ceil(WG)),
        )
    }

    /// CPU reference in f64: `x` holds rows of `n_heads * head_dim`; token t is at `pos + t`.
    pub fn reference(&self, x: &[f32], n_heads: usize, pos: usize) -> Vec<f32> {
        let hd = self.cfg.head_dim;
        let half = self.cfg.n_rot / 2;
        let inv = self.cfg.inv_freq();
        let mut out = x.to_vec();
        for (t, tok) in out.chunks_mut(n_heads * hd).enumerate() {
            for head in tok.chunks_mut(hd) {
                for (j, f) in inv.iter().enumerate() {
                    let (a, b) = match self.cfg.style {
                        RopeStyle::Interleaved => (2 * j, 2 * j + 1),
                        RopeStyle::Neox => (j, j + half),
                    };
                    let (s, c) = (((pos + t) as f64) * f).sin_cos();
                    let (x0, x1) = (head[a] as f64, head[b] as f64);
                    head[a] = (x0 * c - x1 * s) as f32;
                    head[b] = (x0 * s + x1 * c) as f32;
                }
            }
        }
        out
    }
}
