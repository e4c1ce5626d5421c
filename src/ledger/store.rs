//! The ledger file: JSON lines, appended under an exclusive lock, read back line by line with
//! malformed lines reported (file:line) and skipped.

use super::record::{Record, SCHEMA_VERSION};

#[cfg(not(target_arch = "wasm32"))]
use super::LedgerError;
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

/// A ledger line that could not be used.
#[derive(Clone, Debug, PartialEq)]
pub struct LineError {
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Records read from one or more ledgers, and the lines that were skipped.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub errors: Vec<LineError>,
}

/// Parses ledger text; `source` names it in errors. Blank lines are ignored.
pub fn parse(bytes: &[u8], source: &str) -> Loaded {
    let mut out = Loaded::default();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let fail = |message: String| LineError {
            file: source.to_string(),
            line: i + 1,
            message,
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            out.errors.push(fail("not valid UTF-8".into()));
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(r) => out.records.push(r),
            Err(m) => out.errors.push(fail(m)),
        }
    }
    out
}

fn parse_line(text: &str) -> Result<Record, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        format!("not a JSON object: {msg} (column {})", e.column())
    })?;
    let Some(obj) = value.as_object() else {
        return Err("not a JSON object".into());
    };
    match obj.get("schema_version").and_then(|v| v.as_u64()) {
        None => return Err("no schema_version (not a tokenmill ledger record?)".into()),
        Some(v) if v > u64::from(SCHEMA_VERSION) => {
            return Err(format!(
                "schema version {v} is newer than this tokenmill reads ({SCHEMA_VERSION})"
            ))
        }
        Some(_) => {}
    }
    serde_json::from_value(value).map_err(|e| format!("not a valid record: {e}"))
}

impl Loaded {
    pub fn extend(&mut self, other: Loaded) {
        self.records.extend(other.records);
        self.errors.extend(other.errors);
    }
}

/// The platform's per-user data directory: `$XDG_DATA_HOME` or `~/.local/share` on Linux and
/// other Unix, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
#[cfg(not(target_arch = "wasm32"))]
pub fn data_dir() -> Option<PathBuf> {
    let env_path = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if cfg!(windows) {
        return env_path("APPDATA");
    }
    let home = env_path("HOME");
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Application Support"));
    }
    env_path("XDG_DATA_HOME").or_else(|| home.map(|h| h.join(".local/share")))
}

/// `<data dir>/tokenmill/ledger.jsonl`; None when no data directory can be determined.
#[cfg(not(target_arch = "wasm32"))]
pub fn default_ledger_path() -> Option<PathBuf> {
    data_dir().map(|d| d.join("tokenmill").join("ledger.jsonl"))
}

/// Appends one record as one line. Safe with concurrent writers (threads or processes): the
/// whole line is written with one `write_all` on an O_APPEND handle while holding an exclusive
/// lock, and a torn last line left by a crashed writer is closed off first.
#[cfg(not(target_arch = "wasm32"))]
pub fn append(path: &Path, record: &Record) -> Result<(), LedgerError> {
    append_all(path, std::slice::from_ref(record))
}

/// Appends several records in one locked write.
#[cfg(not(target_arch = "wasm32"))]
pub fn append_all(path: &Path, records: &[Record]) -> Result<(), LedgerError> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let io = |cause| LedgerError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut buf = String::new();
    for r in records {
        buf += &r.to_json_line()?;
        buf.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1)).map_err(io)?;
        file.read_exact(&mut last).map_err(io)?;
        if last[0] != b'\n' {
            buf.insert(0, '\n');
        }
    }
    let written = file.write_all(buf.as_bytes()).map_err(io);
    // Closing the handle releases the lock too; unlock explicitly to keep the order obvious.
    let unlocked = file.unlock().map_err(io);
    written.and(unlocked)
}

/// Reads every ledger in `paths` (each under a shared lock, so no half-written line is seen).
/// Malformed lines are returned in `errors` and skipped; an unreadable file is an error.
#[cfg(not(target_arch = "wasm32"))]
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Loaded, LedgerError> {
    let mut out = Loaded::default();
    for p in paths {
        out.extend(load_file(p.as_ref())?);
    }
    Ok(out)
}

#[cfg(not(target_arch = "wasm32"))]
fn load_file(path: &Path) -> Result<Loaded, LedgerError> {
    use std::io::Read;
    let io = |cause| LedgerError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.lock_shared().map_err(io)?;
    let mut bytes = Vec::new();
    let read = file.read_to_end(&mut bytes).map_err(io);
    file.unlock().map_err(io)?;
    read?;
    Ok(parse(&bytes, &path.display().to_string()))
}
