//! Block quantization formats in GGUF's byte layout, with CPU (de)quantization and dot
//! products used as the reference for the GPU kernels.

use half::f16;

use crate::gpu::DType;

/// One block format. Blocks are `BYTES` bytes holding `BLOCK` values, exactly as GGUF stores
/// them (little-endian f16 scales first, then the quants).
pub trait BlockFormat {
    const DTYPE: DType;
    const BLOCK: usize = 32;
    const BYTES: usize;
    /// Decode one block into `out` (`BLOCK` values).
    fn dequant_block(block: &[u8], out: &mut [f32]);
    /// Encode `BLOCK` values into one block.
    fn quant_block(x: &[f32], out: &mut [u8]);
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn put_f16(out: &mut [u8], i: usize, v: f32) {
    out[i..i + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// 32 × int8 + f16 scale: x = d * q.
pub struct Q8_0;
const _: () = assert!(Q8_0::BYTES == 2 + 32);

impl BlockFormat for Q8_0 {
    const DTYPE: DType = DType::Q8_0;
    const BYTES: usize = 34;
    fn dequant_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, &q) in out.iter_mut().zip(&b[2..34]) {
            *o = d * (q as i8) as f32;
        }
    }
    fn quant_block(x: &[f32], out: &mut [u8]) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        for (o, v) in out[2..34].iter_mut().zip(x) {
            *o = ((v * id).round() as i8) as u8;
        }
    }
}

/// 32 × 4-bit + f16 scale: x = d * (q - 8); byte j holds element j (low nibble) and j+16 (high).
pub struct Q4_0;
const _: () = assert!(Q4_0::BYTES == 2 + 16);

impl BlockFormat for Q4_0 {
    const DTYPE: DType = DType::Q4_0;
    const BYTES: usize = 18;
    fn dequant_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for j in 0..16 {
            let q = b[2 + j];
            out[j] = d * ((q & 0xf) as i32 - 8) as f32;
            out[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
        }
    }
    fn quant_block(x: &[f32], out: &mut [u8]) {
        // The value of largest magnitude maps to -8, as GGUF's reference quantizer does.
        let max = x
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        for j in 0..16 {
            let lo = ((x[j] * id + 8.5) as i32).clamp(0, 15) as u8;
            let hi = ((x[j + 16] * id + 8.5) as i32).clamp(0, 15) as u8;
            out[2 + j] = lo | (hi << 4);
        }
    }
}

/// 32 × 4-bit + f16 scale + f16 min: x = d * q + m.
pub struct Q4_1;
const _: () = assert!(Q4_1::BYTES == 4 + 16);

impl BlockFormat for Q4_1 {
    const DTYPE: DType = DType::Q4_1;
    const BYTES: usize = 20;
    fn dequant_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        for j in 0..16 {
            let q = b[4 + j];
            out[j] = d * (q & 0xf) as f32 + m;
            out[j + 16] = d * (q >> 4) as f32 + m;
        }
    }
    fn quant_block(x: &[f32], out: &mut [u8]) {
        let min = x.iter().copied().fold(f32::INFINITY, f32::min);
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        put_f16(out, 2, min);
        for j in 0..16 {
            let lo = (((x[j] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            let hi = (((x[j + 16] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            out[4 + j] = lo | (hi << 4);
        }
    }
}

/// Quantize `x` (length a multiple of 32) to `dtype`'s bytes. f32/f16 give their plain bytes.
pub fn quantize(dtype: DType, x: &[f32]) -> Vec<u8> {
    fn blocks<F: BlockFormat>(x: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; x.len() / F::BLOCK * F::BYTES];
        for (xb, ob) in x.chunks(F::BLOCK).zip(out.chunks_mut(F::BYTES)) {
            F::quant_block(xb, ob);
        }
        out
    }
    assert_eq!(
        x.len() % dtype.block_elems(),
        0,
        "length must be whole blocks"
    );
    match dtype {
        DType::F32 => bytemuck::cast_slice(x).to_vec(),
        DType::F16 => x
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        DType::U32 => panic!("u32 is not a weight format"),
        DType::Q8_0 => blocks::<Q8_0>(x),
        DType::Q4_0 => blocks::<Q4_0>(x),
        DType::Q4_1 => blocks::<Q4_1>(x),
    }
}

/// Decode `bytes` of `dtype` to f32 (the CPU reference for every dequantizing kernel).
pub fn dequantize(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    fn blocks<F: BlockFormat>(bytes: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; bytes.len() / F::BYTES * F::BLOCK];
        for (b, o) in bytes.chunks(F::BYTES).zip(out.chunks_mut(F::BLOCK)) {
            F::dequant_block(b, o);
        }
        out
    }
    match dtype {
        DType::F32 | DType::U32 => bytemuck::pod_collect_to_vec::<u8, f32>(bytes),
        DType::F16 => bytes.chunks(2).map(|c| f16_at(c, 0)).collect(),
        DType::Q8_0 => blocks::<Q8_0>(bytes),
        DType::Q4_0 => blocks::<Q4_0>(bytes),
        DType::Q4_1 => blocks::<Q4_1>(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(dtype: DType, tol: f32) {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let y = dequantize(dtype, &quantize(dtype, &x));
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= tol, "{dtype:?}: {a} vs {b}");
        }
    }

    #[test]
    fn roundtrips_within_half_a_step() {
        // Steps: q8_0 amax/127, q4_0 amax/8, q4_1 range/15 (amax 2.94, range 5.88), plus f16
        // rounding of the scale. q4_0 spans -8..7 steps, so a value of the sign opposite to the
        // largest one can be a whole step off at the clamp.
        roundtrip(DType::Q8_0, 2.95 / 127.0 * 0.5 + 1e-2);
        roundtrip(DType::Q4_0, 2.95 / 8.0 + 2e-2);
        roundtrip(DType::Q4_1, 5.9 / 15.0 * 0.5 + 2e-2);
        roundtrip(DType::F16, 2e-3);
    }

    #[test]
    fn known_bytes_decode() {
        // q4_1: d = 0.5, m = -1.0, first byte 0x21 -> elements 0 and 16 are 1 and 2 steps.
        let mut b = vec![0u8; 20];
        b[0..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        b[4] = 0x21;
        let y = dequantize(DType::Q4_1, &b);
        assert_eq!((y[0], y[16], y[1]), (-0.5, 0.0, -1.0));
        // q4_0: d = 2, byte 0x9f -> element 0 is (15 - 8) * 2, element 16 is (9 - 8) * 2.
        let mut b = vec![0u8; 18];
        b[0..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        b[2] = 0x9f;
        let y = dequantize(DType::Q4_0, &b);
        assert_eq!((y[0], y[16], y[1]), (14.0, 2.0, -16.0));
        // q8_0: d = 0.25, q = -4 -> -1.
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        b[2] = (-4i8) as u8;
        assert_eq!(dequantize(DType::Q8_0, &b)[0], -1.0);
    }
}
