//! Weight matrices on the device: split by rows into chunks that each fit one storage binding,
//! and on CPU adapters stored in row groups. A row group keeps `ROW_GROUP` rows' units (two
//! blocks each) side by side, unit by unit, so a matvec thread that owns those rows reads one
//! contiguous run instead of one stream per row. Every kernel that reads weights (matvec,
//! matmul, embed) computes a block's address for either layout.

use super::device::Gpu;
use super::error::{GpuError, Result};
use super::tensor::{DType, GpuTensor};

/// Rows per group in the grouped layout.
pub const ROW_GROUP: usize = 16;

/// A 2-D tensor `[rows, cols]` split along rows into chunks that each fit one storage binding.
/// Kernels run once per chunk with the chunk's first row as an offset.
#[derive(Clone, Debug)]
pub struct ChunkedTensor {
    pub shape: [usize; 2],
    pub dtype: DType,
    /// `ROW_GROUP` for the grouped layout, 1 for GGUF's row-major bytes.
    pub group: usize,
    /// (first row, chunk) pairs, in order. A grouped chunk's tensor holds its rows rounded up
    /// to whole groups (the extra rows are zero).
    pub chunks: Vec<(usize, GpuTensor)>,
}

impl ChunkedTensor {
    /// Bytes on the device (with a grouped chunk's padding rows).
    pub fn nbytes(&self) -> u64 {
        self.chunks.iter().map(|(_, c)| c.nbytes()).sum()
    }

    /// (first row, rows, tensor) of each chunk; `rows` excludes the padding rows.
    pub fn parts(&self) -> impl Iterator<Item = (usize, usize, &GpuTensor)> {
        let total = self.shape[0];
        self.chunks.iter().enumerate().map(move |(i, (start, c))| {
            let end = self.chunks.get(i + 1).map_or(total, |(s, _)| *s);
            (*start, end - start, c)
        })
    }

    /// Whether the chunks use the grouped layout.
    pub fn grouped(&self) -> bool {
        self.group > 1
    }
}

/// Whether `[_, cols]` rows of `dtype` can be grouped: q4_1 and q8_0 (the formats the CPU
/// matvec reads as u64 words) with an even block count, so a unit is two whole blocks.
pub fn groupable(dtype: DType, cols: usize) -> bool {
    matches!(dtype, DType::Q4_1 | DType::Q8_0)
        && cols.is_multiple_of(32)
        && (cols / 32).is_multiple_of(2)
        && cols > 0
}

/// Bytes of `rows` row-major rows in the grouped layout: unit `u` of row `g * group + r` goes
/// to unit slot `(g * units + u) * group + r`; rows past `rows` up to a whole group are zero.
pub fn group_rows(
    bytes: &[u8],
    rows: usize,
    row_bytes: usize,
    unit_bytes: usize,
    group: usize,
) -> Vec<u8> {
    let units = row_bytes / unit_bytes;
    let mut out = vec![0u8; rows.div_ceil(group) * group * row_bytes];
    for row in 0..rows {
        let (g, r) = (row / group, row % group);
        for u in 0..units {
            let dst = ((g * units + u) * group + r) * unit_bytes;
            let src = row * row_bytes + u * unit_bytes;
            out[dst..dst + unit_bytes].copy_from_slice(&bytes[src..src + unit_bytes]);
        }
    }
    out
}

impl Gpu {
    /// The row grouping this device reads `dtype` weights of `cols` columns fastest in:
    /// `ROW_GROUP` on CPU adapters with 64-bit integers, else 1 (row-major).
    pub fn weight_group(&self, dtype: DType, cols: usize) -> usize {
        if self.desc.software && self.caps.int64 && groupable(dtype, cols) {
            ROW_GROUP
        } else {
            1
        }
    }

    /// Upload a `[rows, cols]` weight in this device's layout (`weight_group`), split by rows
    /// so each chunk fits a storage binding.
    pub fn upload_chunked(
        &self,
        name: &'static str,
        shape: [usize; 2],
        dtype: DType,
        bytes: &[u8],
    ) -> Result<ChunkedTensor> {
        self.upload_chunked_by(name, shape, dtype, bytes, 1)
    }

    /// `upload_chunked` with every chunk starting at a multiple of `row_multiple` (e.g. 2 for
    /// interleaved row pairs that must not be split).
    pub fn upload_chunked_by(
        &self,
        name: &'static str,
        shape: [usize; 2],
        dtype: DType,
        bytes: &[u8],
        row_multiple: usize,
    ) -> Result<ChunkedTensor> {
        let group = self.weight_group(dtype, shape[1]);
        self.upload_weight(name, shape, dtype, bytes, row_multiple, group)
    }

    /// Upload in an explicit layout: `group` 1 (row-major) or `ROW_GROUP` (needs `groupable`).
    pub fn upload_weight(
        &self,
        name: &'static str,
        shape: [usize; 2],
        dtype: DType,
        bytes: &[u8],
        row_multiple: usize,
        group: usize,
    ) -> Result<ChunkedTensor> {
        let [rows, cols] = shape;
        let row_bytes = dtype.bytes_for(cols).ok_or_else(|| {
            GpuError::shape(
                name,
                format!(
                    "{cols} columns is not a whole number of {} blocks",
                    dtype.name()
                ),
            )
        })?;
        if bytes.len() != rows * row_bytes {
            return Err(GpuError::shape(
                name,
                format!(
                    "{} bytes given for [{rows}, {cols}] {}, expected {}",
                    bytes.len(),
                    dtype.name(),
                    rows * row_bytes
                ),
            ));
        }
        if group > 1 && (group != ROW_GROUP || !groupable(dtype, cols)) {
            return Err(GpuError::shape(
                name,
                format!(
                    "{} rows of {cols} columns cannot be stored in groups of {group}",
                    dtype.name()
                ),
            ));
        }
        let max = self.caps.max_binding() as usize;
        // Chunks start at whole groups (and whole `row_multiple`s), so a chunk's padded rows
        // stay within the binding limit too.
        let m = lcm(row_multiple.max(1), group.max(1));
        let per_chunk = (max / row_bytes.max(1) / m * m).max(m);
        if row_bytes * m > max {
            self.check_size(name, (row_bytes * m) as u64)?;
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows || (rows == 0 && chunks.is_empty()) {
            let n = per_chunk.min(rows - start);
            let part = &bytes[start * row_bytes..(start + n) * row_bytes];
            let tensor = if group > 1 {
                let unit = 2 * dtype.block_bytes();
                let grouped = group_rows(part, n, row_bytes, unit, group);
                self.upload(name, &[n.div_ceil(group) * group, cols], dtype, &grouped)?
            } else {
                self.upload(name, &[n, cols], dtype, part)?
            };
            chunks.push((start, tensor));
            start += n;
            if rows == 0 {
                break;
            }
        }
        Ok(ChunkedTensor {
            shape,
            dtype,
            group: group.max(1),
            chunks,
        })
    }
}

fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_places_units_side_by_side() {
        // 3 rows of 2 units of 2 bytes, groups of 2: row 2 starts a second, zero-padded group.
        let rows: Vec<u8> = (0..12).collect();
        let g = group_rows(&rows, 3, 4, 2, 2);
        assert_eq!(g, vec![0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 0, 0, 10, 11, 0, 0]);
    }

    #[test]
    fn shaders_use_the_same_group() {
        let common = crate::gpu::shader::source("common").unwrap();
        assert!(common.contains(&format!("const ROW_GROUP: u32 = {ROW_GROUP}u;")));
    }

    #[test]
    fn lcm_of_row_multiples() {
        assert_eq!(lcm(2, 16), 16);
        assert_eq!(lcm(3, 16), 48);
        assert_eq!(lcm(1, 1), 1);
    }
}
