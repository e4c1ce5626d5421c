//! One ledger record: a single benchmark run of one model and workload on one adapter.
//! Serialized as one JSON object per line; the README's "Device ledger" section documents it.

use serde::{Deserialize, Serialize};

use crate::gpu::{AdapterDesc, Caps};

/// The record layout this build writes. Readers accept this version and older ones.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    /// When the run finished, RFC 3339 in UTC (`2026-05-01T12:00:00Z`).
    pub time: String,
    pub tokenmill: Build,
    pub host: Host,
    pub adapter: AdapterId,
    pub features: FeaturesUsed,
    pub model: ModelInfo,
    pub workload: Workload,
    pub results: Results,
    pub correctness: Correctness,
    #[serde(default)]
    pub cost: Cost,
}

/// Which tokenmill produced the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub commit: String,
}

impl Build {
    /// This build: the crate version and the commit embedded by build.rs.
    pub fn current() -> Self {
        Build {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: env!("TOKENMILL_GIT_COMMIT").to_string(),
        }
    }
}

/// The machine the run happened on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    /// `linux`, `macos`, `windows`, ... (Rust's `std::env::consts::OS`).
    pub os: String,
    /// Distribution and kernel where readable, else empty.
    pub os_version: String,
    pub arch: String,
}

impl Host {
    /// This machine, from what the OS exposes without extra permissions.
    pub fn current() -> Self {
        Host {
            name: host_name(),
            os: std::env::consts::OS.to_string(),
            os_version: os_version(),
            arch: std::env::consts::ARCH.to_string(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(not(target_arch = "wasm32"))]
fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(not(target_arch = "wasm32"))]
fn os_version() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = read_trimmed("/proc/sys/kernel/osrelease").map(|k| format!("kernel {k}"));
    [pretty, kernel]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(target_arch = "wasm32")]
fn host_name() -> String {
    "browser".into()
}

#[cfg(target_arch = "wasm32")]
fn os_version() -> String {
    String::new()
}

/// The adapter's identity: what `AdapterDesc` says about it, without limits or enumeration index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdapterId {
    pub name: String,
    pub vendor: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
}

impl From<&AdapterDesc> for AdapterId {
    fn from(d: &AdapterDesc) -> Self {
        AdapterId {
            name: d.name.clone(),
            vendor: d.vendor.clone(),
            vendor_id: d.vendor_id,
            device_id: d.device_id,
            device_type: d.device_type.clone(),
            backend: d.backend.clone(),
            driver: d.driver.clone(),
            driver_info: d.driver_info.clone(),
        }
    }
}

impl AdapterId {
    /// The same physical adapter through the same API and driver. The driver version
    /// (`driver_info`) is left out so records survive driver updates.
    pub fn matches(&self, d: &AdapterDesc) -> bool {
        self.name == d.name
            && self.vendor_id == d.vendor_id
            && self.device_id == d.device_id
            && self.backend == d.backend
            && self.driver == d.driver
    }
}

/// Optional GPU features the run used (not merely what the adapter offers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeaturesUsed {
    pub f16: bool,
    pub subgroups: bool,
}

impl From<&Caps> for FeaturesUsed {
    /// The features a device was opened with (`Gpu::caps`), which the kernels then use.
    fn from(c: &Caps) -> Self {
        FeaturesUsed {
            f16: c.f16,
            subgroups: c.subgroup,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub parameters: u64,
    /// Digest of the weights file, `algorithm:hex` (e.g. `sha256:...`): the model's identity.
    pub file_hash: String,
    /// Weight format, e.g. `q4_1`, `q4_k_m`, `f16`.
    pub quant: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub batch: u32,
    /// Context length the KV cache was sized for.
    pub context: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub ttft_ms: f64,
    pub token_latency_p50_ms: f64,
    pub token_latency_p95_ms: f64,
    /// Bytes of GPU memory the run allocated, when known.
    pub gpu_memory_bytes: Option<u64>,
    /// Bytes read and written per decoded token / time per token.
    pub achieved_gb_s: Option<f64>,
    /// The adapter's bandwidth as measured by tokenmill's own bandwidth kernel.
    pub device_gb_s: Option<f64>,
    /// achieved_gb_s / device_gb_s.
    pub roofline_fraction: Option<f64>,
}

/// Whether the run's output matched the reference; failed runs are never ranked or selected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    pub passed: bool,
    pub detail: String,
}

/// Cost figures, each present only when a price or a power figure was given or readable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub price_per_hour_usd: Option<f64>,
    /// USD per 1M generated tokens at the decode rate.
    pub usd_per_mtok: Option<f64>,
    /// Average power during the run.
    pub watts: Option<f64>,
    /// Where `watts` came from: `given`, or the sensor path (e.g. `hwmon:/sys/...`).
    pub power_source: Option<String>,
    /// watts / decode tok/s.
    pub joules_per_token: Option<f64>,
}

/// Identical workloads: only records with equal keys are ever ranked against each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub file_hash: String,
    pub quant: String,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub batch: u32,
    pub context: u32,
}

impl WorkloadKey {
    /// The fields in which two keys differ, as `name (a vs b)` phrases.
    pub fn differences(&self, other: &WorkloadKey) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name} ({a} vs {b})"));
            }
        };
        diff(
            "model file hash",
            short_hash(&self.file_hash),
            short_hash(&other.file_hash),
        );
        diff("quant", self.quant.clone(), other.quant.clone());
        diff(
            "prompt tokens",
            self.prompt_tokens.to_string(),
            other.prompt_tokens.to_string(),
        );
        diff(
            "generated tokens",
            self.gen_tokens.to_string(),
            other.gen_tokens.to_string(),
        );
        diff("batch", self.batch.to_string(), other.batch.to_string());
        diff(
            "context",
            self.context.to_string(),
            other.context.to_string(),
        );
        out
    }
}

/// `sha256:0123456789ab…` shortened to the algorithm and 12 hex digits.
pub fn short_hash(h: &str) -> String {
    let (alg, hex) = h.split_once(':').unwrap_or(("", h));
    let cut: String = hex.chars().take(12).collect();
    let ell = if hex.chars().count() > 12 { "…" } else { "" };
    if alg.is_empty() {
        format!("{cut}{ell}")
    } else {
        format!("{alg}:{cut}{ell}")
    }
}

/// How devices are grouped when comparing: by vendor, by adapter (name and backend), or backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    Vendor,
    #[default]
    Device,
    Backend,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vendor" => Ok(GroupBy::Vendor),
            "device" => Ok(GroupBy::Device),
            "backend" => Ok(GroupBy::Backend),
            _ => Err(format!("`{s}`: expected vendor, device or backend")),
        }
    }
}

impl Record {
    pub fn workload_key(&self) -> WorkloadKey {
        WorkloadKey {
            file_hash: self.model.file_hash.clone(),
            quant: self.model.quant.clone(),
            prompt_tokens: self.workload.prompt_tokens,
            gen_tokens: self.workload.gen_tokens,
            batch: self.workload.batch,
            context: self.workload.context,
        }
    }

    /// The label this record's device is grouped under.
    pub fn device_key(&self, by: GroupBy) -> String {
        match by {
            GroupBy::Vendor => self.adapter.vendor.clone(),
            GroupBy::Device => format!("{} ({})", self.adapter.name, self.adapter.backend),
            GroupBy::Backend => self.adapter.backend.clone(),
        }
    }

    /// One JSON line without the trailing newline.
    pub fn to_json_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Current UTC time as RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    let secs = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Seconds since 1970 to `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, days-from-civil inverse).
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
