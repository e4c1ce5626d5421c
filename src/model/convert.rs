//! Tensor data conversions at load: BF16 to F16/F32 (no BF16 kernels), and f32 copies for small
//! tensors and CPU references.

use std::borrow::Cow;

use half::{bf16, f16};

use super::error::{LoadError, Result};
use super::gguf::TensorView;
use super::tensor_type::GgmlType;
use crate::gpu::DType;

/// What BF16 tensors become on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16As {
    /// Exact; twice the bytes of F16.
    F32,
    /// Half the bytes; fails if a value is outside f16's finite range.
    F16,
}

/// Little-endian BF16 values to f32 (exact). A trailing odd byte is ignored.
pub fn bf16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

/// Little-endian BF16 values to little-endian F16 bytes, rounding to nearest. Returns the index
/// of the first value that is finite in BF16 but would overflow F16.
pub fn bf16_to_f16_bytes(bytes: &[u8]) -> std::result::Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(bytes.len() & !1);
    for (i, c) in bytes.chunks_exact(2).enumerate() {
        let x = bf16::from_le_bytes([c[0], c[1]]).to_f32();
        let h = f16::from_f32(x);
        if x.is_finite() && !h.is_finite() {
            return Err(i);
        }
        out.extend_from_slice(&h.to_le_bytes());
    }
    Ok(out)
}

/// Little-endian F16 values to f32. A trailing odd byte is ignored.
pub fn f16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl<'a> TensorView<'a> {
    fn unsupported(&self, to: &'static str, expected: &str) -> LoadError {
        LoadError::WrongTensorType {
            file: self.file.into(),
            tensor: self.info.name.clone(),
            expected: format!("{expected} (to make {to})"),
            got: self.info.ty.name(),
        }
    }

    /// The values as f32: plain types converted, q8_0 / q4_0 / q4_1 dequantized.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let d = self.data;
        Ok(match self.info.ty {
            GgmlType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            GgmlType::F16 => f16_to_f32(d),
            GgmlType::BF16 => bf16_to_f32(d),
            GgmlType::Q8_0 => crate::quant::dequantize(DType::Q8_0, d),
            GgmlType::Q4_0 => crate::quant::dequantize(DType::Q4_0, d),
            GgmlType::Q4_1 => crate::quant::dequantize(DType::Q4_1, d),
            _ => return Err(self.unsupported("f32", "f32, f16, bf16, q8_0, q4_0 or q4_1")),
        })
    }

    /// The dtype and bytes to upload: borrowed when the GPU layout equals the file's, converted
    /// for BF16 (per `bf16`). Types without a GPU kernel give `WrongTensorType`.
    pub fn gpu_data(&self, bf16: Bf16As) -> Result<(DType, Cow<'a, [u8]>)> {
        if let Some(dtype) = self.info.ty.dtype() {
            return Ok((dtype, Cow::Borrowed(self.data)));
        }
        match (self.info.ty, bf16) {
            (GgmlType::BF16, Bf16As::F32) => Ok((
                DType::F32,
                Cow::Owned(f32s_to_bytes(&bf16_to_f32(self.data))),
            )),
            (GgmlType::BF16, Bf16As::F16) => match bf16_to_f16_bytes(self.data) {
                Ok(b) => Ok((DType::F16, Cow::Owned(b))),
                Err(i) => Err(LoadError::Conversion {
                    file: self.file.into(),
                    tensor: self.info.name.clone(),
                    to: "f16",
                    detail: format!(
                        "element {i} = {} is outside the f16 range; load it as f32",
                        bf16_to_f32(&self.data[2 * i..2 * i + 2])[0]
                    ),
                }),
            },
            _ => Err(self.unsupported("a GPU tensor", "f32, f16, bf16, q8_0, q4_0 or q4_1")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_conversions() {
        let vals = [1.0f32, -2.5, 0.0, 3.140625, 1e-3];
        let bytes: Vec<u8> = vals
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let f = bf16_to_f32(&bytes);
        for (a, b) in vals.iter().zip(&f) {
            assert!((a - b).abs() <= a.abs() / 128.0, "{a} vs {b}");
        }
        let h = bf16_to_f16_bytes(&bytes).unwrap();
        assert_eq!(f16_to_f32(&h)[..4], f[..4]);
        let big = bf16::from_f32(1e6).to_le_bytes();
        assert_eq!(bf16_to_f16_bytes(&[0, 0, big[0], big[1]]), Err(1));
    }
}
