//! `tokenmill tune`: time launch-shape candidates for the model's shapes on one device, print
//! what was measured and cache the choices; plus the first-use tuning `load` runs.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokenmill::gpu::Gpu;
use tokenmill::model::{GgufFile, Llama};
use tokenmill::tune::tuner::{self, Report, TuneOptions, Workload};
use tokenmill::tune::{self, CacheLoad, DeviceKey, Tuning};

use super::load::{dirs_cache, model_path, open_gpu, ModelArgs};

#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Retune every shape, replacing cached choices
    #[arg(long)]
    pub force: bool,
    /// Candidates per shape at most (the preset included)
    #[arg(long, default_value_t = 12)]
    pub max_candidates: usize,
    /// Timed submissions per candidate (the median counts)
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
}

/// Where this device's tuning is cached, and what the cache held.
pub struct TuneCache {
    pub path: PathBuf,
    pub key: DeviceKey,
    pub tuning: Tuning,
}

/// Whether tuning is switched off (`--no-tune` or TOKENMILL_NO_TUNE=1).
fn disabled(args: &ModelArgs) -> bool {
    args.no_tune || std::env::var("TOKENMILL_NO_TUNE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Read this device's cached tuning and give it to `gpu` (before the model builds its plans).
/// `None` when tuning is off or there is no cache directory.
pub fn apply_cache(args: &ModelArgs, gpu: &Gpu) -> Option<TuneCache> {
    if disabled(args) {
        log::info!("tuning off: preset launch shapes");
        return None;
    }
    let key = DeviceKey::of(gpu);
    let path = tune::cache_path(&dirs_cache()?, &key);
    let tuning = tune::load(&path, &key).tuning().unwrap_or_default();
    gpu.set_tuning(tuning.clone());
    Some(TuneCache { path, key, tuning })
}

/// First use: tune the shapes of `model` the cache has no choice for, save and apply the
/// result. Returns whether a choice differs from the presets, in which case the model's plans
/// (built with the old table) must be rebuilt. A failure leaves the presets and only warns.
pub fn first_use(gpu: &Gpu, cache: Option<&TuneCache>, model: &Llama) -> bool {
    let Some(cache) = cache else {
        return false;
    };
    let work = Workload::of_model(model).missing(&cache.tuning);
    if work.is_empty() {
        return false;
    }
    eprintln!(
        "tokenmill: tuning kernel launch shapes for {} ({} shapes, once; --no-tune skips, `tokenmill tune` shows the details)",
        gpu.desc.name,
        work.len()
    );
    let (new, reports) = match run_with_bar(gpu, &work, &TuneOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("tuning failed, using the presets: {e}");
            return false;
        }
    };
    let mut tuning = cache.tuning.clone();
    tuning.merge(&new);
    save(&cache.path, &cache.key, &tuning);
    gpu.set_tuning(tuning);
    for r in &reports {
        log::info!(
            "tuned {} {}: {} ({:.2}x the preset {})",
            r.op,
            r.shape,
            r.trials[r.chosen].label,
            r.speedup(),
            r.trials[0].label
        );
    }
    reports.iter().any(|r| r.chosen != 0)
}

fn save(path: &std::path::Path, key: &DeviceKey, tuning: &Tuning) {
    match tune::save(path, key, tuning) {
        Ok(()) => log::info!("tuning saved to {}", path.display()),
        Err(e) => log::warn!("could not save the tuning to {}: {e}", path.display()),
    }
}

fn run_with_bar(
    gpu: &Gpu,
    work: &Workload,
    opts: &TuneOptions,
) -> tokenmill::gpu::Result<(Tuning, Vec<Report>)> {
    let bar = ProgressBar::new(work.len() as u64).with_style(
        ProgressStyle::with_template("tuning {msg:28} [{bar:30}] {pos}/{len} shapes")
            .unwrap()
            .progress_chars("=> "),
    );
    let out = tuner::run(gpu, work, opts, |done, _, what| {
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    out
}

/// The measurements of one shape as a small table.
fn table(r: &Report) -> String {
    let mut s = format!("{} {}\n", r.op, r.shape);
    s += &format!(
        "  {:<26} {:>10} {:>9} {:>9}\n",
        "candidate", "µs", r.unit, "vs preset"
    );
    for (i, t) in r.trials.iter().enumerate() {
        let mark = match (i == 0, i == r.chosen) {
            (true, true) => "preset, kept",
            (true, false) => "preset",
            (false, true) => "chosen",
            _ => "",
        };
        s += &format!(
            "  {:<26} {:>10.1} {:>9.2} {:>8.2}x  {mark}\n",
            t.label,
            t.secs * 1e6,
            r.rate(t),
            r.trials[0].secs / t.secs
        );
    }
    if let Some([preset, best]) = r.confirm {
        // The head-to-head pits the preset against the first round's fastest.
        let label = r
            .trials
            .iter()
            .min_by(|a, b| a.secs.total_cmp(&b.secs))
            .map_or("", |t| t.label.as_str());
        s += &format!(
            "  head-to-head: preset {:.1} µs, {label} {:.1} µs ({:.2}x): {}\n",
            preset * 1e6,
            best * 1e6,
            preset / best,
            if r.chosen == 0 {
                "preset kept"
            } else {
                "chosen"
            }
        );
    }
    for x in &r.rejected {
        s += &format!("  {x}: left out\n");
    }
    s
}

pub fn run(args: TuneArgs) -> Result<()> {
    if disabled(&args.model) {
        bail!("tuning is switched off (--no-tune or TOKENMILL_NO_TUNE); nothing to do");
    }
    let path = model_path(&args.model)?;
    let file = GgufFile::open(&path)?;
    let gpu = open_gpu(&args.model, &file, (0, 0))?;
    let key = DeviceKey::of(&gpu);
    let Some(dir) = dirs_cache() else {
        bail!("no cache directory: set HOME or XDG_CACHE_HOME");
    };
    let cache_path = tune::cache_path(&dir, &key);
    let cached = if args.force {
        Tuning::default()
    } else {
        match tune::load(&cache_path, &key) {
            CacheLoad::Hit(t) => t,
            CacheLoad::Missing => Tuning::default(),
            CacheLoad::Ignored(why) => {
                eprintln!("tokenmill: ignoring {} ({why})", cache_path.display());
                Tuning::default()
            }
        }
    };
    let all = {
        let model = Llama::load(&gpu, &file, args.model.ctx, |_, _| {})?;
        Workload::of_model(&model)
    };
    let work = all.missing(&cached);
    super::print(&format!(
        "device: {} ({}, {} {})\nmodel: {}\ncache: {}\n\n",
        gpu.desc.name,
        gpu.desc.backend,
        gpu.desc.driver,
        gpu.desc.driver_info,
        path.display(),
        cache_path.display()
    ))?;
    let opts = TuneOptions {
        max_candidates: args.max_candidates,
        repeats: args.repeats,
        ..Default::default()
    };
    let (new, reports) = run_with_bar(&gpu, &work, &opts)?;
    for r in &reports {
        super::print(&(table(r) + "\n"))?;
    }
    let mut tuning = cached;
    let kept = all.len() - work.len();
    if kept > 0 {
        super::print(&format!(
            "{kept} shapes already tuned (cached; --force retunes them)\n"
        ))?;
    }
    tuning.merge(&new);
    tune::save(&cache_path, &key, &tuning)?;
    let changed = reports.iter().filter(|r| r.chosen != 0).count();
    super::print(&format!(
        "{} shapes tuned, {changed} away from the preset; saved {}\n",
        reports.len(),
        cache_path.display()
    ))?;
    Ok(())
}
