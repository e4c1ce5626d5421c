//! GGML tensor types as stored in GGUF: one table row per type (id, name, block layout), so a new
//! format is one variant plus one row.

use crate::gpu::DType;

/// A GGML tensor type that this reader knows the layout of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    I8,
    I16,
    I32,
    I64,
    F64,
    BF16,
}

/// Layout facts of one type: `block_bytes` bytes hold `block_elems` consecutive row elements.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub ty: GgmlType,
    /// The type id in GGUF tensor infos (ggml_type).
    pub id: u32,
    pub name: &'static str,
    pub block_elems: u64,
    pub block_bytes: u64,
    /// The engine's dtype when the bytes can go to the GPU unchanged.
    pub dtype: Option<DType>,
}

const fn row(
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_elems: u64,
    block_bytes: u64,
    dtype: Option<DType>,
) -> TypeInfo {
    TypeInfo {
        ty,
        id,
        name,
        block_elems,
        block_bytes,
        dtype,
    }
}

/// Every known type. Ids 4 and 5 (removed Q4_2 / Q4_3) and the IQ formats are not here.
pub const TYPES: &[TypeInfo] = &[
    row(GgmlType::F32, 0, "f32", 1, 4, Some(DType::F32)),
    row(GgmlType::F16, 1, "f16", 1, 2, Some(DType::F16)),
    row(GgmlType::Q4_0, 2, "q4_0", 32, 18, Some(DType::Q4_0)),
    row(GgmlType::Q4_1, 3, "q4_1", 32, 20, Some(DType::Q4_1)),
    row(GgmlType::Q5_0, 6, "q5_0", 32, 22, None),
    row(GgmlType::Q5_1, 7, "q5_1", 32, 24, None),
    row(GgmlType::Q8_0, 8, "q8_0", 32, 34, Some(DType::Q8_0)),
    row(GgmlType::Q8_1, 9, "q8_1", 32, 36, None),
    row(GgmlType::Q2K, 10, "q2_k", 256, 84, None),
    row(GgmlType::Q3K, 11, "q3_k", 256, 110, None),
    row(GgmlType::Q4K, 12, "q4_k", 256, 144, None),
    row(GgmlType::Q5K, 13, "q5_k", 256, 176, None),
    row(GgmlType::Q6K, 14, "q6_k", 256, 210, None),
    row(GgmlType::Q8K, 15, "q8_k", 256, 292, None),
    row(GgmlType::I8, 24, "i8", 1, 1, None),
    row(GgmlType::I16, 25, "i16", 1, 2, None),
    row(GgmlType::I32, 26, "i32", 1, 4, None),
    row(GgmlType::I64, 27, "i64", 1, 8, None),
    row(GgmlType::F64, 28, "f64", 1, 8, None),
    row(GgmlType::BF16, 30, "bf16", 1, 2, None),
];

impl GgmlType {
    /// The type with GGUF id `id`, if known.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().find(|t| t.id == id).map(|t| t.ty)
    }

    pub fn info(self) -> &'static TypeInfo {
        TYPES
            .iter()
            .find(|t| t.ty == self)
            .expect("every GgmlType variant has a row in TYPES")
    }

    pub fn id(self) -> u32 {
        self.info().id
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn block_elems(self) -> u64 {
        self.info().block_elems
    }

    pub fn block_bytes(self) -> u64 {
        self.info().block_bytes
    }

    /// The GPU dtype whose layout equals this type's, if any.
    pub fn dtype(self) -> Option<DType> {
        self.info().dtype
    }

    /// Bytes taken by `n` elements, `None` on overflow or a partial block.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let info = self.info();
        if !n.is_multiple_of(info.block_elems) {
            return None;
        }
        (n / info.block_elems).checked_mul(info.block_bytes)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in TYPES.iter().enumerate() {
            assert_eq!(GgmlType::from_id(a.id), Some(a.ty));
            assert_eq!(a.ty.info().id, a.id);
            for b in &TYPES[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.ty, b.ty);
            }
            if let Some(d) = a.dtype {
                assert_eq!(d.block_elems() as u64, a.block_elems, "{}", a.name);
                assert_eq!(d.block_bytes() as u64, a.block_bytes, "{}", a.name);
            }
        }
        assert_eq!(GgmlType::from_id(4), None);
    }
}
