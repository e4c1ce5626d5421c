//! Standalone dequantization: a Q8_0 / Q4_0 / Q4_1 / F16 tensor (GGUF byte layout) to f32 or
//! f16. The matvec dequantizes in registers instead; this is for weights other kernels want
//! expanded (embedding rows, tests, conversions).

use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const K: &str = "dequant";
const WG: u32 = 64;

/// Source formats the kernel decodes.
pub const DEQUANT_SOURCES: &[DType] = &[DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::F16];

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    units: u32,
    n: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

pub struct Dequant;

impl Dequant {
    /// Prepare `out = dequantize(src)`; `out` has `src`'s shape and is F32 or F16.
    pub fn prepare(gpu: &Gpu, src: &GpuTensor, out: &GpuTensor) -> Result<Dispatch> {
        let n = src.numel();
        let flag = match src.dtype {
            DType::Q8_0 => "Q8_0",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::F16 => "F16W",
            other => {
                return Err(GpuError::shape(
                    K,
                    format!(
                        "src is {}, expected one of {DEQUANT_SOURCES:?}",
                        other.name()
                    ),
                ))
            }
        };
        out.expect(K, "out", &src.shape, &[DType::F32, DType::F16])?;
        if src.dtype.bytes_for(n).is_none() {
            return Err(GpuError::shape(
                K,
                format!(
                    "src has {n} elements, not whole {} blocks",
                    src.dtype.name()
                ),
            ));
        }
        if n as u64 * 4 > u32::MAX as u64 {
            return Err(GpuError::TooLarge {
                kernel: K,
                bytes: n as u64 * 4,
                limit_name: "u32 element indices",
                limit: u32::MAX as u64,
            });
        }
        let units = if src.dtype == DType::F16 {
            n.div_ceil(2)
        } else {
            n / 32
        } as u32;
        let mut extra = vec![flag];
        if out.dtype == DType::F16 {
            extra.push("OUT_F16");
        }
        let key = PipelineKey {
            shader: "dequant",
            entry: "dequant",
            flags: gpu.flags(&extra),
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(
            K,
            &Params {
                units,
                n: n as u32,
                _pad: [0; 2],
            },
        );
        gpu.dispatch(
            &kernel,
            &[params.as_entire_binding(), src.binding(), out.binding()],
            gpu.grid(units.div_ceil(WG)),
        )
    }

    /// CPU reference: the values `src`'s bytes decode to.
    pub fn reference(dtype: DType, bytes: &[u8]) -> Vec<f32> {
        crate::quant::dequantize(dtype, bytes)
    }
}
