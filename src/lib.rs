//! tokenmill: portable LLM inference on WGSL compute shaders through wgpu.

pub mod gpu;
pub mod ledger;
pub mod ops;
pub mod quant;
pub mod sampling;

pub use gpu::{Gpu, GpuError, GpuOptions};
