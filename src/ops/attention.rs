//! Attention against the KV cache (see `kv_cache`): decode (one query token, single pass or
//! split over the sequence with a merge pass, i.e. flash-decoding) and causal prefill (tiled,
//! online softmax). Grouped-query: query head h reads kv head h / (n_heads / n_kv_heads).
//!
//! Positions come from the `StepParams` uniform when the kernels run, so dispatches are built
//! once and replayed every step after `queue.write_buffer` on that uniform.

use crate::gpu::{
    shader::Flags, BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result,
};

use super::kv_cache::{cache_shape, KvLayer};

/// Threads per decode / merge workgroup (a power of two, at least head_dim / 4).
const WG_DECODE: u32 = 64;
/// Threads per prefill workgroup (a power of two).
const WG_PREFILL: u32 = 128;
/// vec4s of the head one lane of `decode_lanes` holds (its DPL).
const MAX_LANE_VEC4S: usize = 4;
/// Largest head_dim the kernels' shared arrays hold.
pub const MAX_HEAD_DIM: usize = 256;
/// Elements of the prefill shader's q / k / v tiles and of its score tile.
const PREFILL_TILE: usize = 1024;
const PREFILL_SCORES: usize = 512;

/// Uniform shared by the attention kernels (mirrors `Params` in attention.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AttnParams {
    pub n_heads: u32,
    pub group: u32,
    pub n_kv_heads: u32,
    pub max_ctx: u32,
    pub scale: f32,
    pub splits: u32,
    pub n_tokens: u32,
    pub hd4: u32,
    pub bq: u32,
    pub bk: u32,
    pub nv: u32,
    /// Prefill: vec4s from one token's q row to the next (q may be part of a fused QKV row).
    pub q_stride4: u32,
}
const _: () = assert!(std::mem::size_of::<AttnParams>() == 48);

const SINGLE_BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

const SPLIT_BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
];

const MERGE_BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// How decode attention covers the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The device's tuned count for this shape, else from max_ctx (`Attention::auto_splits`).
    Auto,
    /// One workgroup per head walks the whole sequence.
    Single,
    /// Each head's sequence is cut into this many parts (fixed, so the dispatch never changes;
    /// each part covers ceil(seq_len / n) positions), then a second pass merges them.
    Splits(u32),
}

/// Shapes and scale of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies q·k before the softmax.
    pub scale: f32,
}

impl Attention {
    /// Standard attention: scale 1 / sqrt(head_dim).
    pub fn new(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }

    pub fn with_scale(self, scale: f32) -> Self {
        Attention { scale, ..self }
    }

    /// Splits chosen for a cache of `max_ctx` positions: one pass up to 512, then one split
    /// per 256 positions up to 32, so short caches skip the merge and long ones give the
    /// device n_heads * splits workgroups instead of n_heads.
    pub fn auto_splits(max_ctx: usize) -> u32 {
        if max_ctx <= 512 {
            1
        } else {
            max_ctx.div_ceil(256).min(32) as u32
        }
    }

    /// The untuned split count on `gpu`: `auto_splits`, except on CPU adapters, where a
    /// workgroup per head already keeps every host thread busy and a merge pass costs a
    /// dispatch (lavapipe, 9 heads, 2048 positions: one pass 1.41x as fast as 8 splits).
    pub fn preset_splits(&self, gpu: &Gpu, max_ctx: usize) -> u32 {
        let threads = crate::ops::matvec::host_threads();
        if gpu.desc.software && self.n_heads >= threads {
            1
        } else {
            Self::auto_splits(max_ctx)
        }
    }

    /// The subgroup size decode uses as its workgroup on CPU-backed adapters with subgroups of
    /// one fixed size (lavapipe: 8), where barriers are expensive, when each lane's slice of
    /// the head is at most `MAX_LANE_VEC4S` vec4s; `None` elsewhere.
    pub fn lanes(&self, gpu: &Gpu) -> Option<u32> {
        let (min, max) = (gpu.caps.subgroup_min_size, gpu.caps.subgroup_max_size);
        let fits = (self.head_dim / 4).div_ceil(min.max(1) as usize) <= MAX_LANE_VEC4S;
        (gpu.desc.software && gpu.caps.subgroup && min == max && (1..=64).contains(&min) && fits)
            .then_some(min)
    }

    /// The lanes kernel's overrides for subgroups of `size`: its workgroup, and the vec4s of
    /// the head each lane holds.
    fn lanes_overrides(&self, size: u32) -> Vec<(&'static str, i64)> {
        let dpl = (self.head_dim / 4).div_ceil(size as usize);
        vec![("WG", size as i64), ("DPL", dpl as i64)]
    }

    /// Check the head counts and the caches; returns max_ctx.
    fn check(&self, kernel: &'static str, kv: &KvLayer) -> Result<usize> {
        let (k_cache, v_cache) = (&kv.k, &kv.v);
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        if nkv == 0 || nh == 0 || !nh.is_multiple_of(nkv) {
            return Err(GpuError::shape(
                kernel,
                format!("n_heads {nh} must be a positive multiple of n_kv_heads {nkv}"),
            ));
        }
        check_head_dim(kernel, hd)?;
        let [_, max_ctx, _] = cache_shape(kernel, k_cache)?;
        k_cache.expect(kernel, "k cache", &[nkv, max_ctx, hd], &[k_cache.dtype])?;
        v_cache.expect(kernel, "v cache", &[nkv, max_ctx, hd], &[k_cache.dtype])?;
        Ok(max_ctx)
    }

    fn params(&self, max_ctx: usize, splits: u32, n_tokens: usize) -> AttnParams {
        AttnParams {
            n_heads: self.n_heads as u32,
            group: (self.n_heads / self.n_kv_heads) as u32,
            n_kv_heads: self.n_kv_heads as u32,
            max_ctx: max_ctx as u32,
            scale: self.scale,
            splits,
            n_tokens: n_tokens as u32,
            hd4: (self.head_dim / 4) as u32,
            ..Default::default()
        }
    }

    /// Decode: `q` f32 [n_heads, head_dim] (one token) against the first `step.seq_len`
    /// cache positions; `out` f32 [n_heads, head_dim]. Returns one dispatch (single pass) or
    /// two (split, merge) to record in order; the split path's partials live in buffers
    /// allocated here and kept alive by the dispatches.
    pub fn decode(
        &self,
        gpu: &Gpu,
        step: &wgpu::Buffer,
        q: &GpuTensor,
        kv: &KvLayer,
        out: &GpuTensor,
        split: Split,
    ) -> Result<Vec<Dispatch>> {
        const K: &str = "attention_decode";
        let max_ctx = self.check(K, kv)?;
        let (nh, hd) = (self.n_heads, self.head_dim);
        q.expect(K, "q", &[nh, hd], &[DType::F32])?;
        out.expect(K, "out", &[nh, hd], &[DType::F32])?;
        let splits = match split {
            Split::Auto => crate::tune::attention_splits(gpu, self, max_ctx),
            Split::Single => 1,
            Split::Splits(n) => n,
        };
        let max_splits = gpu.caps.limits.max_compute_workgroups_per_dimension;
        if splits == 0 || splits > max_splits {
            return Err(GpuError::shape(
                K,
                format!("{splits} splits; expected 1..={max_splits}"),
            ));
        }
        let single = split == Split::Single || (split == Split::Auto && splits == 1);
        // CPU adapters with a fixed subgroup size: one subgroup per workgroup, no barriers.
        let (entry, base_flag, overrides) = match self.lanes(gpu) {
            Some(size) => ("decode_lanes", "LANES", self.lanes_overrides(size)),
            None => ("decode", "DECODE", vec![("WG", WG_DECODE as i64)]),
        };
        let params = gpu.uniform(K, &self.params(max_ctx, splits, 1));
        let common = [
            step.as_entire_binding(),
            params.as_entire_binding(),
            q.binding(),
            kv.k.binding(),
            kv.v.binding(),
        ];
        if single {
            let key = PipelineKey {
                shader: "attention",
                entry,
                flags: kv_flags(gpu, K, kv.k.dtype, &[base_flag])?,
                overrides,
            };
            let kernel = gpu.kernel(K, &key, SINGLE_BINDINGS)?;
            let mut b = common.to_vec();
            b.push(out.binding());
            return Ok(vec![gpu.dispatch(&kernel, &b, [nh as u32, 1, 1])?]);
        }
        let slots = nh * splits as usize;
        let acc = gpu.zeros("attention_partial_acc", &[slots, hd], DType::F32)?;
        let ml = gpu.zeros("attention_partial_max_sum", &[slots, 2], DType::F32)?;
        let key = PipelineKey {
            shader: "attention",
            entry,
            flags: kv_flags(gpu, K, kv.k.dtype, &[base_flag, "SPLIT"])?,
            overrides: overrides.clone(),
        };
        let kernel = gpu.kernel(K, &key, SPLIT_BINDINGS)?;
        let mut b = common.to_vec();
        b.push(acc.binding());
        b.push(ml.binding());
        let first = gpu.dispatch(&kernel, &b, [nh as u32, splits, 1])?;
        let key = PipelineKey {
            shader: "attention",
            entry: "decode_merge",
            flags: gpu.flags(&["MERGE"]),
            overrides: overrides[..1].to_vec(),
        };
        let kernel = gpu.kernel("attention_merge", &key, MERGE_BINDINGS)?;
        let b = [
            step.as_entire_binding(),
            params.as_entire_binding(),
            acc.binding(),
            ml.binding(),
            out.binding(),
        ];
        let second = gpu.dispatch(&kernel, &b, [nh as u32, 1, 1])?;
        Ok(vec![first, second])
    }

    /// Prefill: `q` f32 [n_tokens, n_heads, head_dim] (or [n_tokens, h, head_dim] with h >
    /// n_heads, of which the first n_heads are q: a fused QKV buffer) for the tokens at `step.pos ..`, each
    /// attending causally to cache positions 0..=its own (the batch's K/V must be stored
    /// first); `out` like `q`. `n_tokens` is the capacity: `step.n_tokens` may be smaller.
    pub fn prefill(
        &self,
        gpu: &Gpu,
        step: &wgpu::Buffer,
        q: &GpuTensor,
        kv: &KvLayer,
        out: &GpuTensor,
    ) -> Result<Dispatch> {
        const K: &str = "attention_prefill";
        let max_ctx = self.check(K, kv)?;
        let (nh, hd) = (self.n_heads, self.head_dim);
        let n_tokens = q.shape.first().copied().unwrap_or(0);
        // q's rows may be wider than n_heads (a fused QKV row, with q's heads first).
        let q_heads = q.shape.get(1).copied().unwrap_or(0).max(nh);
        q.expect(K, "q", &[n_tokens, q_heads, hd], &[DType::F32])?;
        out.expect(K, "out", &[n_tokens, nh, hd], &[DType::F32])?;
        if n_tokens == 0 {
            return Err(GpuError::shape(K, "q has no tokens"));
        }
        let base = AttnParams {
            q_stride4: (q_heads * hd / 4) as u32,
            ..self.params(max_ctx, 1, n_tokens)
        };
        // CPU adapters: the decode kernel, a workgroup per (head, token), no barriers. Else the
        // tiled kernel, a workgroup per (block of query rows, kv head).
        let (entry, flag, overrides, params, grid) = match self.lanes(gpu) {
            Some(size) => (
                "decode_lanes",
                "LANES",
                self.lanes_overrides(size),
                base,
                [nh as u32, 1, n_tokens as u32],
            ),
            None => {
                let (bq, bk, nv) = prefill_tiles(hd);
                let rows = n_tokens * (nh / self.n_kv_heads);
                let params = AttnParams {
                    bq: bq as u32,
                    bk: bk as u32,
                    nv: nv as u32,
                    ..base
                };
                let blocks = rows.div_ceil(bq).max(1) as u32;
                let overrides = vec![("WG", WG_PREFILL as i64)];
                (
                    "prefill",
                    "PREFILL",
                    overrides,
                    params,
                    [blocks, self.n_kv_heads as u32, 1],
                )
            }
        };
        let key = PipelineKey {
            shader: "attention",
            entry,
            flags: kv_flags(gpu, K, kv.k.dtype, &[flag])?,
            overrides,
        };
        let kernel = gpu.kernel(K, &key, SINGLE_BINDINGS)?;
        let params = gpu.uniform(K, &params);
        let b = [
            step.as_entire_binding(),
            params.as_entire_binding(),
            q.binding(),
            kv.k.binding(),
            kv.v.binding(),
            out.binding(),
        ];
        // QK^T and PV over the causal keys of a batch at position 0 (the plan is position-free).
        let flops = 2 * (nh * hd * n_tokens * (n_tokens + 1)) as u64;
        // Named for this op: the lanes pipeline (and so its name) is shared with decode.
        gpu.dispatch(&kernel, &b, grid)
            .map(|d| Dispatch { kernel: K, ..d }.with_flops(flops))
    }

    /// CPU reference (f64 softmax): `q` [n_tokens, n_heads, head_dim] for tokens at `pos ..`,
    /// caches `k`, `v` [n_kv_heads, max_ctx, head_dim]; token t sees positions 0..=pos + t.
    /// Decode is the case n_tokens = 1, pos = seq_len - 1.
    pub fn reference(
        &self,
        q: &[f32],
        pos: usize,
        k: &[f32],
        v: &[f32],
        max_ctx: usize,
    ) -> Vec<f32> {
        let (nh, hd) = (self.n_heads, self.head_dim);
        let group = nh / self.n_kv_heads;
        let n_tokens = q.len() / (nh * hd);
        let mut out = vec![0f32; q.len()];
        let mut scores = Vec::new();
        for t in 0..n_tokens {
            let n_keys = (pos + t + 1).min(max_ctx);
            for h in 0..nh {
                let qr = &q[(t * nh + h) * hd..][..hd];
                let base = (h / group) * max_ctx;
                scores.clear();
                for j in 0..n_keys {
                    let kr = &k[(base + j) * hd..][..hd];
                    let dot: f64 = qr.iter().zip(kr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    scores.push(dot * self.scale as f64);
                }
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let total: f64 = w.iter().sum();
                for d in 0..hd {
                    let acc: f64 = (0..n_keys)
                        .map(|j| w[j] * v[(base + j) * hd + d] as f64)
                        .sum();
                    out[(t * nh + h) * hd + d] = (acc / total) as f32;
                }
            }
        }
        out
    }
}

/// Prefill tiles for `head_dim`: (query rows BQ, keys BK, output vec4s per thread NV), within
/// the shader's arrays (BQ*hd and BK*hd <= PREFILL_TILE, BQ*BK <= PREFILL_SCORES) and with BQ a
/// power of two dividing the workgroup.
fn prefill_tiles(hd: usize) -> (usize, usize, usize) {
    let rows = (PREFILL_TILE / hd).min(WG_PREFILL as usize);
    let bq = 1usize << rows.ilog2();
    let bk = (PREFILL_TILE / hd).min(PREFILL_SCORES / bq).min(32);
    let tpr = WG_PREFILL as usize / bq;
    (bq, bk, (hd / 4).div_ceil(tpr))
}

/// head_dim must be a multiple of 4 (vec4 access) within the shaders' arrays.
pub(crate) fn check_head_dim(kernel: &'static str, hd: usize) -> Result<()> {
    if hd == 0 || !hd.is_multiple_of(4) || hd > MAX_HEAD_DIM {
        return Err(GpuError::shape(
            kernel,
            format!("head_dim {hd} must be a multiple of 4 in 4..={MAX_HEAD_DIM}"),
        ));
    }
    Ok(())
}

/// Variant flags for a kernel reading a cache of `dtype` (KV_F16 needs SHADER_F16).
pub(crate) fn kv_flags(
    gpu: &Gpu,
    kernel: &'static str,
    dtype: DType,
    extra: &[&'static str],
) -> Result<Flags> {
    let mut flags = gpu.flags(extra);
    if dtype == DType::F16 {
        if !gpu.caps.f16 {
            return Err(GpuError::MissingFeature {
                kernel,
                feature: "SHADER_F16",
                adapter: gpu.desc.name.clone(),
            });
        }
        flags.insert("KV_F16");
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_tiles_fit_the_shader_arrays() {
        for hd in (4..=MAX_HEAD_DIM).step_by(4) {
            let (bq, bk, nv) = prefill_tiles(hd);
            assert!(
                bq * hd <= PREFILL_TILE && bk * hd <= PREFILL_TILE,
                "hd {hd}"
            );
            assert!(bq * bk <= PREFILL_SCORES && bk >= 1 && bq >= 1, "hd {hd}");
            assert!(
                (WG_PREFILL as usize).is_multiple_of(bq) && nv <= 4,
                "hd {hd}"
            );
        }
        assert_eq!(prefill_tiles(64), (16, 16, 2));
        assert_eq!(prefill_tiles(128), (8, 8, 2));
    }

    #[test]
    fn every_shader_variant_validates() {
        let sections: [&[&'static str]; 5] = [
            &["KV_STORE"],
            &["DECODE"],
            &["DECODE", "SPLIT"],
            &["MERGE"],
            &["PREFILL"],
        ];
        for section in sections {
            for features in [
                &[][..],
                &["SUBGROUP"],
                &["F16"],
                &["F16", "KV_F16", "SUBGROUP"],
            ] {
                let flags: Flags = section.iter().chain(features).copied().collect();
                let text = crate::gpu::shader::assemble("attention", &flags).unwrap();
                let (module, _) = crate::gpu::shader::validate(&text, &flags)
                    .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
                let params = module
                    .types
                    .iter()
                    .find(|(_, t)| t.name.as_deref() == Some("Params"));
                let size = params.map(|(_, t)| t.inner.size(module.to_ctx()));
                assert_eq!(
                    size,
                    Some(std::mem::size_of::<AttnParams>() as u32),
                    "{flags:?}"
                );
            }
        }
    }

    #[test]
    fn shader_declares_step_params_like_rust() {
        // Declared once, in the helpers prepended to every shader.
        let src = crate::gpu::shader::source("common").unwrap();
        assert!(src.contains(super::super::STEP_PARAMS_WGSL));
    }
}
