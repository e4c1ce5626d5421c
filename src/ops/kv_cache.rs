//! The KV cache: per layer, K and V of shape [n_kv_heads, max_ctx, head_dim], and the
//! `kv_store` kernel that writes a batch of new rows at the step's position.
//!
//! Cache dtype: f16 when the device has SHADER_F16 (half the memory and half the bytes decode
//! attention reads per token, the quantity decode speed depends on), else f32. The f32
//! fallback keeps the no-f16 path a plain array read; it costs twice the memory on the few
//! adapters without f16 (some browsers), which is acceptable next to the weights.

use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

use super::attention::{check_head_dim, kv_flags, AttnParams};

const WG: u32 = 64;

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
];

/// K and V of one layer.
#[derive(Clone, Debug)]
pub struct KvLayer {
    pub k: GpuTensor,
    pub v: GpuTensor,
}

/// The KV cache of a whole model.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub n_kv_heads: usize,
    pub max_ctx: usize,
    pub head_dim: usize,
    pub dtype: DType,
    pub layers: Vec<KvLayer>,
}

impl KvCache {
    /// The cache dtype this device gets: F16 with SHADER_F16, else F32.
    pub fn dtype_for(gpu: &Gpu) -> DType {
        if gpu.caps.f16 {
            DType::F16
        } else {
            DType::F32
        }
    }

    /// A zeroed cache of `n_layers` layers.
    pub fn new(
        gpu: &Gpu,
        n_layers: usize,
        n_kv_heads: usize,
        max_ctx: usize,
        head_dim: usize,
    ) -> Result<Self> {
        const K: &str = "kv_cache";
        check_head_dim(K, head_dim)?;
        if n_kv_heads == 0 || max_ctx == 0 {
            return Err(GpuError::shape(
                K,
                format!("n_kv_heads {n_kv_heads} and max_ctx {max_ctx} must be positive"),
            ));
        }
        let dtype = Self::dtype_for(gpu);
        let shape = [n_kv_heads, max_ctx, head_dim];
        let layers = (0..n_layers)
            .map(|_| {
                Ok(KvLayer {
                    k: gpu.zeros("k_cache", &shape, dtype)?,
                    v: gpu.zeros("v_cache", &shape, dtype)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            n_kv_heads,
            max_ctx,
            head_dim,
            dtype,
            layers,
        })
    }

    /// Bytes the cache occupies on the GPU.
    pub fn nbytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.k.nbytes() + l.v.nbytes())
            .sum()
    }

    /// `kv_store` into layer `layer`.
    pub fn store(
        &self,
        gpu: &Gpu,
        layer: usize,
        step: &wgpu::Buffer,
        k_new: &GpuTensor,
        v_new: &GpuTensor,
    ) -> Result<Dispatch> {
        let l = self.layers.get(layer).ok_or_else(|| {
            GpuError::shape(
                "kv_store",
                format!("layer {layer} of a {}-layer cache", self.layers.len()),
            )
        })?;
        kv_store(gpu, step, k_new, v_new, l)
    }
}

/// Write `k_new`, `v_new` (f32 [n_tokens, n_kv_heads, head_dim]) into `kv` at positions
/// `step.pos ..`, converting to the cache dtype. Reads `pos` and `n_tokens` from the `step`
/// uniform (`StepParams`) when it runs, so one dispatch serves every step; `n_tokens` here is
/// the capacity, and `step.n_tokens` may be smaller. Rows past `max_ctx` are dropped.
pub fn kv_store(
    gpu: &Gpu,
    step: &wgpu::Buffer,
    k_new: &GpuTensor,
    v_new: &GpuTensor,
    kv: &KvLayer,
) -> Result<Dispatch> {
    const K: &str = "kv_store";
    let (k_cache, v_cache) = (&kv.k, &kv.v);
    let [n_kv, max_ctx, hd] = cache_shape(K, k_cache)?;
    check_head_dim(K, hd)?;
    v_cache.expect(K, "v cache", &k_cache.shape, &[k_cache.dtype])?;
    let n_tokens = k_new.shape.first().copied().unwrap_or(0);
    k_new.expect(K, "k_new", &[n_tokens, n_kv, hd], &[DType::F32])?;
    v_new.expect(K, "v_new", &[n_tokens, n_kv, hd], &[DType::F32])?;
    if n_tokens == 0 {
        return Err(GpuError::shape(K, "k_new has no tokens"));
    }
    let key = PipelineKey {
        shader: "attention",
        entry: "kv_store",
        flags: kv_flags(gpu, K, k_cache.dtype, &["KV_STORE"])?,
        overrides: vec![("WG", WG as i64)],
    };
    let kernel = gpu.kernel(K, &key, BINDINGS)?;
    let params = AttnParams {
        n_kv_heads: n_kv as u32,
        max_ctx: max_ctx as u32,
        n_tokens: n_tokens as u32,
        hd4: (hd / 4) as u32,
        ..Default::default()
    };
    let params = gpu.uniform(K, &params);
    let vec4s = (n_tokens * n_kv * hd / 4) as u32;
    gpu.dispatch(
        &kernel,
        &[
            step.as_entire_binding(),
            params.as_entire_binding(),
            k_new.binding(),
            v_new.binding(),
            k_cache.binding(),
            v_cache.binding(),
        ],
        gpu.grid(vec4s.div_ceil(WG)),
    )
}

/// The `[n_kv_heads, max_ctx, head_dim]` of a cache tensor, or a shape error.
pub(crate) fn cache_shape(kernel: &'static str, t: &GpuTensor) -> Result<[usize; 3]> {
    match t.shape[..] {
        [a, b, c] if matches!(t.dtype, DType::F16 | DType::F32) => Ok([a, b, c]),
        _ => Err(GpuError::shape(
            kernel,
            format!(
                "cache has shape {:?} {}, expected [n_kv_heads, max_ctx, head_dim] f16 or f32",
                t.shape,
                t.dtype.name()
            ),
        )),
    }
}

/// Round `x` to what a cache of `dtype` holds.
pub fn round_to_cache(x: f32, dtype: DType) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(x).to_f32(),
        _ => x,
    }
}

/// CPU reference of `kv_store`: write `rows` ([n_tokens, n_kv_heads, head_dim]) into `cache`
/// ([n_kv_heads, max_ctx, head_dim]) at `pos`, rounded to `dtype`.
pub fn kv_store_reference(
    cache: &mut [f32],
    rows: &[f32],
    pos: usize,
    n_kv_heads: usize,
    max_ctx: usize,
    head_dim: usize,
    dtype: DType,
) {
    let n_tokens = rows.len() / (n_kv_heads * head_dim);
    for t in 0..n_tokens.min(max_ctx.saturating_sub(pos)) {
        for h in 0..n_kv_heads {
            let src = (t * n_kv_heads + h) * head_dim;
            let dst = (h * max_ctx + pos + t) * head_dim;
            for d in 0..head_dim {
                cache[dst + d] = round_to_cache(rows[src + d], dtype);
            }
        }
    }
}
