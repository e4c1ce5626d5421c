//! GGUF v2/v3 reader: header, metadata, tensor infos and tensor data, from a memory-mapped file
//! (native) or from bytes (any target, the browser included).
//!
//! Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
//! metadata pairs, the tensor infos, padding to `general.alignment` (default 32), then tensor data.
//! Tensor dims are listed innermost first: `dims[0]` is the row length.

use std::collections::HashMap;
use std::ops::Deref;

use super::error::{LoadError, Result};
use super::metadata::{MetaArray, MetaValue, Metadata};
use super::tensor_type::GgmlType;

pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
pub const MAX_DIMS: u32 = 4;
/// Deepest array nesting accepted in metadata (real files use 1).
const MAX_NESTING: usize = 4;

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, innermost (row length) first, as GGUF stores them.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    pub n_elems: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of the outer dims).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// The shape outermost first (row-major order, as `GpuTensor` shapes are written).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed GGUF header: metadata and tensor infos, checked against the file length.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub file: String,
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    pub file_len: u64,
}

impl Gguf {
    /// Parses the header of a whole GGUF file held in `bytes`; `file` names it in errors.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Gguf> {
        let mut r = Reader {
            file,
            bytes,
            pos: 0,
            ctx: String::from("header"),
        };
        let magic: [u8; 4] = r.array()?;
        if magic != GGUF_MAGIC {
            return Err(LoadError::BadMagic {
                file: file.into(),
                got: magic,
            });
        }
        let version = r.u32()?;
        if version != 2 && version != 3 {
            let swapped = version.swap_bytes();
            return Err(LoadError::UnsupportedVersion {
                file: file.into(),
                version,
                hint: if swapped == 2 || swapped == 3 {
                    " (this looks like a big-endian file)"
                } else {
                    ""
                },
            });
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;

        let mut metadata = Metadata::new(file);
        for i in 0..n_kv {
            r.ctx = format!("metadata key #{i}");
            let key = r.string()?;
            r.ctx = format!("value of metadata key '{key}'");
            let type_id = r.u32()?;
            let value = r.value(type_id, &key, 0)?;
            metadata.insert(key, value)?;
        }

        let mut tensors = Vec::with_capacity(r.cap(n_tensors, 24));
        let mut index = HashMap::new();
        for i in 0..n_tensors {
            r.ctx = format!("tensor info #{i}");
            let info = r.tensor_info()?;
            if index.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(LoadError::Duplicate {
                    file: file.into(),
                    kind: "tensor",
                    name: info.name,
                });
            }
            tensors.push(info);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(_) => metadata.u64("general.alignment")?,
        };
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(LoadError::BadAlignment {
                file: file.into(),
                alignment,
            });
        }
        let header_end = r.pos as u64;
        let data_offset = header_end.next_multiple_of(alignment);
        let file_len = bytes.len() as u64;
        for t in &tensors {
            check_placement(file, t, alignment, data_offset, file_len)?;
        }
        Ok(Gguf {
            file: file.into(),
            version,
            metadata,
            tensors,
            index,
            alignment,
            data_offset,
            file_len,
        })
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor's info, or a `MissingTensor` error naming it.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| LoadError::MissingTensor {
                file: self.file.clone(),
                tensor: name.into(),
            })
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.metadata.str("general.architecture")
    }

    /// Absolute byte range of a tensor's data in the file.
    pub fn data_range(&self, info: &TensorInfo) -> std::ops::Range<usize> {
        let start = (self.data_offset + info.offset) as usize;
        start..start + info.n_bytes as usize
    }
}

fn check_placement(
    file: &str,
    t: &TensorInfo,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<()> {
    if !t.offset.is_multiple_of(alignment) {
        return Err(LoadError::MisalignedTensor {
            file: file.into(),
            tensor: t.name.clone(),
            offset: t.offset,
            alignment,
        });
    }
    let start = data_offset.checked_add(t.offset);
    let end = start.and_then(|s| s.checked_add(t.n_bytes));
    match (start, end) {
        (Some(_), Some(end)) if end <= file_len => Ok(()),
        _ => Err(LoadError::TensorPastEnd {
            file: file.into(),
            tensor: t.name.clone(),
            start: data_offset.saturating_add(t.offset),
            end: data_offset
                .saturating_add(t.offset)
                .saturating_add(t.n_bytes),
            len: file_len,
        }),
    }
}

/// Bounds-checked little-endian cursor; `ctx` says what is being read, for error messages.
struct Reader<'a> {
    file: &'a str,
    bytes: &'a [u8],
    pos: usize,
    ctx: String,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(LoadError::Truncated {
                file: self.file.into(),
                what: self.ctx.clone(),
                offset: self.pos as u64,
                need: n,
                len: self.bytes.len() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A capacity for `n` items of at least `min_size` bytes each that the rest of the file can
    /// hold, so a corrupt count cannot make us allocate gigabytes up front.
    fn cap(&self, n: u64, min_size: u64) -> usize {
        let left = (self.bytes.len() - self.pos) as u64;
        n.min(left / min_size.max(1)) as usize
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| LoadError::BadUtf8 {
            file: self.file.into(),
            what: self.ctx.clone(),
        })
    }

    /// `n` fixed-size elements decoded with `f`.
    fn fixed<const N: usize, T>(&mut self, n: u64, f: fn([u8; N]) -> T) -> Result<Vec<T>> {
        let total = n.saturating_mul(N as u64);
        let raw = self.take(total)?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N bytes")))
            .collect())
    }

    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<MetaValue> {
        Ok(match type_id {
            0 => MetaValue::U8(self.array::<1>()?[0]),
            1 => MetaValue::I8(self.array::<1>()?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array()?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array()?)),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array()?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array()?)),
            7 => MetaValue::Bool(self.bool()?),
            8 => MetaValue::String(self.string()?),
            9 => MetaValue::Array(self.meta_array(key, depth)?),
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array()?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array()?)),
            _ => return Err(self.bad_type(key, type_id)),
        })
    }

    fn bad_type(&self, key: &str, type_id: u32) -> LoadError {
        LoadError::BadValueType {
            file: self.file.into(),
            key: key.into(),
            type_id,
        }
    }

    fn bool(&mut self) -> Result<bool> {
        Ok(self.array::<1>()?[0] != 0)
    }

    fn meta_array(&mut self, key: &str, depth: usize) -> Result<MetaArray> {
        if depth >= MAX_NESTING {
            return Err(LoadError::NestingTooDeep {
                file: self.file.into(),
                key: key.into(),
                max: MAX_NESTING,
            });
        }
        let elem = self.u32()?;
        let n = self.u64()?;
        Ok(match elem {
            0 => MetaArray::U8(self.fixed(n, |b: [u8; 1]| b[0])?),
            1 => MetaArray::I8(self.fixed(n, |b: [u8; 1]| b[0] as i8)?),
            2 => MetaArray::U16(self.fixed(n, u16::from_le_bytes)?),
            3 => MetaArray::I16(self.fixed(n, i16::from_le_bytes)?),
            4 => MetaArray::U32(self.fixed(n, u32::from_le_bytes)?),
            5 => MetaArray::I32(self.fixed(n, i32::from_le_bytes)?),
            6 => MetaArray::F32(self.fixed(n, f32::from_le_bytes)?),
            7 => MetaArray::Bool(self.fixed(n, |b: [u8; 1]| b[0] != 0)?),
            8 => {
                let mut v = Vec::with_capacity(self.cap(n, 8));
                for _ in 0..n {
                    v.push(self.string()?);
                }
                MetaArray::String(v)
            }
            9 => {
                let mut v = Vec::with_capacity(self.cap(n, 12));
                for _ in 0..n {
                    v.push(self.meta_array(key, depth + 1)?);
                }
                MetaArray::Array(v)
            }
            10 => MetaArray::U64(self.fixed(n, u64::from_le_bytes)?),
            11 => MetaArray::I64(self.fixed(n, i64::from_le_bytes)?),
            12 => MetaArray::F64(self.fixed(n, f64::from_le_bytes)?),
            _ => return Err(self.bad_type(key, elem)),
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string()?;
        self.ctx = format!("tensor info '{name}'");
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            return Err(LoadError::TooManyDims {
                file: self.file.into(),
                tensor: name,
                n_dims,
            });
        }
        let dims = (0..n_dims)
            .map(|_| self.u64())
            .collect::<Result<Vec<u64>>>()?;
        let type_id = self.u32()?;
        let offset = self.u64()?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| LoadError::UnknownTensorType {
            file: self.file.into(),
            tensor: name.clone(),
            type_id,
        })?;
        let overflow = || LoadError::SizeOverflow {
            file: self.file.into(),
            tensor: name.clone(),
            dims: dims.clone(),
        };
        let n_elems = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(overflow)?;
        let row = dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(ty.block_elems()) {
            return Err(LoadError::NotBlockAligned {
                file: self.file.into(),
                tensor: name,
                ty: ty.name(),
                row,
                block: ty.block_elems(),
            });
        }
        let n_bytes = ty.bytes_for(n_elems).ok_or_else(overflow)?;
        // Sizes must also fit the address space (matters on wasm32).
        usize::try_from(n_bytes).map_err(|_| overflow())?;
        Ok(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_elems,
            n_bytes,
        })
    }
}

/// Where the file's bytes live.
enum Storage {
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A tensor's info and its raw bytes in the file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// The file name, for error messages.
    pub file: &'a str,
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

/// A GGUF file with its bytes: the parsed header (through `Deref`) plus tensor data access.
pub struct GgufFile {
    gguf: Gguf,
    storage: Storage,
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let io = |source| LoadError::Io {
            file: name.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only; the model file must not be truncated while loaded,
            // as with any memory-mapped model loader.
            Storage::Mapped(unsafe { memmap2::Mmap::map(&f) }.map_err(io)?)
        };
        let gguf = Gguf::parse(&name, storage.bytes())?;
        Ok(GgufFile { gguf, storage })
    }

    /// Parses a whole file already in memory (e.g. fetched in the browser).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<GgufFile> {
        let gguf = Gguf::parse(name, &bytes)?;
        Ok(GgufFile {
            gguf,
            storage: Storage::Owned(bytes),
        })
    }

    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The named tensor and its data, or a `MissingTensor` error.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self.gguf.require_tensor(name)?;
        Ok(self.view(info))
    }

    /// Every tensor, in file order.
    pub fn tensor_views(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.gguf.tensors.iter().map(|t| self.view(t))
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        TensorView {
            file: &self.gguf.file,
            info,
            data: &self.storage.bytes()[self.gguf.data_range(info)],
        }
    }
}

impl Deref for GgufFile {
    type Target = Gguf;
    fn deref(&self) -> &Gguf {
        &self.gguf
    }
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("file", &self.gguf.file)
            .field("version", &self.gguf.version)
            .field("metadata", &self.gguf.metadata.len())
            .field("tensors", &self.gguf.tensors.len())
            .finish()
    }
}
