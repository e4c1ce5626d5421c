//! Autotuning: per-device launch shapes (matvec rows / workgroup size, matmul tiles, decode
//! attention splits) chosen by timing candidates, kept in a `Tuning` table the ops consult.
//!
//! The table lives in the `Gpu` (`Gpu::set_tuning`); an empty table (the default, and what
//! tests get) means today's presets everywhere. On native targets it is cached on disk at
//! `<cache>/tune/<key>.json`, where the key hashes the adapter, the driver, the shader sources
//! and the crate version, so a new driver or a changed kernel never reuses stale choices. A
//! missing, unreadable, corrupt or foreign file is ignored: deleting it is always safe.

use serde::{Deserialize, Serialize};

use crate::gpu::{DType, Gpu};
use crate::ops::attention::Attention;
use crate::ops::{MatMulTune, MatVecTune};

#[cfg(not(target_arch = "wasm32"))]
mod cache;
#[cfg(not(target_arch = "wasm32"))]
pub mod tuner;

#[cfg(not(target_arch = "wasm32"))]
pub use cache::{cache_path, load, save, CacheLoad};

/// Version of the file layout; a file of another version is ignored.
pub const FORMAT: u32 = 1;

/// The tuned matvec launch shape for one weight shape.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatVecChoice {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    pub tune: MatVecTune,
    /// Measured time of the preset divided by that of `tune` (1 when the preset was kept).
    pub speedup: f64,
}

/// The tuned prefill matmul tiles for one weight format.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMulChoice {
    pub dtype: DType,
    pub tune: MatMulTune,
    pub speedup: f64,
}

/// Decode attention's head shape and cache length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttnShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub max_ctx: usize,
}

impl AttnShape {
    pub fn of(attn: &Attention, max_ctx: usize) -> Self {
        AttnShape {
            n_heads: attn.n_heads,
            n_kv_heads: attn.n_kv_heads,
            head_dim: attn.head_dim,
            max_ctx,
        }
    }
}

/// The tuned split count (1: single pass) of decode attention for one shape.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttnChoice {
    pub shape: AttnShape,
    pub splits: u32,
    pub speedup: f64,
}

/// Tuned choices for one device. Lookups match exactly; anything absent uses the preset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    #[serde(default)]
    pub matvec: Vec<MatVecChoice>,
    #[serde(default)]
    pub matmul: Vec<MatMulChoice>,
    #[serde(default)]
    pub attention: Vec<AttnChoice>,
}

impl Tuning {
    pub fn is_empty(&self) -> bool {
        self.matvec.is_empty() && self.matmul.is_empty() && self.attention.is_empty()
    }

    pub fn matvec(&self, dtype: DType, rows: usize, cols: usize) -> Option<MatVecTune> {
        self.matvec
            .iter()
            .find(|c| (c.dtype, c.rows, c.cols) == (dtype, rows, cols))
            .map(|c| c.tune)
    }

    pub fn matmul(&self, dtype: DType) -> Option<MatMulTune> {
        self.matmul
            .iter()
            .find(|c| c.dtype == dtype)
            .map(|c| c.tune)
    }

    pub fn attention(&self, shape: AttnShape) -> Option<u32> {
        self.attention
            .iter()
            .find(|c| c.shape == shape)
            .map(|c| c.splits)
    }

    /// Insert or replace one matvec choice.
    pub fn set_matvec(&mut self, c: MatVecChoice) {
        self.matvec
            .retain(|o| (o.dtype, o.rows, o.cols) != (c.dtype, c.rows, c.cols));
        self.matvec.push(c);
    }

    pub fn set_matmul(&mut self, c: MatMulChoice) {
        self.matmul.retain(|o| o.dtype != c.dtype);
        self.matmul.push(c);
    }

    pub fn set_attention(&mut self, c: AttnChoice) {
        self.attention.retain(|o| o.shape != c.shape);
        self.attention.push(c);
    }

    /// `other`'s choices replace this table's for the same keys.
    pub fn merge(&mut self, other: &Tuning) {
        other.matvec.iter().for_each(|c| self.set_matvec(*c));
        other.matmul.iter().for_each(|c| self.set_matmul(*c));
        other.attention.iter().for_each(|c| self.set_attention(*c));
    }
}

/// Split count for decode attention with `Split::Auto`: the device's tuned choice for this
/// shape when it has one the device can run, else `Attention::preset_splits`.
pub fn attention_splits(gpu: &Gpu, attn: &Attention, max_ctx: usize) -> u32 {
    let max = gpu.caps.limits.max_compute_workgroups_per_dimension;
    gpu.tuning()
        .attention(AttnShape::of(attn, max_ctx))
        .filter(|&s| (1..=max).contains(&s))
        .unwrap_or_else(|| attn.preset_splits(gpu, max_ctx))
}

/// What identifies a device and kernel set for the cache: a new driver, another adapter, an
/// edited shader or another tokenmill version all give another key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    pub adapter: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    /// sha256 of every shader source (`shader_hash`).
    pub shaders: String,
    pub version: String,
    /// Shader variants depend on these granted features.
    pub f16: bool,
    pub subgroup: bool,
}

impl DeviceKey {
    pub fn of(gpu: &Gpu) -> Self {
        let d = &gpu.desc;
        DeviceKey {
            adapter: d.name.clone(),
            vendor_id: d.vendor_id,
            device_id: d.device_id,
            backend: d.backend.clone(),
            driver: d.driver.clone(),
            driver_info: d.driver_info.clone(),
            shaders: shader_hash(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            f16: gpu.caps.f16,
            subgroup: gpu.caps.subgroup,
        }
    }

    /// sha256 (hex) over every field, each length-prefixed so no two keys collide by
    /// concatenation.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let fields = [
            self.adapter.as_str(),
            &self.vendor_id.to_string(),
            &self.device_id.to_string(),
            &self.backend,
            &self.driver,
            &self.driver_info,
            &self.shaders,
            &self.version,
            &self.f16.to_string(),
            &self.subgroup.to_string(),
        ];
        for f in fields {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        format!("{:x}", h.finalize())
    }

    /// Cache file stem: the first 16 hex digits of `hash` (the file holds the full hash).
    pub fn file_stem(&self) -> String {
        self.hash()[..16].to_string()
    }
}

/// sha256 (hex) of every shader's name and source (`gpu::shader::SHADERS`).
pub fn shader_hash() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, src) in crate::gpu::shader::SHADERS {
        for part in [name.as_bytes(), src.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    format!("{:x}", h.finalize())
}

/// The on-disk form: the key it was measured under, then the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneFile {
    pub format: u32,
    /// `DeviceKey::hash` of `device`.
    pub key: String,
    pub device: DeviceKey,
    pub tuning: Tuning,
}
