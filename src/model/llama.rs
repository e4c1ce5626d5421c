//! A Llama-family transformer on the GPU: weights stay in their file format (quantized blocks
//! are never expanded), activations and the KV cache live in fixed buffers, and decode runs
//! as one prebuilt list of dispatches per token.

use std::collections::HashMap;

use crate::gpu::{ChunkedTensor, DType, Dispatch, Gpu, GpuError, GpuTensor};
use crate::ops::kv_cache::KvCache;
use crate::ops::StepParams;

use super::config::LlamaConfig;
use super::error::LoadError;
use super::fuse;
use super::gguf::GgufFile;

/// Errors from loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("tensor '{tensor}' is {got}, which the {what} cannot use (expected {expected})")]
    TensorType {
        tensor: String,
        what: &'static str,
        got: String,
        expected: &'static str,
    },
    #[error("prompt of {tokens} tokens does not fit the context of {ctx} (already {used} used)")]
    ContextFull {
        tokens: usize,
        used: usize,
        ctx: usize,
    },
    #[error("empty input: nothing to run")]
    Empty,
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// One transformer block's weights, with the projections that share an input fused.
pub struct LayerWeights {
    pub attn_norm: GpuTensor,
    /// q, k and v stacked: `[(n_heads + 2 n_kv_heads) head_dim, n_embd]`.
    pub wqkv: ChunkedTensor,
    pub wo: ChunkedTensor,
    pub ffn_norm: GpuTensor,
    /// gate and up rows interleaved as (gate, up) pairs: `[2 n_ff, n_embd]`.
    pub w_gate_up: ChunkedTensor,
    pub w_down: ChunkedTensor,
}

pub struct Weights {
    pub token_embd: ChunkedTensor,
    pub output_norm: GpuTensor,
    /// `None` when the output head is tied to `token_embd`.
    pub output: Option<ChunkedTensor>,
    pub layers: Vec<LayerWeights>,
}

impl Weights {
    pub fn lm_head(&self) -> &ChunkedTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Bytes of weights on the GPU.
    pub fn nbytes(&self) -> u64 {
        let c = |t: &ChunkedTensor| t.nbytes();
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                l.attn_norm.nbytes()
                    + l.ffn_norm.nbytes()
                    + [&l.wqkv, &l.wo, &l.w_gate_up, &l.w_down]
                        .iter()
                        .map(|t| c(t))
                        .sum::<u64>()
            })
            .sum();
        layers + c(&self.token_embd) + self.output_norm.nbytes() + self.output.as_ref().map_or(0, c)
    }
}

/// Formats the matvec and matmul kernels read directly.
pub(crate) const MATRIX_TYPES: [DType; 5] = [
    DType::F32,
    DType::F16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
];

/// Upload a `[rows, cols]` weight as stored (BF16, which no kernel reads, becomes F32).
fn upload_matrix(
    gpu: &Gpu,
    file: &GgufFile,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<ChunkedTensor> {
    fuse::stacked(gpu, file, &[name.to_string()], &[rows], cols)
}

/// Upload a norm weight as f32.
fn upload_vector(gpu: &Gpu, file: &GgufFile, name: &str, len: usize) -> Result<GpuTensor> {
    let values = file.tensor(name)?.to_f32()?;
    Ok(gpu.upload_f32("norm", &[len], &values)?)
}

impl Weights {
    /// Upload every tensor, calling `progress(done, total)` after each.
    pub fn load(
        gpu: &Gpu,
        file: &GgufFile,
        cfg: &LlamaConfig,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Weights> {
        let (d, ff) = (cfg.n_embd, cfg.n_ff);
        let q_dim = cfg.n_heads * cfg.head_dim;
        let kv_dim = cfg.n_kv_heads * cfg.head_dim;
        let total = 3 + cfg.n_layers * 9 + usize::from(!cfg.tied_embeddings);
        let mut done = 0;
        let mut tick = |n: usize| {
            done += n;
            progress(done, total);
        };
        let token_embd = upload_matrix(gpu, file, "token_embd.weight", cfg.vocab_size, d)?;
        tick(1);
        let output_norm = upload_vector(gpu, file, "output_norm.weight", d)?;
        tick(1);
        let output = if cfg.tied_embeddings {
            None
        } else {
            let t = upload_matrix(gpu, file, "output.weight", cfg.vocab_size, d)?;
            tick(1);
            Some(t)
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            let qkv = [n("attn_q"), n("attn_k"), n("attn_v")];
            layers.push(LayerWeights {
                attn_norm: upload_vector(gpu, file, &n("attn_norm"), d)?,
                wqkv: fuse::stacked(gpu, file, &qkv, &[q_dim, kv_dim, kv_dim], d)?,
                wo: upload_matrix(gpu, file, &n("attn_output"), d, q_dim)?,
                ffn_norm: upload_vector(gpu, file, &n("ffn_norm"), d)?,
                w_gate_up: fuse::interleaved(gpu, file, &n("ffn_gate"), &n("ffn_up"), ff, d)?,
                w_down: upload_matrix(gpu, file, &n("ffn_down"), d, ff)?,
            });
            tick(9);
        }
        tick(1);
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            layers,
        })
    }
}

/// Activation buffers, sized for the largest batch (`max_batch` tokens).
pub struct Activations {
    pub ids: GpuTensor,
    /// Residual stream [max_batch, d].
    pub x: GpuTensor,
    /// Normed input of the current sub-block [max_batch, d].
    pub xn: GpuTensor,
    /// q, k and v of each token, one row [max_batch, (n_heads + 2 n_kv_heads) head_dim].
    pub qkv: GpuTensor,
    pub attn: GpuTensor,
    /// (gate, up) pairs [max_batch, 2 n_ff] (prefill; decode fuses SiLU into the matvec).
    pub gate_up: GpuTensor,
    pub act: GpuTensor,
    /// The last token's residual row, copied out after prefill [d].
    pub x_last: GpuTensor,
    pub logits: GpuTensor,
    /// Argmax [1] or top-k [k, 2] results, u32.
    pub pick: GpuTensor,
    /// Per-step uniform (`StepParams`).
    pub step: wgpu::Buffer,
    /// Host-readable copy of the pick or the logits, reused every step.
    pub readback: wgpu::Buffer,
}

impl Activations {
    pub fn new(gpu: &Gpu, cfg: &LlamaConfig, max_batch: usize) -> Result<Activations> {
        let z = |name: &'static str, shape: &[usize]| gpu.zeros(name, shape, DType::F32);
        let (b, d) = (max_batch, cfg.n_embd);
        let (nh, nkv, hd) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        Ok(Activations {
            ids: gpu.zeros("ids", &[b], DType::U32)?,
            x: z("x", &[b, d])?,
            xn: z("xn", &[b, d])?,
            qkv: z("qkv", &[b, (nh + 2 * nkv) * hd])?,
            attn: z("attn", &[b, nh, hd])?,
            gate_up: z("gate_up", &[b, 2 * cfg.n_ff])?,
            act: z("act", &[b, cfg.n_ff])?,
            x_last: z("x_last", &[1, d])?,
            logits: z("logits", &[cfg.vocab_size])?,
            pick: gpu.zeros("pick", &[crate::ops::topk::TopK::MAX_K, 2], DType::U32)?,
            step: gpu.uniform("step", &StepParams::default()),
            readback: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: (cfg.vocab_size.max(crate::ops::topk::TopK::MAX_K * 2) * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        })
    }

    pub fn nbytes(&self) -> u64 {
        [
            &self.ids,
            &self.x,
            &self.xn,
            &self.qkv,
            &self.attn,
            &self.gate_up,
            &self.act,
            &self.logits,
        ]
        .iter()
        .map(|t| t.nbytes())
        .sum()
    }
}

/// A view of `t` with another shape over the same bytes from its start.
pub(crate) fn view(t: &GpuTensor, shape: &[usize]) -> GpuTensor {
    GpuTensor {
        shape: shape.to_vec(),
        ..t.clone()
    }
}

/// A loaded model, ready to run: weights, cache, buffers and the prebuilt decode step.
pub struct Llama {
    pub cfg: LlamaConfig,
    pub weights: Weights,
    pub kv: KvCache,
    pub act: Activations,
    pub max_batch: usize,
    /// Tokens currently in the KV cache.
    pub pos: usize,
    pub(crate) decode_plan: Vec<Dispatch>,
    /// Final norm and output head on the last prefill row (`act.x_last`).
    pub(crate) prefill_head: Vec<Dispatch>,
    pub(crate) prefill_plans: HashMap<usize, Vec<Dispatch>>,
    pub(crate) pick_plans: HashMap<crate::sampling::LogitsNeed, Vec<Dispatch>>,
}

impl Llama {
    /// Upload weights and build buffers for a context of `ctx` tokens.
    pub fn load(
        gpu: &Gpu,
        file: &GgufFile,
        ctx: usize,
        progress: impl FnMut(usize, usize),
    ) -> Result<Llama> {
        let cfg = LlamaConfig::from_gguf(file.gguf())?;
        cfg.check_tensors(file.gguf())?;
        let ctx = ctx.clamp(1, cfg.context_length.max(1));
        let weights = Weights::load(gpu, file, &cfg, progress)?;
        let kv = KvCache::new(gpu, cfg.n_layers, cfg.n_kv_heads, ctx, cfg.head_dim)?;
        let max_batch = 64.min(ctx);
        let act = Activations::new(gpu, &cfg, max_batch)?;
        let mut model = Llama {
            cfg,
            weights,
            kv,
            act,
            max_batch,
            pos: 0,
            decode_plan: Vec::new(),
            prefill_head: Vec::new(),
            prefill_plans: HashMap::new(),
            pick_plans: HashMap::new(),
        };
        model.decode_plan = model.build_decode(gpu)?;
        model.prefill_head = model.build_head(gpu, &model.act.x_last)?;
        Ok(model)
    }

    pub fn ctx(&self) -> usize {
        self.kv.max_ctx
    }

    /// GPU bytes: weights, KV cache, activations.
    pub fn memory(&self) -> (u64, u64, u64) {
        (self.weights.nbytes(), self.kv.nbytes(), self.act.nbytes())
    }

    /// Forget the cached sequence (a new conversation).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// The prebuilt decode step, up to the logits (for profiling; it reads `act.step`).
    pub fn decode_dispatches(&self) -> &[Dispatch] {
        &self.decode_plan
    }

    /// The plan of a prefill chunk of `t` tokens, once a prefill has used that chunk length.
    pub fn prefill_dispatches(&self, t: usize) -> Option<&[Dispatch]> {
        self.prefill_plans.get(&t).map(|p| p.as_slice())
    }

    /// The dispatches reducing the logits to `need`, once a forward pass has asked for it.
    pub fn pick_dispatches(&self, need: crate::sampling::LogitsNeed) -> Option<&[Dispatch]> {
        self.pick_plans.get(&need).map(|p| p.as_slice())
    }

    /// Every distinct `(dtype, rows, cols)` of the decode matvecs (the weights `build_decode`
    /// runs `QMatVec` on, the output head included), in first-use order; the autotuner times
    /// exactly these shapes.
    pub fn matvec_shapes(&self) -> Vec<(DType, usize, usize)> {
        let w = &self.weights;
        let layers = w
            .layers
            .iter()
            .flat_map(|l| [&l.wqkv, &l.wo, &l.w_gate_up, &l.w_down]);
        let mut out = Vec::new();
        for t in layers.chain([w.lm_head()]) {
            let s = (t.dtype, t.shape[0], t.shape[1]);
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}
