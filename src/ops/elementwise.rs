//! Elementwise f32 ops: add, mul, scale, SiLU, GELU (tanh form), SiLU(a)*b, and SiLU(gate)*up
//! over interleaved (gate, up) pairs.

use crate::gpu::{BindingKind, DType, Dispatch, Gpu, GpuError, GpuTensor, PipelineKey, Result};

const WG: u32 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elementwise {
    Add,
    Mul,
    Scale(u32), // f32 bits, so the enum stays Eq
    Silu,
    Gelu,
    SiluMul,
    /// `out[i] = silu(a[2i]) * a[2i + 1]`: `a`'s last dimension holds (gate, up) pairs and
    /// `out`'s is half as long (the output of a fused gate/up projection).
    SiluMulPairs,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    scale: f32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

impl Elementwise {
    pub fn scale(s: f32) -> Self {
        Elementwise::Scale(s.to_bits())
    }

    fn entry(self) -> &'static str {
        match self {
            Elementwise::Add => "add",
            Elementwise::Mul => "mul",
            Elementwise::Scale(_) => "scale",
            Elementwise::Silu => "silu_op",
            Elementwise::Gelu => "gelu_op",
            Elementwise::SiluMul => "silu_mul",
            Elementwise::SiluMulPairs => "silu_mul_pairs",
        }
    }

    fn binary(self) -> bool {
        matches!(
            self,
            Elementwise::Add | Elementwise::Mul | Elementwise::SiluMul
        )
    }

    /// Prepare `out = op(a, b)`; `b` is ignored (may be `a`) for unary ops.
    pub fn prepare(
        self,
        gpu: &Gpu,
        a: &GpuTensor,
        b: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<Dispatch> {
        const K: &str = "elementwise";
        a.expect(K, "a", &a.shape, &[DType::F32])?;
        let mut out_shape = a.shape.clone();
        if self == Elementwise::SiluMulPairs {
            match out_shape.last_mut() {
                Some(last) if last.is_multiple_of(2) => *last /= 2,
                _ => {
                    return Err(GpuError::shape(
                        K,
                        format!("a is {:?}; pairs need an even last dimension", a.shape),
                    ))
                }
            }
        }
        out.expect(K, "out", &out_shape, &[DType::F32])?;
        let n = out.numel();
        if self.binary() {
            b.expect(K, "b", &a.shape, &[DType::F32])?;
        }
        if n > u32::MAX as usize {
            return Err(GpuError::shape(
                K,
                format!("{n} elements exceed u32 indexing"),
            ));
        }
        let key = PipelineKey {
            shader: "elementwise",
            entry: self.entry(),
            flags: Default::default(),
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let scale = match self {
            Elementwise::Scale(bits) => f32::from_bits(bits),
            _ => 1.0,
        };
        let params = gpu.uniform(
            K,
            &Params {
                n: n as u32,
                scale,
                _pad: [0; 2],
            },
        );
        gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                a.binding(),
                b.binding(),
                out.binding(),
            ],
            gpu.grid((n as u32).div_ceil(WG)),
        )
    }

    /// CPU reference.
    pub fn reference(self, a: &[f32], b: &[f32]) -> Vec<f32> {
        let silu = |x: f32| x / (1.0 + (-x).exp());
        match self {
            Elementwise::Add => a.iter().zip(b).map(|(x, y)| x + y).collect(),
            Elementwise::Mul => a.iter().zip(b).map(|(x, y)| x * y).collect(),
            Elementwise::Scale(bits) => a.iter().map(|x| x * f32::from_bits(bits)).collect(),
            Elementwise::Silu => a.iter().map(|&x| silu(x)).collect(),
            Elementwise::Gelu => a.iter().map(|&x| gelu_ref(x)).collect(),
            Elementwise::SiluMul => a.iter().zip(b).map(|(&x, y)| silu(x) * y).collect(),
            Elementwise::SiluMulPairs => a.chunks(2).map(|p| silu(p[0]) * p[1]).collect(),
        }
    }
}

/// GELU, tanh approximation, in f64 for a reference.
pub fn gelu_ref(x: f32) -> f32 {
    let x = x as f64;
    let c = (2.0 / std::f64::consts::PI).sqrt();
    (0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())) as f32
}
