//! Adapter discovery: every adapter on every backend, described in a serializable form.

use serde::{Deserialize, Serialize};

use super::error::{GpuError, Result};

/// What the user and the ledger need to know about one adapter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdapterDesc {
    pub index: usize,
    pub name: String,
    pub vendor: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    pub features: Vec<String>,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub software: bool,
}

/// Vendor name from a PCI vendor id (or the ids Vulkan uses for software drivers).
pub fn vendor_name(id: u32) -> &'static str {
    match id {
        0x10de => "NVIDIA",
        0x1002 | 0x1022 => "AMD",
        0x8086 => "Intel",
        0x106b => "Apple",
        0x13b5 => "ARM",
        0x5143 => "Qualcomm",
        0x1010 => "ImgTec",
        0x10005 => "Mesa",
        0x1414 => "Microsoft",
        _ => "unknown",
    }
}

/// Optional features tokenmill uses when present.
pub(crate) fn interesting_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SHADER_INT64
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::PIPELINE_CACHE
}

impl AdapterDesc {
    pub fn from_adapter(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features() & interesting_features();
        let software = info.device_type == wgpu::DeviceType::Cpu
            || [
                "llvmpipe",
                "lavapipe",
                "swiftshader",
                "warp",
                "basic render",
            ]
            .iter()
            .any(|s| info.name.to_lowercase().contains(s));
        AdapterDesc {
            index,
            name: info.name.clone(),
            vendor: vendor_name(info.vendor).to_string(),
            vendor_id: info.vendor,
            device_id: info.device,
            device_type: format!("{:?}", info.device_type),
            backend: info.backend.to_str().to_string(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            software,
        }
    }

    /// Rank for automatic selection without measurements: discrete, integrated, virtual,
    /// other, then software rasterizers last. Lower is better.
    pub fn default_rank(&self) -> u32 {
        if self.software {
            return 4;
        }
        match self.device_type.as_str() {
            "DiscreteGpu" => 0,
            "IntegratedGpu" => 1,
            "VirtualGpu" => 2,
            _ => 3,
        }
    }
}

pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// All adapters on all backends, in enumeration order.
pub async fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    instance.enumerate_adapters(wgpu::Backends::all()).await
}

/// Which adapter to use: `auto`, an index, or a case-insensitive substring of the name.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Index(usize),
    Name(String),
}

impl std::str::FromStr for DeviceChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(if s.eq_ignore_ascii_case("auto") {
            DeviceChoice::Auto
        } else if let Ok(i) = s.parse() {
            DeviceChoice::Index(i)
        } else {
            DeviceChoice::Name(s.to_string())
        })
    }
}

/// Pick one adapter from `adapters` by `choice`.
pub fn choose(adapters: Vec<wgpu::Adapter>, choice: &DeviceChoice) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter {
            backends: format!("{:?}", wgpu::Backends::all()),
        });
    }
    let descs: Vec<AdapterDesc> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| AdapterDesc::from_adapter(i, a))
        .collect();
    let available = || {
        descs
            .iter()
            .map(|d| format!("{}: {} ({})", d.index, d.name, d.backend))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index = match choice {
        DeviceChoice::Auto => descs
            .iter()
            .min_by_key(|d| (d.default_rank(), backend_rank(&d.backend), d.index))
            .map(|d| d.index),
        DeviceChoice::Index(i) => descs.iter().find(|d| d.index == *i).map(|d| d.index),
        DeviceChoice::Name(n) => {
            let n = n.to_lowercase();
            descs
                .iter()
                .find(|d| d.name.to_lowercase().contains(&n))
                .map(|d| d.index)
        }
    };
    let Some(index) = index else {
        let query = match choice {
            DeviceChoice::Index(i) => i.to_string(),
            DeviceChoice::Name(n) => n.clone(),
            DeviceChoice::Auto => "auto".into(),
        };
        return Err(GpuError::AdapterNotFound {
            query,
            available: available(),
        });
    };
    Ok(adapters.into_iter().nth(index).expect("index from descs"))
}

/// Prefer the native compute APIs over GL when the same GPU appears twice.
pub fn backend_rank(backend: &str) -> u32 {
    match backend {
        "vulkan" | "metal" | "dx12" | "webgpu" => 0,
        _ => 1,
    }
}
