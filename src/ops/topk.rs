//! Argmax and top-k over the logits vector, on the GPU so only a few numbers come back.
//!
//! Order: values descending (IEEE totalOrder, -0 == +0, so -inf ranks last among numbers),
//! ties broken by the lowest index. Both run a per-workgroup partial pass and then merge passes;
//! the dispatches share one pass (wgpu orders them and makes each one's writes visible).

use super::{reduce_wg, row_wg};
use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

/// Logits per invocation in the top-k partial pass (`ITEMS` in topk.wgsl).
const ITEMS: usize = 8;
/// Logits per invocation in the argmax partial pass (`ARGMAX_ITEMS` in topk.wgsl).
const ARGMAX_ITEMS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    k: u32,
    lists: u32,
    last: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// Order-preserving u32 key of an f32 (the shader's `key_of`).
fn key_of(v: f32) -> u32 {
    let b = if v == 0.0 { 0 } else { v.to_bits() };
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Indices of `x` in rank order (the CPU reference of both ops).
fn ranked(x: &[f32]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..x.len() as u32).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(key_of(x[i as usize])), i));
    idx
}

fn check_logits(kernel: &'static str, logits: &GpuTensor) -> Result<usize> {
    let n = logits.numel();
    logits.expect(kernel, "logits", &logits.shape, &[DType::F32])?;
    if n == 0 || n >= u32::MAX as usize {
        return Err(GpuError::shape(
            kernel,
            format!("logits have {n} entries, expected 1 to 2^32 - 2"),
        ));
    }
    Ok(n)
}

/// A kernel of topk.wgsl for `entry`, dispatched over `groups` workgroups.
struct Pass<'a> {
    entry: &'static str,
    params: Params,
    src: &'a GpuTensor,
    dst: &'a GpuTensor,
    groups: u32,
}

fn dispatch(gpu: &Gpu, kernel: &'static str, pass: Pass<'_>) -> Result<Dispatch> {
    dispatch_wg(gpu, kernel, pass, reduce_wg(gpu))
}

fn dispatch_wg(gpu: &Gpu, kernel: &'static str, pass: Pass<'_>, wg: u32) -> Result<Dispatch> {
    let key = PipelineKey {
        shader: "topk",
        entry: pass.entry,
        flags: gpu.flags(&[]),
        overrides: vec![("WG", wg as i64)],
    };
    let k = gpu.kernel(kernel, &key, BINDINGS)?;
    let params = gpu.uniform(kernel, &pass.params);
    gpu.dispatch(
        &k,
        &[
            params.as_entire_binding(),
            pass.src.binding(),
            pass.dst.binding(),
        ],
        gpu.grid(pass.groups),
    )
}

/// Index of the largest logit, written as u32 into a `[1]` tensor.
pub struct Argmax;

impl Argmax {
    /// Prepare `out[0] = argmax(logits)`; `logits` is f32 of any shape, read as one vector.
    pub fn prepare(gpu: &Gpu, logits: &GpuTensor, out: &GpuTensor) -> Result<Vec<Dispatch>> {
        const K: &str = "argmax";
        let n = check_logits(K, logits)?;
        out.expect(K, "out", &[1], &[DType::U32])?;
        let wg = row_wg(gpu);
        let groups = n.div_ceil(wg as usize * ARGMAX_ITEMS);
        let partial = gpu.zeros("argmax_partial", &[groups, 2], DType::U32)?;
        let params = Params {
            n: n as u32,
            k: 1,
            lists: groups as u32,
            last: 0,
        };
        let first = Pass {
            entry: "argmax_partial",
            params,
            src: logits,
            dst: &partial,
            groups: groups as u32,
        };
        let last = Pass {
            entry: "argmax_final",
            params,
            src: &partial,
            dst: out,
            groups: 1,
        };
        Ok(vec![
            dispatch_wg(gpu, K, first, wg)?,
            dispatch_wg(gpu, K, last, wg)?,
        ])
    }

    /// CPU reference.
    pub fn reference(x: &[f32]) -> u32 {
        ranked(x)[0]
    }
}

/// The `k` largest logits with their indices, best first, as `(f32 bits, index)` u32 pairs in
/// a `[k, 2]` tensor (see `TopK::unpack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopK {
    pub k: usize,
}

impl Default for TopK {
    fn default() -> Self {
        TopK { k: Self::DEFAULT_K }
    }
}

impl TopK {
    pub const DEFAULT_K: usize = 40;
    pub const MAX_K: usize = 64;

    /// Lists kept by the per-thread path (`topk_local`): 64 threads, 8 a workgroup.
    const LOCAL_LISTS: usize = 64;
    const LOCAL_WG: u32 = 8;

    /// Prepare the top-k of f32 `logits` (any shape, read as one vector) into U32 `out [k, 2]`:
    /// on CPU adapters by per-thread lists (`prepare_local`), elsewhere by workgroup rounds.
    pub fn prepare(&self, gpu: &Gpu, logits: &GpuTensor, out: &GpuTensor) -> Result<Vec<Dispatch>> {
        if gpu.desc.software {
            self.prepare_local(gpu, logits, out)
        } else {
            self.prepare_rounds(gpu, logits, out)
        }
    }

    fn check(&self, logits: &GpuTensor, out: &GpuTensor) -> Result<usize> {
        const K: &str = "topk";
        let n = check_logits(K, logits)?;
        let k = self.k;
        if k == 0 || k > Self::MAX_K || k > n {
            return Err(GpuError::shape(
                K,
                format!(
                    "k = {k} must be 1 to {} and at most the {n} logits",
                    Self::MAX_K
                ),
            ));
        }
        out.expect(K, "out", &[k, 2], &[DType::U32])?;
        Ok(n)
    }

    /// Top-k by 64 threads that each keep a sorted list of a strided share (no barriers; on
    /// lavapipe, top-40 of 49152 logits ran in a fraction of the round-based path's time),
    /// then one thread merging the 64 lists.
    pub fn prepare_local(
        &self,
        gpu: &Gpu,
        logits: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        const K: &str = "topk";
        let n = self.check(logits, out)?;
        let k = self.k;
        let lists = Self::LOCAL_LISTS.min(n);
        let tmp = gpu.zeros("topk_lists", &[lists * k, 2], DType::U32)?;
        let params = |last: bool| Params {
            n: n as u32,
            k: k as u32,
            lists: lists as u32,
            last: last as u32,
        };
        let local = Pass {
            entry: "topk_local",
            params: params(false),
            src: logits,
            dst: &tmp,
            groups: (lists as u32).div_ceil(Self::LOCAL_WG),
        };
        let merge = Pass {
            entry: "topk_local_merge",
            params: params(true),
            src: &tmp,
            dst: out,
            groups: 1,
        };
        Ok(vec![
            dispatch_wg(gpu, K, local, Self::LOCAL_WG)?,
            dispatch_wg(gpu, K, merge, 1)?,
        ])
    }

    /// Top-k by workgroup rounds: per chunk, k rounds of a workgroup-wide best pick, then
    /// merge passes of up to a workgroup's worth of lists each.
    pub fn prepare_rounds(
        &self,
        gpu: &Gpu,
        logits: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        const K: &str = "topk";
        let n = self.check(logits, out)?;
        let k = self.k;
        let wg = reduce_wg(gpu) as usize;
        let params = |lists: usize, last: bool| Params {
            n: n as u32,
            k: k as u32,
            lists: lists as u32,
            last: last as u32,
        };
        // Partial pass: one sorted list of k per chunk of wg * ITEMS logits.
        let mut lists = n.div_ceil(wg * ITEMS);
        let mut src = if lists == 1 {
            out.clone()
        } else {
            gpu.zeros("topk_lists", &[lists * k, 2], DType::U32)?
        };
        let mut dispatches = vec![dispatch(
            gpu,
            K,
            Pass {
                entry: "topk_partial",
                params: params(lists, lists == 1),
                src: logits,
                dst: &src,
                groups: lists as u32,
            },
        )?];
        // Merge passes: each workgroup merges up to wg lists into one.
        while lists > 1 {
            let groups = lists.div_ceil(wg);
            let dst = if groups == 1 {
                out.clone()
            } else {
                gpu.zeros("topk_lists", &[groups * k, 2], DType::U32)?
            };
            dispatches.push(dispatch(
                gpu,
                K,
                Pass {
                    entry: "topk_merge",
                    params: params(lists, groups == 1),
                    src: &src,
                    dst: &dst,
                    groups: groups as u32,
                },
            )?);
            lists = groups;
            src = dst;
        }
        Ok(dispatches)
    }

    /// Decode the `[k, 2]` output words into (value, index) pairs.
    pub fn unpack(words: &[u32]) -> Vec<(f32, u32)> {
        words
            .chunks_exact(2)
            .map(|w| (f32::from_bits(w[0]), w[1]))
            .collect()
    }

    /// CPU reference: (value, index) pairs, best first (-0 reported as +0, as the GPU does).
    pub fn reference(&self, x: &[f32]) -> Vec<(f32, u32)> {
        ranked(x)
            .into_iter()
            .take(self.k)
            .map(|i| {
                let v = x[i as usize];
                (if v == 0.0 { 0.0 } else { v }, i)
            })
            .collect()
    }
}
