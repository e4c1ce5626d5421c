//! The Rust side of each kernel family: shape checks, variant choice, dispatch, CPU reference.
//!
//! Each op validates its tensors, picks its pipeline (variant flags from the device's caps,
//! sizes as override constants) and returns `Dispatch`es that can be recorded into any pass.
//! Ops whose work depends on the decode position read it from a shared `StepParams` uniform,
//! which the caller rewrites with `queue.write_buffer` each step; bind groups never change.

pub mod attention;
pub mod bandwidth;
pub mod dequant;
pub mod elementwise;
pub mod embed;
pub mod kv_cache;
pub mod matmul;
pub mod matvec;
pub mod norm;
pub mod rope;
pub mod rope_kv;
pub mod softmax;
pub mod topk;

pub use attention::{Attention, Split};
pub use bandwidth::measure_read_bandwidth;
pub use dequant::Dequant;
pub use elementwise::Elementwise;
pub use embed::Embedding;
pub use kv_cache::{KvCache, KvLayer};
pub use matmul::{MatMul, MatMulTune};
pub use matvec::{MatVecTune, QMatVec};
pub use norm::RmsNorm;
pub use rope::{Rope, RopeConfig, RopeStyle};
pub use rope_kv::QkvLayout;
pub use softmax::Softmax;
pub use topk::{Argmax, TopK};

/// Per-step values shared by every kernel of a forward pass (binding it is the op's choice).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    /// Position of the first token of this batch in the sequence.
    pub pos: u32,
    /// Tokens in this batch (1 in decode).
    pub n_tokens: u32,
    /// Tokens in the KV cache once this batch is written: pos + n_tokens.
    pub seq_len: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<StepParams>() == 16);

/// WGSL declaration matching `StepParams` (in shaders/common.wgsl, prepended to every shader).
pub const STEP_PARAMS_WGSL: &str =
    "struct StepParams { pos: u32, n_tokens: u32, seq_len: u32, _pad: u32 }";

impl StepParams {
    pub fn new(pos: usize, n_tokens: usize) -> Self {
        StepParams {
            pos: pos as u32,
            n_tokens: n_tokens as u32,
            seq_len: (pos + n_tokens) as u32,
            _pad: 0,
        }
    }
}

/// Workgroup size of the row-reduction kernels (norm, softmax, argmax, top-k): the largest power
/// of two <= 256 the device allows. Their non-subgroup tree reduction needs a power of two.
pub(crate) fn reduce_wg(gpu: &crate::gpu::Gpu) -> u32 {
    let l = &gpu.caps.limits;
    let max = l
        .max_compute_invocations_per_workgroup
        .min(l.max_compute_workgroup_size_x);
    let max = max.clamp(1, 256);
    1 << (31 - max.leading_zeros())
}

/// Workgroup size of a one-row reduction (RMSNorm, argmax): `reduce_wg` on GPUs; on CPU
/// adapters 32, since there every barrier switches through all of a workgroup's SIMD batches
/// (lavapipe, prefill RMSNorm of 64x576: 581 µs a dispatch with 256, 174 with 32; argmax of
/// 49152 logits: 131 µs, 87 with 32).
pub(crate) fn row_wg(gpu: &crate::gpu::Gpu) -> u32 {
    if gpu.desc.software {
        reduce_wg(gpu).min(32)
    } else {
        reduce_wg(gpu)
    }
}

/// The `StepParams` at the start of a step uniform buffer, as a binding.
pub(crate) fn step_binding(step: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: step,
        offset: 0,
        size: wgpu::BufferSize::new(std::mem::size_of::<StepParams>() as u64),
    })
}
