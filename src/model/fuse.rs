//! Weights fused at load so decode reads them in fewer, larger dispatches: q, k and v stacked
//! into one `[q; k; v]` matrix, and gate and up interleaved row by row into (gate, up) pairs.
//! Quantized blocks are copied as they are; only a file whose parts differ in type (rare)
//! has them widened to f32 so they can share one matrix.

use std::borrow::Cow;

use crate::gpu::{ChunkedTensor, DType, Gpu};

use super::gguf::GgufFile;
use super::llama::{ModelError, Result, MATRIX_TYPES};
use super::tensor_type::GgmlType;

/// The bytes and type of each named tensor as stored (borrowed from the file), or all of them
/// as f32 when the types differ or one is a type the kernels do not read (BF16).
fn common_bytes<'a>(file: &'a GgufFile, names: &[String]) -> Result<(DType, Vec<Cow<'a, [u8]>>)> {
    let views = names
        .iter()
        .map(|n| file.tensor(n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let types: Vec<Option<DType>> = views
        .iter()
        .map(|v| v.info.ty.dtype().filter(|d| MATRIX_TYPES.contains(d)))
        .collect();
    if let Some(dt) = types[0] {
        if types.iter().all(|t| *t == Some(dt)) {
            return Ok((dt, views.iter().map(|v| Cow::Borrowed(v.data)).collect()));
        }
    }
    let mut out = Vec::with_capacity(views.len());
    for (v, name) in views.iter().zip(names) {
        let supported = matches!(
            v.info.ty,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q4_1
        );
        if !supported {
            return Err(ModelError::TensorType {
                tensor: name.clone(),
                what: "matrix kernels",
                got: v.info.ty.name().to_string(),
                expected: "F32, F16, BF16, Q8_0, Q4_0 or Q4_1",
            });
        }
        out.push(Cow::Owned(bytemuck::cast_slice(&v.to_f32()?).to_vec()));
    }
    Ok((DType::F32, out))
}

/// `[a; b; c ...]`: the named `[rows_i, cols]` matrices stacked by rows (one name: that
/// matrix as stored).
pub(crate) fn stacked(
    gpu: &Gpu,
    file: &GgufFile,
    names: &[String],
    rows: &[usize],
    cols: usize,
) -> Result<ChunkedTensor> {
    let (dtype, parts) = common_bytes(file, names)?;
    let total: usize = rows.iter().sum();
    let bytes = match &parts[..] {
        [one] => Cow::Borrowed(&one[..]),
        _ => Cow::Owned(parts.concat()),
    };
    Ok(gpu.upload_chunked("weight", [total, cols], dtype, &bytes)?)
}

/// Rows of `a` and `b` (both `[rows, cols]`) interleaved: a0, b0, a1, b1, ...; chunks never
/// split a pair.
pub(crate) fn interleaved(
    gpu: &Gpu,
    file: &GgufFile,
    a: &str,
    b: &str,
    rows: usize,
    cols: usize,
) -> Result<ChunkedTensor> {
    let (dtype, parts) = common_bytes(file, &[a.to_string(), b.to_string()])?;
    let row_bytes = parts[0].len() / rows.max(1);
    let mut out = Vec::with_capacity(parts[0].len() * 2);
    for (ra, rb) in parts[0]
        .chunks_exact(row_bytes.max(1))
        .zip(parts[1].chunks_exact(row_bytes.max(1)))
    {
        out.extend_from_slice(ra);
        out.extend_from_slice(rb);
    }
    Ok(gpu.upload_chunked_by("weight", [2 * rows, cols], dtype, &out, 2)?)
}
