//! Typed errors of model loading: each names the file and, where there is one, the key or tensor.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: truncated while reading {what}: need {need} bytes at offset {offset}, file has {len}")]
    Truncated {
        file: String,
        what: String,
        offset: u64,
        need: u64,
        len: u64,
    },
    #[error("{file}: not a GGUF file: magic is {got:?}, expected \"GGUF\"")]
    BadMagic { file: String, got: [u8; 4] },
    #[error("{file}: unsupported GGUF version {version}, expected 2 or 3{hint}")]
    UnsupportedVersion {
        file: String,
        version: u32,
        hint: &'static str,
    },
    #[error("{file}: metadata key '{key}' has unknown value type {type_id}")]
    BadValueType {
        file: String,
        key: String,
        type_id: u32,
    },
    #[error("{file}: metadata key '{key}': arrays nested deeper than {max} levels")]
    NestingTooDeep {
        file: String,
        key: String,
        max: usize,
    },
    #[error("{file}: {what} is not valid UTF-8")]
    BadUtf8 { file: String, what: String },
    #[error("{file}: duplicate {kind} '{name}'")]
    Duplicate {
        file: String,
        kind: &'static str,
        name: String,
    },
    #[error("{file}: general.alignment = {alignment}, expected a non-zero power of two")]
    BadAlignment { file: String, alignment: u64 },
    #[error("{file}: tensor '{tensor}' has unknown tensor type id {type_id}")]
    UnknownTensorType {
        file: String,
        tensor: String,
        type_id: u32,
    },
    #[error("{file}: tensor '{tensor}' has {n_dims} dimensions, at most 4 are supported")]
    TooManyDims {
        file: String,
        tensor: String,
        n_dims: u32,
    },
    #[error("{file}: tensor '{tensor}': size of dims {dims:?} overflows")]
    SizeOverflow {
        file: String,
        tensor: String,
        dims: Vec<u64>,
    },
    #[error("{file}: tensor '{tensor}' of type {ty}: row length {row} is not a multiple of the block size {block}")]
    NotBlockAligned {
        file: String,
        tensor: String,
        ty: &'static str,
        row: u64,
        block: u64,
    },
    #[error("{file}: tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        file: String,
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("{file}: tensor '{tensor}': data [{start}, {end}) lies past the end of the file ({len} bytes)")]
    TensorPastEnd {
        file: String,
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("{file}: metadata key '{key}' is missing")]
    MissingKey { file: String, key: String },
    #[error("{file}: metadata key '{key}' is {got}, expected {expected}")]
    WrongKeyType {
        file: String,
        key: String,
        expected: &'static str,
        got: String,
    },
    #[error("{file}: unsupported architecture {got}, expected llama")]
    UnsupportedArchitecture { file: String, got: String },
    #[error("{file}: invalid model config: {detail}")]
    BadConfig { file: String, detail: String },
    #[error("{file}: tensor '{tensor}' is missing")]
    MissingTensor { file: String, tensor: String },
    #[error("{file}: tensor '{tensor}' has shape {got:?}, expected {expected:?} (innermost dimension first)")]
    WrongShape {
        file: String,
        tensor: String,
        expected: Vec<u64>,
        got: Vec<u64>,
    },
    #[error("{file}: tensor '{tensor}' has type {got}, expected {expected}")]
    WrongTensorType {
        file: String,
        tensor: String,
        expected: String,
        got: &'static str,
    },
    #[error("{file}: tensor '{tensor}': cannot convert to {to}: {detail}")]
    Conversion {
        file: String,
        tensor: String,
        to: &'static str,
        detail: String,
    },
}

pub type Result<T, E = LoadError> = std::result::Result<T, E>;
