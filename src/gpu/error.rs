//! Typed errors of the GPU layer: every failure names the kernel and the shapes involved.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter found (backends tried: {backends}); on Linux install a Vulkan driver, e.g. `source scripts/lavapipe.sh`")]
    NoAdapter { backends: String },
    #[error("no adapter matches '{query}'; available: {available}")]
    AdapterNotFound { query: String, available: String },
    #[error("requesting a device from '{adapter}' failed: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error(
        "kernel '{kernel}' needs the device feature {feature}, which '{adapter}' did not grant"
    )]
    MissingFeature {
        kernel: &'static str,
        feature: &'static str,
        adapter: String,
    },
    #[error("kernel '{kernel}': shape mismatch: {detail}")]
    Shape {
        kernel: &'static str,
        detail: String,
    },
    #[error("kernel '{kernel}': {bytes} bytes exceed the device limit {limit_name} = {limit}")]
    TooLarge {
        kernel: &'static str,
        bytes: u64,
        limit_name: &'static str,
        limit: u64,
    },
    #[error("out of GPU memory while {what}")]
    OutOfMemory { what: String },
    #[error("GPU device lost: {reason}")]
    DeviceLost { reason: String },
    #[error("kernel '{kernel}': GPU validation error: {message}")]
    Validation { kernel: String, message: String },
    #[error("shader '{shader}' ({variant}) is invalid: {message}")]
    Shader {
        shader: String,
        variant: String,
        message: String,
    },
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;

impl GpuError {
    pub(crate) fn shape(kernel: &'static str, detail: impl Into<String>) -> Self {
        GpuError::Shape {
            kernel,
            detail: detail.into(),
        }
    }

    /// `from_wgpu` for tests outside the crate.
    #[doc(hidden)]
    pub fn from_wgpu_for_test(kernel: &str, err: wgpu::Error) -> Self {
        Self::from_wgpu(kernel, err)
    }

    /// Turn an error caught by a wgpu error scope into a typed error.
    pub(crate) fn from_wgpu(kernel: &str, err: wgpu::Error) -> Self {
        match err {
            wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory {
                what: format!("running '{kernel}'"),
            },
            wgpu::Error::Validation { description, .. } => GpuError::Validation {
                kernel: kernel.to_string(),
                message: description,
            },
            wgpu::Error::Internal { description, .. } => GpuError::Validation {
                kernel: kernel.to_string(),
                message: description,
            },
        }
    }
}
