//! Embedding gather: token ids -> f32 rows of a (possibly quantized, possibly chunked) table.

use crate::gpu::shader::Flags;
use crate::gpu::{
    BindingKind, ChunkedTensor, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result,
};

const K: &str = "embed";
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_tokens: u32,
    dim: u32,
    row_start: u32,
    rows: u32,
    row_bytes: u32,
    last: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// Gathers embedding rows: `out[t] = table[ids[t]]`, dequantized to f32. Ids past the
/// vocabulary give zero rows.
pub struct Embedding;

impl Embedding {
    fn flag(dtype: DType) -> Option<&'static str> {
        match dtype {
            DType::F32 => Some("FMT_F32"),
            DType::F16 => Some("FMT_F16"),
            DType::Q8_0 => Some("FMT_Q8_0"),
            DType::Q4_0 => Some("FMT_Q4_0"),
            DType::Q4_1 => Some("FMT_Q4_1"),
            DType::U32 => None,
        }
    }

    /// Prepare the gather: `ids` u32 `[n_tokens]`, `table` `[vocab, dim]`, `out` f32
    /// `[n_tokens, dim]`. One dispatch per table chunk; record them all, in order.
    pub fn prepare(
        gpu: &Gpu,
        ids: &GpuTensor,
        table: &ChunkedTensor,
        out: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        let [vocab, dim] = table.shape;
        let n_tokens = ids.shape.first().copied().unwrap_or(0);
        ids.expect(K, "ids", &[n_tokens], &[DType::U32])?;
        out.expect(K, "out", &[n_tokens, dim], &[DType::F32])?;
        let flag = Self::flag(table.dtype).ok_or_else(|| {
            GpuError::shape(K, "table is u32, expected f32, f16, q8_0, q4_0 or q4_1")
        })?;
        let row_bytes = table.dtype.bytes_for(dim).ok_or_else(|| {
            GpuError::shape(
                K,
                format!(
                    "table dim {dim} is not a whole number of {} blocks",
                    table.dtype.name()
                ),
            )
        })?;
        if n_tokens * dim > u32::MAX as usize || vocab > u32::MAX as usize {
            return Err(GpuError::shape(
                K,
                format!("[{n_tokens}, {dim}] or vocab {vocab} exceeds u32 indexing"),
            ));
        }
        let mut flags = Flags::from([flag]);
        if table.grouped() {
            flags.insert("GROUPED");
        }
        let key = PipelineKey {
            shader: "embed",
            entry: "embed",
            flags,
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let n_chunks = table.chunks.len();
        let mut dispatches = Vec::with_capacity(n_chunks);
        for (c, (start, rows, chunk)) in table.parts().enumerate() {
            let stored = rows.div_ceil(table.group) * table.group;
            chunk.expect(K, "table chunk", &[stored, dim], &[table.dtype])?;
            let params = Params {
                n_tokens: n_tokens as u32,
                dim: dim as u32,
                row_start: start as u32,
                rows: rows as u32,
                row_bytes: row_bytes as u32,
                last: (c + 1 == n_chunks) as u32,
                _pad: [0; 2],
            };
            let params = gpu.uniform(K, &params);
            dispatches.push(gpu.dispatch(
                &kernel,
                &[
                    params.as_entire_binding(),
                    ids.binding(),
                    chunk.binding(),
                    out.binding(),
                ],
                gpu.grid(n_tokens as u32),
            )?);
        }
        Ok(dispatches)
    }

    /// CPU reference: `table` holds `[vocab, dim]` in `dtype`'s bytes.
    pub fn reference(ids: &[u32], table: &[u8], dtype: DType, dim: usize) -> Vec<f32> {
        let row_bytes = dtype.bytes_for(dim).expect("whole blocks");
        let vocab = table.len() / row_bytes;
        ids.iter()
            .flat_map(|&id| {
                let id = id as usize;
                if id < vocab {
                    crate::quant::dequantize(dtype, &table[id * row_bytes..(id + 1) * row_bytes])
                } else {
                    vec![0.0; dim]
                }
            })
            .collect()
    }
}
