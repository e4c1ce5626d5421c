//! Compute pipelines keyed by (shader, entry, variant flags, override constants), explicit bind
//! group layouts, and the `Dispatch` unit that records one kernel launch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::device::Gpu;
use super::error::{GpuError, Result};
use super::shader::{self, Flags};

/// One binding slot of a kernel, in binding order (group 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindingKind {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// Identifies one compiled pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub flags: Flags,
    /// Override constants, as integers (all of ours are sizes and counts).
    pub overrides: Vec<(&'static str, i64)>,
}

/// A compiled kernel: its pipeline and the layout its bind groups use.
#[derive(Clone)]
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub layout: Arc<wgpu::BindGroupLayout>,
}

/// One kernel launch, built once and recorded any number of times (clones share the GPU objects).
#[derive(Clone)]
pub struct Dispatch {
    pub kernel: &'static str,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Bytes bound: the summed sizes of the storage buffer bindings, set by `Gpu::dispatch`.
    /// An upper bound of the bytes the launch moves (a kernel may read only part of a binding);
    /// for a matvec it is about the weight bytes, which dominate. `with_bytes` overrides it.
    pub bytes: u64,
    /// Floating-point operations of the launch, 0 when unknown (set by ops with `with_flops`).
    pub flops: u64,
}

impl Dispatch {
    /// The same launch with its floating-point operation count set (for GFLOP/s in profiles).
    pub fn with_flops(mut self, flops: u64) -> Self {
        self.flops = flops;
        self
    }

    /// The same launch with its byte count set, replacing the bytes bound.
    pub fn with_bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({})", self.name)
    }
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({} {:?})", self.kernel, self.workgroups)
    }
}

pub(crate) struct Pipelines {
    kernels: Mutex<HashMap<PipelineKey, Kernel>>,
    layouts: Mutex<HashMap<Vec<BindingKind>, Arc<wgpu::BindGroupLayout>>>,
    disk: Option<(wgpu::PipelineCache, PathBuf)>,
}

impl Pipelines {
    pub fn new(
        device: &wgpu::Device,
        adapter: &wgpu::Adapter,
        features: wgpu::Features,
        dir: Option<PathBuf>,
    ) -> Self {
        let disk = dir.and_then(|dir| {
            if !features.contains(wgpu::Features::PIPELINE_CACHE) {
                return None;
            }
            let key = wgpu::util::pipeline_cache_key(&adapter.get_info())?;
            let path = dir.join(key);
            let data = std::fs::read(&path).ok();
            // SAFETY: the data was written by `get_data` for this adapter's cache key;
            // `fallback: true` makes the driver ignore data it does not accept.
            let cache = unsafe {
                device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                    label: Some("tokenmill"),
                    data: data.as_deref(),
                    fallback: true,
                })
            };
            Some((cache, path))
        });
        Pipelines {
            kernels: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            disk,
        }
    }

    pub fn save_disk_cache(&self) {
        if let Some((cache, path)) = &self.disk {
            if let Some(data) = cache.get_data() {
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, data).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
    }
}

impl Gpu {
    /// The variant flags this device supports (F16, SUBGROUP), plus `extra`.
    pub fn flags(&self, extra: &[&'static str]) -> Flags {
        let mut f: Flags = extra.iter().copied().collect();
        if self.caps.f16 {
            f.insert("F16");
        }
        if self.caps.subgroup {
            f.insert("SUBGROUP");
        }
        f
    }

    fn layout(&self, bindings: &[BindingKind]) -> Arc<wgpu::BindGroupLayout> {
        let mut layouts = self.pipelines.layouts.lock().unwrap();
        layouts
            .entry(bindings.to_vec())
            .or_insert_with(|| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match kind {
                                BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                                BindingKind::ReadOnly => {
                                    wgpu::BufferBindingType::Storage { read_only: true }
                                }
                                BindingKind::ReadWrite => {
                                    wgpu::BufferBindingType::Storage { read_only: false }
                                }
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                Arc::new(
                    self.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: None,
                            entries: &entries,
                        }),
                )
            })
            .clone()
    }

    /// The compiled kernel for `key`, built on first use (naga-validated first so that a bad
    /// shader is a typed error naming the shader and variant, never a panic).
    pub fn kernel(
        &self,
        name: &'static str,
        key: &PipelineKey,
        bindings: &[BindingKind],
    ) -> Result<Kernel> {
        if let Some(k) = self.pipelines.kernels.lock().unwrap().get(key) {
            return Ok(k.clone());
        }
        if key.flags.contains("F16") && !self.caps.f16 {
            return Err(self.missing(name, "SHADER_F16"));
        }
        if key.flags.contains("SUBGROUP") && !self.caps.subgroup {
            return Err(self.missing(name, "SUBGROUP"));
        }
        if key.flags.contains("INT64") && !self.caps.int64 {
            return Err(self.missing(name, "SHADER_INT64"));
        }
        let variant = format!("{:?} {:?}", key.flags, key.overrides);
        let shader_err = |message: String| GpuError::Shader {
            shader: key.shader.to_string(),
            variant: variant.clone(),
            message,
        };
        let text = shader::assemble(key.shader, &key.flags).map_err(shader_err)?;
        shader::validate(&text, &key.flags).map_err(shader_err)?;
        let layout = self.layout(bindings);
        let constants: Vec<(&str, f64)> =
            key.overrides.iter().map(|(n, v)| (*n, *v as f64)).collect();
        let pipeline = self.scoped_sync(name, || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(key.shader),
                    source: wgpu::ShaderSource::Wgsl(text.as_str().into()),
                });
            let pl = self
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: None,
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(key.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: self.pipelines.disk.as_ref().map(|(c, _)| c),
                })
        })?;
        let kernel = Kernel {
            name,
            pipeline: Arc::new(pipeline),
            layout,
        };
        self.pipelines
            .kernels
            .lock()
            .unwrap()
            .insert(key.clone(), kernel.clone());
        Ok(kernel)
    }

    fn missing(&self, kernel: &'static str, feature: &'static str) -> GpuError {
        GpuError::MissingFeature {
            kernel,
            feature,
            adapter: self.desc.name.clone(),
        }
    }

    /// Error-scoped call that resolves without an executor on every platform: wgpu resolves
    /// native scopes immediately; in the browser a pending scope is checked by `check` later.
    pub(crate) fn scoped_sync<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = futures::FutureExt::now_or_never(val.pop()).flatten();
        let o = futures::FutureExt::now_or_never(oom.pop()).flatten();
        if let Some(e) = o.or(v) {
            return Err(GpuError::from_wgpu(what, e));
        }
        Ok(out)
    }

    /// Bind `buffers` (in binding order) to `kernel` for a launch of `workgroups`.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        buffers: &[wgpu::BindingResource<'_>],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = self.caps.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(GpuError::TooLarge {
                kernel: kernel.name,
                bytes: workgroups.iter().map(|&w| w as u64).max().unwrap_or(0),
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max as u64,
            });
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        let bind_group = self.scoped_sync(kernel.name, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &kernel.layout,
                entries: &entries,
            })
        })?;
        Ok(Dispatch {
            kernel: kernel.name,
            pipeline: kernel.pipeline.clone(),
            bind_group,
            workgroups,
            bytes: bound_bytes(buffers),
            flops: 0,
        })
    }

    /// Spread `n` workgroups over x and y so neither exceeds the per-dimension limit.
    /// Kernels recover the linear index as `wid.x + wid.y * nwg.x`.
    pub fn grid(&self, n: u32) -> [u32; 3] {
        let max = self.caps.limits.max_compute_workgroups_per_dimension.max(1);
        if n <= max {
            [n.max(1), 1, 1]
        } else {
            let y = n.div_ceil(max);
            [n.div_ceil(y), y, 1]
        }
    }

    /// Record dispatches into one compute pass.
    pub fn record(pass: &mut wgpu::ComputePass<'_>, dispatches: &[Dispatch]) {
        for d in dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
    }

    /// Encode `dispatches` in one pass and submit them; errors name the first kernel.
    pub fn submit(&self, dispatches: &[Dispatch]) -> Result<wgpu::SubmissionIndex> {
        let name = dispatches.first().map(|d| d.kernel).unwrap_or("empty");
        self.scoped_sync(name, || {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(name),
                    timestamp_writes: None,
                });
                Self::record(&mut pass, dispatches);
            }
            self.queue.submit([enc.finish()])
        })
    }

    /// Submit and wait for completion (native), then report any device error.
    pub fn run(&self, dispatches: &[Dispatch]) -> Result<()> {
        self.submit(dispatches)?;
        self.wait()?;
        let name = dispatches.first().map(|d| d.kernel).unwrap_or("empty");
        self.check(name)
    }
}

/// Summed sizes of the storage buffer bindings in `buffers` (uniforms are not counted).
fn bound_bytes(buffers: &[wgpu::BindingResource<'_>]) -> u64 {
    buffers
        .iter()
        .map(|r| match r {
            wgpu::BindingResource::Buffer(b)
                if b.buffer.usage().contains(wgpu::BufferUsages::STORAGE) =>
            {
                b.size
                    .map_or(b.buffer.size().saturating_sub(b.offset), |s| s.get())
            }
            _ => 0,
        })
        .sum()
}
