//! What run, chat and bench share: finding the model (fetching the default one), choosing and
//! opening the device, and loading everything with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokenmill::chat::ChatTemplate;
use tokenmill::generate::Session;
use tokenmill::gpu::{list_adapters, DeviceChoice, Gpu, GpuOptions};
use tokenmill::ledger::{self, Objective};
use tokenmill::model::{GgufFile, Llama};
use tokenmill::tokenizer::Tokenizer;

pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// GGUF model file [default: SmolLM2-135M-Instruct Q4_1, fetched on first use]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// auto (best measured in the ledger, else the default rule), an adapter index, or part of its name
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What `--device auto` optimizes: throughput, cost or energy
    #[arg(long, default_value = "throughput")]
    pub objective: Objective,
    /// Context length in tokens (KV cache size)
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Use the preset kernel launch shapes: no tuning cache, no tuning on first use (also
    /// TOKENMILL_NO_TUNE=1)
    #[arg(long)]
    pub no_tune: bool,
}

/// The repository root (for the default model and its fetch script).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model path; the default model is fetched by models/fetch.sh when absent.
pub fn model_path(args: &ModelArgs) -> Result<PathBuf> {
    if let Some(p) = &args.model {
        if !p.is_file() {
            bail!(
                "model file {} not found (expected a GGUF file)",
                p.display()
            );
        }
        return Ok(p.clone());
    }
    let path = repo_root().join(DEFAULT_MODEL);
    if !path.is_file() {
        eprintln!("tokenmill: default model not found; fetching SmolLM2-135M-Instruct (Q4_1) with models/fetch.sh");
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("models/fetch.sh"))
            .status()
            .context("running models/fetch.sh")?;
        if !status.success() || !path.is_file() {
            bail!("fetching the default model failed; run models/fetch.sh by hand or pass --model");
        }
    }
    Ok(path)
}

/// Model identity for the ledger: sha256 of the GGUF header, metadata and tensor table (which
/// name every tensor's type, shape and offset) plus the file length; reading 7 GB of weights
/// on every start to hash them would cost more than the run.
pub fn model_hash(file: &GgufFile) -> String {
    use sha2::{Digest, Sha256};
    let g = file.gguf();
    let mut h = Sha256::new();
    h.update(&file.bytes()[..g.data_offset as usize]);
    h.update(g.file_len.to_le_bytes());
    format!("gguf-sha256:{:x}", h.finalize())
}

pub fn quant_name(file: &GgufFile) -> String {
    let g = file.gguf();
    g.tensor_info("blk.0.attn_q.weight")
        .or_else(|| g.tensors.first())
        .map(|t| t.ty.name().to_lowercase())
        .unwrap_or_else(|| "unknown".into())
}

/// Open the device the user asked for; `auto` asks the ledger for the best measured one.
pub fn open_gpu(args: &ModelArgs, file: &GgufFile, workload: (u32, u32)) -> Result<Gpu> {
    let mut choice: DeviceChoice = args.device.parse().unwrap_or_default();
    if choice == DeviceChoice::Auto {
        let adapters = pollster::block_on(list_adapters());
        let records = ledger::default_ledger_path()
            .filter(|p| p.is_file())
            .and_then(|p| ledger::load(&[p]).ok())
            .map(|l| l.records)
            .unwrap_or_default();
        let key = ledger::WorkloadKey {
            file_hash: model_hash(file),
            quant: quant_name(file),
            prompt_tokens: workload.0,
            gen_tokens: workload.1,
            batch: 1,
            context: args.ctx as u32,
        };
        if let Some(sel) = ledger::select(&adapters, &records, &key, args.objective) {
            log::info!("{}", sel.reason);
            if let Some(hint) = sel.hint {
                eprintln!("tokenmill: {hint}");
            }
            choice = DeviceChoice::Index(sel.index);
        }
    }
    let cache = dirs_cache().map(|d| d.join("pipelines"));
    let opts = GpuOptions {
        device: choice,
        pipeline_cache_dir: cache,
        ..Default::default()
    };
    Ok(Gpu::open_blocking(&opts)?)
}

pub fn dirs_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("tokenmill"))
}

/// Everything a generation needs besides the model (which lives in the `Session`).
pub struct Loaded {
    pub gpu: Gpu,
    pub file: GgufFile,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub load_secs: f64,
}

pub fn load(args: &ModelArgs, workload: (u32, u32)) -> Result<(Loaded, Session)> {
    let start = web_time::Instant::now();
    let path = model_path(args)?;
    let file = GgufFile::open(&path)?;
    let tokenizer = Tokenizer::from_gguf(&file.gguf().metadata)?;
    let template = ChatTemplate::from_gguf(&file.gguf().metadata, &tokenizer).ok();
    let gpu = open_gpu(args, &file, workload)?;
    let tune_cache = super::tune::apply_cache(args, &gpu);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tensors")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(format!(
        "loading {} on {}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        gpu.desc.name
    ));
    let mut model = Llama::load(&gpu, &file, args.ctx, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if super::tune::first_use(&gpu, tune_cache.as_ref(), &model) {
        // The plans were built with the presets: load again with the tuned shapes.
        drop(model);
        model = Llama::load(&gpu, &file, args.ctx, |_, _| {})?;
    }
    gpu.save_pipeline_cache();
    let loaded = Loaded {
        gpu,
        file,
        tokenizer,
        template,
        load_secs: start.elapsed().as_secs_f64(),
    };
    Ok((loaded, Session::new(model)))
}
