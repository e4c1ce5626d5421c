//! GPU tensors: a typed, shaped region of a buffer; and row-chunked tensors for data larger
//! than one storage binding may be.

use std::sync::Arc;

use super::device::Gpu;
use super::error::{GpuError, Result};

/// Element or block type of a tensor. Block formats use GGUF's own byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    F16,
    U32,
    /// 32 x int8 + f16 scale (34 bytes).
    Q8_0,
    /// 32 x 4-bit + f16 scale (18 bytes).
    Q4_0,
    /// 32 x 4-bit + f16 scale + f16 min (20 bytes).
    Q4_1,
}

impl DType {
    /// Elements per block (1 for plain types).
    pub const fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::U32 => 1,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 32,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
        }
    }

    pub const fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes taken by `n` elements; `None` if `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        n.is_multiple_of(self.block_elems())
            .then(|| n / self.block_elems() * self.block_bytes())
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
        }
    }
}

/// A tensor on the GPU: a whole buffer (offset 0) or a view into one.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub buffer: Arc<wgpu::Buffer>,
    /// Byte offset of the first element (a multiple of the storage offset alignment).
    pub offset: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// Round up to 4 bytes (buffer sizes and copies must be multiples of 4).
pub(crate) fn pad4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the data (not counting padding).
    pub fn nbytes(&self) -> u64 {
        self.dtype.bytes_for(self.numel()).unwrap_or(0) as u64
    }

    /// Binding covering exactly this tensor (padded to 4 bytes).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(pad4(self.nbytes()).max(4)),
        })
    }

    /// A view of rows `[start, start + rows)` along dimension 0.
    pub fn rows(&self, start: usize, rows: usize) -> Result<GpuTensor> {
        let row_elems: usize = self.shape[1..].iter().product();
        let row_bytes = self.dtype.bytes_for(row_elems).unwrap_or(0) as u64;
        let offset = self.offset + start as u64 * row_bytes;
        if start + rows > self.shape[0] {
            return Err(GpuError::shape(
                "view",
                format!("rows {start}..{} of {:?}", start + rows, self.shape),
            ));
        }
        let mut shape = self.shape.clone();
        shape[0] = rows;
        Ok(GpuTensor {
            buffer: self.buffer.clone(),
            offset,
            shape,
            dtype: self.dtype,
        })
    }

    /// Check this tensor has `shape` and `dtype`, naming `kernel` and `what` if not.
    pub fn expect(
        &self,
        kernel: &'static str,
        what: &str,
        shape: &[usize],
        dtypes: &[DType],
    ) -> Result<()> {
        if self.shape != shape {
            return Err(GpuError::shape(
                kernel,
                format!("{what} has shape {:?}, expected {:?}", self.shape, shape),
            ));
        }
        if !dtypes.contains(&self.dtype) {
            return Err(GpuError::shape(
                kernel,
                format!(
                    "{what} is {}, expected one of {:?}",
                    self.dtype.name(),
                    dtypes
                ),
            ));
        }
        Ok(())
    }
}

impl Gpu {
    pub(crate) fn check_size(&self, kernel: &'static str, bytes: u64) -> Result<()> {
        let max = self.caps.max_binding();
        if bytes > max {
            return Err(GpuError::TooLarge {
                kernel,
                bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit: max,
            });
        }
        Ok(())
    }

    /// Upload raw bytes as a tensor of `shape` and `dtype`.
    pub fn upload(
        &self,
        name: &'static str,
        shape: &[usize],
        dtype: DType,
        bytes: &[u8],
    ) -> Result<GpuTensor> {
        let numel: usize = shape.iter().product();
        let want = dtype.bytes_for(numel).ok_or_else(|| {
            GpuError::shape(
                name,
                format!(
                    "{numel} elements is not a whole number of {} blocks",
                    dtype.name()
                ),
            )
        })?;
        if bytes.len() != want {
            return Err(GpuError::shape(
                name,
                format!(
                    "{} bytes given for {shape:?} {}, expected {want}",
                    bytes.len(),
                    dtype.name()
                ),
            ));
        }
        self.check_size(name, want as u64)?;
        let padded;
        let contents = if bytes.len().is_multiple_of(4) && !bytes.is_empty() {
            bytes
        } else {
            let mut v = bytes.to_vec();
            v.resize(pad4(bytes.len() as u64).max(4) as usize, 0);
            padded = v;
            &padded
        };
        let buffer = self.buffer_with(name, STORAGE, contents)?;
        Ok(GpuTensor {
            buffer: Arc::new(buffer),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn upload_f32(
        &self,
        name: &'static str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<GpuTensor> {
        self.upload(name, shape, DType::F32, bytemuck::cast_slice(data))
    }

    pub fn upload_u32(
        &self,
        name: &'static str,
        shape: &[usize],
        data: &[u32],
    ) -> Result<GpuTensor> {
        self.upload(name, shape, DType::U32, bytemuck::cast_slice(data))
    }

    pub fn upload_f16(
        &self,
        name: &'static str,
        shape: &[usize],
        data: &[half::f16],
    ) -> Result<GpuTensor> {
        self.upload(name, shape, DType::F16, bytemuck::cast_slice(data))
    }

    /// A zeroed tensor for kernel outputs.
    pub fn zeros(&self, name: &'static str, shape: &[usize], dtype: DType) -> Result<GpuTensor> {
        let numel: usize = shape.iter().product();
        let bytes = dtype.bytes_for(numel).ok_or_else(|| {
            GpuError::shape(name, format!("{numel} elements in {} blocks", dtype.name()))
        })? as u64;
        self.check_size(name, bytes)?;
        let buffer = self.scoped_sync(name, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: pad4(bytes).max(4),
                usage: STORAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuTensor {
            buffer: Arc::new(buffer),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A buffer holding `contents` (length a multiple of 4). Written through the queue rather
    /// than mapped at creation, so a lost device gives an error instead of a panic.
    fn buffer_with(
        &self,
        name: &'static str,
        usage: wgpu::BufferUsages,
        contents: &[u8],
    ) -> Result<wgpu::Buffer> {
        self.check(name)?;
        let buffer = self.scoped_sync(name, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: contents.len() as u64,
                usage: usage | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.queue.write_buffer(&buffer, 0, contents);
        Ok(buffer)
    }

    /// A small uniform buffer holding `params`. On a lost device the buffer is invalid and the
    /// next `run` reports the loss.
    pub fn uniform<T: bytemuck::Pod>(&self, name: &'static str, params: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(params);
        self.buffer_with(name, wgpu::BufferUsages::UNIFORM, bytes)
            .unwrap_or_else(|_| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(name),
                    size: bytes.len() as u64,
                    usage: wgpu::BufferUsages::UNIFORM,
                    mapped_at_creation: false,
                })
            })
    }

    /// Read a tensor's bytes back to the host.
    pub async fn read_bytes(&self, t: &GpuTensor) -> Result<Vec<u8>> {
        let size = pad4(t.nbytes()).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&t.buffer, t.offset, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = futures::channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        rx.await
            .map_err(|_| GpuError::Readback("map callback dropped".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let mut out = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        out.truncate(t.nbytes() as usize);
        self.check("readback")?;
        Ok(out)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Gpu {
    pub fn read_f32(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let b = pollster::block_on(self.read_bytes(t))?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    pub fn read_u32(&self, t: &GpuTensor) -> Result<Vec<u32>> {
        let b = pollster::block_on(self.read_bytes(t))?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    pub fn read_f16(&self, t: &GpuTensor) -> Result<Vec<half::f16>> {
        let b = pollster::block_on(self.read_bytes(t))?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }
}
