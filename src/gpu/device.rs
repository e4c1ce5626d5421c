//! The device: one adapter, its granted features and limits, and error capture.

use std::sync::{Arc, Mutex, RwLock};

use super::adapter::{self, interesting_features, AdapterDesc, DeviceChoice};
use super::error::{GpuError, Result};
use super::pipelines::Pipelines;

/// How to open a device. The defaults take everything the adapter offers.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    pub device: DeviceChoice,
    /// Use f16 storage and arithmetic when the adapter has SHADER_F16.
    pub allow_f16: bool,
    /// Use subgroup reductions when the adapter has SUBGROUP.
    pub allow_subgroups: bool,
    /// Use 64-bit integer loads when the adapter has SHADER_INT64.
    pub allow_int64: bool,
    /// Lower max_storage_buffer_binding_size below the adapter's (tests of tensor chunking).
    pub max_binding_size: Option<u64>,
    /// Directory for wgpu's driver pipeline cache (skips recompiles on the next start).
    pub pipeline_cache_dir: Option<std::path::PathBuf>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            device: DeviceChoice::Auto,
            allow_f16: true,
            allow_subgroups: true,
            allow_int64: true,
            max_binding_size: None,
            pipeline_cache_dir: None,
        }
    }
}

/// What the opened device can do; kernels pick their variant from this.
#[derive(Clone, Debug)]
pub struct Caps {
    pub f16: bool,
    pub subgroup: bool,
    /// 64-bit integers in shaders (wider loads; CPU adapters' per-lane gathers move twice the
    /// bytes per element).
    pub int64: bool,
    pub timestamps: bool,
    /// Timestamps may be written between dispatches inside one compute pass.
    pub timestamps_inside_passes: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub limits: wgpu::Limits,
}

impl Caps {
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }
}

/// An opened GPU device with everything kernels need.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    pub desc: AdapterDesc,
    pub caps: Caps,
    pub(crate) pipelines: Pipelines,
    /// Tuned launch shapes (`tune`); empty: the presets.
    tuning: RwLock<Arc<crate::tune::Tuning>>,
    errors: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// Open the adapter chosen by `opts.device`.
    pub async fn open(opts: &GpuOptions) -> Result<Gpu> {
        let instance = adapter::instance();
        let adapters = adapter::enumerate(&instance).await;
        let chosen = adapter::choose(adapters, &opts.device)?;
        let index = adapter::enumerate(&instance)
            .await
            .iter()
            .position(|a| a.get_info() == chosen.get_info())
            .unwrap_or(0);
        Self::from_adapter(index, chosen, opts).await
    }

    /// Open a device on a specific adapter.
    pub async fn from_adapter(
        index: usize,
        adapter: wgpu::Adapter,
        opts: &GpuOptions,
    ) -> Result<Gpu> {
        let desc = AdapterDesc::from_adapter(index, &adapter);
        let mut features = adapter.features() & interesting_features();
        if !opts.allow_f16 {
            features.remove(wgpu::Features::SHADER_F16);
        }
        if !opts.allow_subgroups {
            features.remove(wgpu::Features::SUBGROUP);
        }
        if !opts.allow_int64 {
            features.remove(wgpu::Features::SHADER_INT64);
        }
        if !features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            features.remove(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
            features.remove(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);
        }
        let mut limits = adapter.limits();
        if let Some(max) = opts.max_binding_size {
            let max = max.min(limits.max_storage_buffer_binding_size);
            limits.max_storage_buffer_binding_size = max as _;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tokenmill"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| GpuError::RequestDevice {
                adapter: desc.name.clone(),
                source,
            })?;
        let granted = device.features();
        let caps = Caps {
            f16: granted.contains(wgpu::Features::SHADER_F16),
            subgroup: granted.contains(wgpu::Features::SUBGROUP),
            int64: granted.contains(wgpu::Features::SHADER_INT64),
            timestamps: granted.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamps_inside_passes: granted
                .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
            subgroup_min_size: desc.subgroup_min_size,
            subgroup_max_size: desc.subgroup_max_size,
            limits: device.limits(),
        };
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured GPU error: {e}");
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost_sink.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        let pipelines = Pipelines::new(&device, &adapter, granted, opts.pipeline_cache_dir.clone());
        Ok(Gpu {
            device,
            queue,
            adapter,
            desc,
            caps,
            pipelines,
            tuning: RwLock::default(),
            errors,
            lost,
        })
    }

    /// Fail with the first error the device reported outside an error scope, or a lost device.
    pub fn check(&self, kernel: &str) -> Result<()> {
        if let Some(reason) = self.lost.lock().unwrap().clone() {
            return Err(GpuError::DeviceLost { reason });
        }
        let mut errs = self.errors.lock().unwrap();
        if !errs.is_empty() {
            let message = errs.drain(..).collect::<Vec<_>>().join("; ");
            return Err(GpuError::Validation {
                kernel: kernel.to_string(),
                message,
            });
        }
        Ok(())
    }

    /// Run `f` inside validation and out-of-memory error scopes and report what they caught.
    pub async fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = val.pop().await;
        let o = oom.pop().await;
        if let Some(e) = o.or(v) {
            return Err(GpuError::from_wgpu(what, e));
        }
        self.check(what)?;
        Ok(out)
    }

    /// Wait until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::DeviceLost {
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// The launch-shape choices ops consult when they prepare (empty unless set).
    pub fn tuning(&self) -> Arc<crate::tune::Tuning> {
        self.tuning.read().unwrap().clone()
    }

    /// Replace the tuning table; dispatches prepared earlier keep their shapes.
    pub fn set_tuning(&self, tuning: crate::tune::Tuning) {
        *self.tuning.write().unwrap() = Arc::new(tuning);
    }

    /// Save the driver's pipeline cache to disk, when one is in use.
    pub fn save_pipeline_cache(&self) {
        self.pipelines.save_disk_cache();
    }
}

/// Blocking helpers for native code; the browser uses the async functions.
#[cfg(not(target_arch = "wasm32"))]
impl Gpu {
    pub fn open_blocking(opts: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::open(opts))
    }

    /// Every adapter on this machine, opened with `opts` (device choice ignored).
    pub fn open_all_blocking(opts: &GpuOptions) -> Vec<Result<Gpu>> {
        let instance = adapter::instance();
        let adapters = pollster::block_on(adapter::enumerate(&instance));
        adapters
            .into_iter()
            .enumerate()
            .map(|(i, a)| pollster::block_on(Self::from_adapter(i, a, opts)))
            .collect()
    }

    pub fn scoped_blocking<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        pollster::block_on(self.scoped(what, f))
    }
}

/// Descriptions of every adapter on this machine.
pub async fn list_adapters() -> Vec<AdapterDesc> {
    let instance = adapter::instance();
    adapter::enumerate(&instance)
        .await
        .iter()
        .enumerate()
        .map(|(i, a)| AdapterDesc::from_adapter(i, a))
        .collect()
}
