//! Numerically stable softmax over the last dimension, with an optional scale (1 / temperature).

use super::reduce_wg;
use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const K: &str = "softmax";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    n: u32,
    scale: f32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// `out = softmax(scale * x)` per row. A row that is entirely -inf gives zeros.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// Multiplies the inputs first: 1 / temperature. Must be finite and > 0.
    pub scale: f32,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax { scale: 1.0 }
    }
}

impl Softmax {
    /// Softmax of `x / temperature`.
    pub fn with_temperature(temperature: f32) -> Self {
        Softmax {
            scale: 1.0 / temperature,
        }
    }

    /// Prepare `out = softmax(scale * x)` over the last dimension of f32 `x`; `out` like `x`.
    pub fn prepare(&self, gpu: &Gpu, x: &GpuTensor, out: &GpuTensor) -> Result<Dispatch> {
        let n = *x
            .shape
            .last()
            .ok_or_else(|| GpuError::shape(K, "x is a scalar, expected [.., n]"))?;
        if n == 0 {
            return Err(GpuError::shape(
                K,
                format!("x has shape {:?}: empty rows", x.shape),
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(GpuError::shape(
                K,
                format!("scale = {} must be finite and > 0", self.scale),
            ));
        }
        x.expect(K, "x", &x.shape, &[DType::F32])?;
        out.expect(K, "out", &x.shape, &[DType::F32])?;
        if x.numel() > u32::MAX as usize {
            return Err(GpuError::shape(
                K,
                format!("{} elements exceed u32 indexing", x.numel()),
            ));
        }
        let rows = x.numel() / n;
        let key = PipelineKey {
            shader: "softmax",
            entry: "softmax",
            flags: gpu.flags(&[]),
            overrides: vec![("WG", reduce_wg(gpu) as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(
            K,
            &Params {
                rows: rows as u32,
                n: n as u32,
                scale: self.scale,
                _pad: 0,
            },
        );
        gpu.dispatch(
            &kernel,
            &[params.as_entire_binding(), x.binding(), out.binding()],
            gpu.grid(rows as u32),
        )
    }

    /// CPU reference (f64) over rows of length `n`.
    pub fn reference(&self, x: &[f32], n: usize) -> Vec<f32> {
        let s = self.scale as f64;
        x.chunks(n)
            .flat_map(|row| {
                let m = row
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 * s));
                let e: Vec<f64> = if m == f64::NEG_INFINITY {
                    vec![0.0; row.len()]
                } else {
                    row.iter().map(|&v| (v as f64 * s - m).exp()).collect()
                };
                let sum: f64 = e.iter().sum();
                let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                e.into_iter().map(move |v| (v * inv) as f32)
            })
            .collect()
    }
}
