//! tokenmill: portable LLM inference on WGSL compute shaders through wgpu.

pub mod chat;
pub mod generate;
pub mod gpu;
pub mod ledger;
pub mod model;
pub mod ops;
pub mod quant;
pub mod sampling;
pub mod tokenizer;
pub mod tune;

pub use gpu::{Gpu, GpuError, GpuOptions};
