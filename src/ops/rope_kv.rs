//! Decode's fused RoPE + KV store: rotate q in place inside a fused QKV row and write rotated
//! k and plain v into the layer's cache, one dispatch instead of three.

use super::attention::{check_head_dim, kv_flags};
use super::kv_cache::{cache_shape, KvLayer};
use super::rope::{Rope, RopeStyle};
use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const K: &str = "rope_kv";
const WG: u32 = 64;

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
];

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_tokens: u32,
    n_heads: u32,
    n_kv_heads: u32,
    hd4: u32,
    half_rot: u32,
    max_ctx: u32,
    stride4: u32,
    q_off4: u32,
    k_off4: u32,
    v_off4: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 48);

/// Where q, k and v sit in each token row of a fused QKV buffer, in f32 elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkvLayout {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Elements per token row.
    pub stride: usize,
    pub q_off: usize,
    pub k_off: usize,
    pub v_off: usize,
}

impl QkvLayout {
    /// q, then k, then v, packed: the row layout of a fused `[q; k; v]` projection.
    pub fn packed(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        QkvLayout {
            n_heads,
            n_kv_heads,
            stride: (n_heads + 2 * n_kv_heads) * head_dim,
            q_off: 0,
            k_off: n_heads * head_dim,
            v_off: (n_heads + n_kv_heads) * head_dim,
        }
    }
}

impl Rope {
    /// Prepare the fused rotation and store for `qkv` f32 `[n_tokens, layout.stride]` into
    /// `kv` at positions `step.pos ..` (`step` is the `StepParams` uniform; only the first
    /// `min(n_tokens, step.n_tokens)` tokens are touched).
    pub fn prepare_kv(
        &self,
        gpu: &Gpu,
        qkv: &GpuTensor,
        layout: QkvLayout,
        step: &wgpu::Buffer,
        kv: &KvLayer,
    ) -> Result<Dispatch> {
        let hd = self.cfg.head_dim;
        check_head_dim(K, hd)?;
        let l = layout;
        let n_tokens = qkv.shape.first().copied().unwrap_or(0);
        qkv.expect(K, "qkv", &[n_tokens, l.stride], &[DType::F32])?;
        let [_, max_ctx, _] = cache_shape(K, &kv.k)?;
        kv.k.expect(K, "k cache", &[l.n_kv_heads, max_ctx, hd], &[kv.k.dtype])?;
        kv.v.expect(K, "v cache", &kv.k.shape, &[kv.k.dtype])?;
        let fits = |off: usize, heads: usize| off + heads * hd <= l.stride;
        let aligned = [l.stride, l.q_off, l.k_off, l.v_off]
            .iter()
            .all(|v| v.is_multiple_of(4));
        let rot_ok = match self.cfg.style {
            RopeStyle::Neox => self.cfg.n_rot.is_multiple_of(8),
            RopeStyle::Interleaved => self.cfg.n_rot.is_multiple_of(4),
        };
        if n_tokens == 0
            || l.n_heads == 0
            || !aligned
            || !rot_ok
            || !fits(l.q_off, l.n_heads)
            || !fits(l.k_off, l.n_kv_heads)
            || !fits(l.v_off, l.n_kv_heads)
        {
            return Err(GpuError::shape(
                K,
                format!(
                    "{l:?} with {n_tokens} tokens, head_dim {hd}, n_rot {}: offsets and stride must be multiples of 4, heads must fit the row, n_rot a multiple of 4 (8 for rotate-half)",
                    self.cfg.n_rot
                ),
            ));
        }
        let threads = n_tokens * (l.n_heads + 2 * l.n_kv_heads) * hd / 4;
        if qkv.numel() > u32::MAX as usize || threads > u32::MAX as usize {
            return Err(GpuError::shape(K, "qkv exceeds u32 indexing"));
        }
        let mut extra = vec![];
        if self.cfg.style == RopeStyle::Neox {
            extra.push("NEOX");
        }
        let key = PipelineKey {
            shader: "rope_kv",
            entry: "rope_kv",
            flags: kv_flags(gpu, K, kv.k.dtype, &extra)?,
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(
            K,
            &Params {
                n_tokens: n_tokens as u32,
                n_heads: l.n_heads as u32,
                n_kv_heads: l.n_kv_heads as u32,
                hd4: (hd / 4) as u32,
                half_rot: (self.cfg.n_rot / 2) as u32,
                max_ctx: max_ctx as u32,
                stride4: (l.stride / 4) as u32,
                q_off4: (l.q_off / 4) as u32,
                k_off4: (l.k_off / 4) as u32,
                v_off4: (l.v_off / 4) as u32,
                _pad: [0; 2],
            },
        );
        gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                super::step_binding(step),
                self.freqs.binding(),
                qkv.binding(),
                kv.k.binding(),
                kv.v.binding(),
            ],
            gpu.grid((threads as u32).div_ceil(WG)),
        )
    }
}

/// RoPE and the KV store as a matvec epilogue (`Fused::rope_kv`): the matvec computes a fused
/// `[q; k; v]` row for one decode token and stores it rotated, in place of `Rope::prepare_kv`.
#[derive(Clone, Copy, Debug)]
pub struct RopeKv<'a> {
    pub rope: &'a Rope,
    pub layout: QkvLayout,
    /// The `StepParams` uniform (the token's position).
    pub step: &'a wgpu::Buffer,
    pub kv: &'a KvLayer,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EpilogueParams {
    head_dim: u32,
    half_rot: u32,
    q_rows: u32,
    k_rows: u32,
    max_ctx: u32,
    _pad: [u32; 3],
}

impl RopeKv<'_> {
    /// Check that the epilogue can run for a `[rows, _]` projection (interleaved pairs, a packed
    /// `[q; k; v]` layout of `rows` rows) and return the flags it adds and its uniform.
    pub(crate) fn prepare(
        &self,
        gpu: &Gpu,
        kernel: &'static str,
        rows: usize,
    ) -> Result<(Vec<&'static str>, wgpu::Buffer)> {
        let hd = self.rope.cfg.head_dim;
        let l = self.layout;
        let [_, max_ctx, _] = cache_shape(kernel, &self.kv.k)?;
        self.kv.k.expect(
            kernel,
            "k cache",
            &[l.n_kv_heads, max_ctx, hd],
            &[self.kv.k.dtype],
        )?;
        self.kv
            .v
            .expect(kernel, "v cache", &self.kv.k.shape, &[self.kv.k.dtype])?;
        if self.rope.cfg.style != RopeStyle::Interleaved
            || l != QkvLayout::packed(l.n_heads, l.n_kv_heads, hd)
            || l.stride != rows
            || !hd.is_multiple_of(2)
        {
            return Err(GpuError::shape(
                kernel,
                format!(
                    "the RoPE epilogue needs interleaved pairs and a packed [q; k; v] of {rows} rows, got {l:?}, head_dim {hd}"
                ),
            ));
        }
        let flags = kv_flags(gpu, kernel, self.kv.k.dtype, &["ROPE_KV"])?;
        let params = EpilogueParams {
            head_dim: hd as u32,
            half_rot: (self.rope.cfg.n_rot / 2) as u32,
            q_rows: (l.n_heads * hd) as u32,
            k_rows: (l.n_kv_heads * hd) as u32,
            max_ctx: max_ctx as u32,
            _pad: [0; 3],
        };
        Ok((flags.into_iter().collect(), gpu.uniform(kernel, &params)))
    }

    /// Bindings 6..=9 of the epilogue (after its uniform, binding 5).
    pub(crate) fn bindings(&self) -> [wgpu::BindingResource<'_>; 4] {
        [
            super::step_binding(self.step),
            self.rope.freqs.binding(),
            self.kv.k.binding(),
            self.kv.v.binding(),
        ]
    }
}
