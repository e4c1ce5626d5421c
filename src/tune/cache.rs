//! The tuning cache on disk: `<dir>/tune/<key>.json`, written atomically, read defensively.

use std::path::{Path, PathBuf};

use super::{DeviceKey, TuneFile, Tuning, FORMAT};

/// Where the tuning of the device `key` lives under the cache directory `dir`.
pub fn cache_path(dir: &Path, key: &DeviceKey) -> PathBuf {
    dir.join("tune").join(format!("{}.json", key.file_stem()))
}

/// What `load` found.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheLoad {
    /// A file for this key.
    Hit(Tuning),
    /// No file: nothing tuned yet (or the cache was deleted).
    Missing,
    /// A file that cannot be used (unreadable, corrupt, truncated, another key or format);
    /// the reason. It is overwritten by the next save.
    Ignored(String),
}

impl CacheLoad {
    pub fn tuning(self) -> Option<Tuning> {
        match self {
            CacheLoad::Hit(t) => Some(t),
            _ => None,
        }
    }
}

/// Read the tuning for `key` from `path`. Never fails: anything unusable is logged and
/// reported as `Missing` or `Ignored`, and the presets stay in force.
pub fn load(path: &Path, key: &DeviceKey) -> CacheLoad {
    let r = read(path, key);
    match &r {
        CacheLoad::Hit(t) => log::info!(
            "tuning: {} ({} matvec, {} matmul, {} attention choices)",
            path.display(),
            t.matvec.len(),
            t.matmul.len(),
            t.attention.len()
        ),
        CacheLoad::Missing => log::info!("tuning: no cache at {}", path.display()),
        CacheLoad::Ignored(why) => {
            log::warn!("tuning: ignoring {} ({why}); using presets", path.display())
        }
    }
    r
}

fn read(path: &Path, key: &DeviceKey) -> CacheLoad {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CacheLoad::Missing,
        Err(e) => return CacheLoad::Ignored(format!("unreadable: {e}")),
    };
    let file: TuneFile = match serde_json::from_str(&text) {
        Ok(f) => f,
        Err(e) => return CacheLoad::Ignored(format!("not a tuning file: {e}")),
    };
    if file.format != FORMAT {
        return CacheLoad::Ignored(format!("format {}, expected {FORMAT}", file.format));
    }
    let want = key.hash();
    if file.key != want || file.device.hash() != want {
        return CacheLoad::Ignored(format!(
            "made for another device, driver or shader set (key {}, expected {want})",
            file.key
        ));
    }
    CacheLoad::Hit(file.tuning)
}

/// Write `tuning` for `key` to `path` atomically: a temporary file beside it, then a rename,
/// so a reader never sees half a file.
pub fn save(path: &Path, key: &DeviceKey, tuning: &Tuning) -> std::io::Result<()> {
    let file = TuneFile {
        format: FORMAT,
        key: key.hash(),
        device: key.clone(),
        tuning: tuning.clone(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
