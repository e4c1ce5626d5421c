//! The device ledger: benchmark records (JSON lines), comparison across devices and vendors,
//! an HTML report, cost per token, and device selection from measurements.

pub mod compare;
pub mod cost;
pub mod record;
pub mod report;
pub mod select;
pub mod stats;
pub mod store;

pub use compare::{compare, CompareOptions, Comparison, DeviceRow, Excluded, WorkloadGroup};
pub use record::{
    AdapterId, Build, Correctness, Cost, FeaturesUsed, GroupBy, Host, ModelInfo, Record, Results,
    Workload, WorkloadKey, SCHEMA_VERSION,
};
pub use select::{select, Basis, Objective, Selection};
#[cfg(not(target_arch = "wasm32"))]
pub use store::{append, append_all, default_ledger_path, load};
pub use store::{parse, LineError, Loaded};

/// Ledger failures that stop an operation (malformed lines are not errors: see `LineError`).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The cause is part of the message (not a `source`), so `{:#}` chains don't repeat it.
    #[error("ledger {path}: {cause}")]
    Io {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot serialize a ledger record: {0}")]
    Json(#[from] serde_json::Error),
}
