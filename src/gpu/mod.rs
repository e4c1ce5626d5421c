//! The device layer: adapters, device request, shaders and pipelines, GPU tensors, profiling.

pub mod adapter;
pub mod chunked;
pub mod device;
pub mod error;
pub mod pipelines;
pub mod profile;
pub mod shader;
pub mod tensor;

pub use adapter::{AdapterDesc, DeviceChoice};
pub use chunked::{ChunkedTensor, ROW_GROUP};
pub use device::{list_adapters, Caps, Gpu, GpuOptions};
pub use error::{GpuError, Result};
pub use pipelines::{BindingKind, Dispatch, Kernel, PipelineKey};
pub use profile::{KernelSummary, KernelTiming, Profile, Profiler, TimingMethod};
pub use tensor::{DType, GpuTensor};
