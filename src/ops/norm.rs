//! RMSNorm over the last dimension, optionally fused with the residual add that precedes it in
//! every transformer layer (`residual += x; out = norm(residual) * weight`).

use super::row_wg;
use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const K: &str = "rms_norm";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

const BINDINGS_RESIDUAL: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
    BindingKind::ReadWrite,
];

/// RMSNorm with epsilon `eps`: `out = h / sqrt(mean(h^2) + eps) * weight` per row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNorm {
    pub eps: f32,
}

impl RmsNorm {
    pub fn new(eps: f32) -> Self {
        RmsNorm { eps }
    }

    /// Prepare `out = norm(x) * weight`; `x` and `out` are f32 `[.., dim]`, `weight` f32 `[dim]`.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        weight: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<Dispatch> {
        let (rows, dim) = self.check(x, weight, out)?;
        let (kernel, params) = self.kernel(gpu, false, rows, dim)?;
        gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                x.binding(),
                weight.binding(),
                out.binding(),
            ],
            gpu.grid(rows as u32),
        )
    }

    /// Prepare the fused form: `residual += x; out = norm(residual) * weight`. `residual` must be
    /// a different buffer from `x` and `out`.
    pub fn prepare_residual(
        &self,
        gpu: &Gpu,
        x: &GpuTensor,
        residual: &GpuTensor,
        weight: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<Dispatch> {
        let (rows, dim) = self.check(x, weight, out)?;
        residual.expect(K, "residual", &x.shape, &[DType::F32])?;
        let (kernel, params) = self.kernel(gpu, true, rows, dim)?;
        gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                x.binding(),
                weight.binding(),
                out.binding(),
                residual.binding(),
            ],
            gpu.grid(rows as u32),
        )
    }

    fn check(&self, x: &GpuTensor, weight: &GpuTensor, out: &GpuTensor) -> Result<(usize, usize)> {
        let dim = *x
            .shape
            .last()
            .ok_or_else(|| GpuError::shape(K, "x is a scalar, expected [.., dim]"))?;
        if dim == 0 {
            return Err(GpuError::shape(
                K,
                format!("x has shape {:?}: empty rows", x.shape),
            ));
        }
        if !self.eps.is_finite() || self.eps < 0.0 {
            return Err(GpuError::shape(
                K,
                format!("eps = {} must be finite and >= 0", self.eps),
            ));
        }
        x.expect(K, "x", &x.shape, &[DType::F32])?;
        weight.expect(K, "weight", &[dim], &[DType::F32])?;
        out.expect(K, "out", &x.shape, &[DType::F32])?;
        let rows = x.numel() / dim;
        if x.numel() > u32::MAX as usize {
            return Err(GpuError::shape(
                K,
                format!("{} elements exceed u32 indexing", x.numel()),
            ));
        }
        Ok((rows, dim))
    }

    fn kernel(
        &self,
        gpu: &Gpu,
        residual: bool,
        rows: usize,
        dim: usize,
    ) -> Result<(crate::gpu::Kernel, wgpu::Buffer)> {
        let key = PipelineKey {
            shader: "norm",
            entry: "rms_norm",
            flags: gpu.flags(if residual { &["RESIDUAL"] } else { &[] }),
            overrides: vec![("WG", row_wg(gpu) as i64)],
        };
        let bindings = if residual {
            BINDINGS_RESIDUAL
        } else {
            BINDINGS
        };
        let kernel = gpu.kernel(K, &key, bindings)?;
        let params = Params {
            rows: rows as u32,
            dim: dim as u32,
            eps: self.eps,
            _pad: 0,
        };
        Ok((kernel, gpu.uniform(K, &params)))
    }

    /// CPU reference (f64 accumulation) over rows of length `weight.len()`.
    pub fn reference(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let dim = weight.len();
        x.chunks(dim)
            .flat_map(|row| {
                let ss: f64 = row.iter().map(|&v| v as f64 * v as f64).sum();
                let inv = 1.0 / (ss / dim as f64 + self.eps as f64).sqrt();
                row.iter()
                    .zip(weight)
                    .map(move |(&v, &w)| (v as f64 * inv * w as f64) as f32)
            })
            .collect()
    }

    /// CPU reference of the fused form: updates `residual` and returns the normed rows.
    pub fn reference_residual(&self, x: &[f32], residual: &mut [f32], weight: &[f32]) -> Vec<f32> {
        for (r, v) in residual.iter_mut().zip(x) {
            *r += v;
        }
        self.reference(residual, weight)
    }
}
