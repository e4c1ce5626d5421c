//! Model inputs: GGUF files (header, metadata, tensors) and the llama config read from them.

pub mod config;
pub mod convert;
pub mod error;
pub mod forward;
mod fuse;
pub mod gguf;
pub mod llama;
pub mod metadata;
pub mod tensor_type;

pub use config::LlamaConfig;
pub use convert::Bf16As;
pub use error::LoadError;
pub use forward::Logits;
pub use gguf::{Gguf, GgufFile, TensorInfo, TensorView};
pub use llama::{Llama, ModelError};
pub use metadata::{MetaArray, MetaValue, Metadata};
pub use tensor_type::GgmlType;
