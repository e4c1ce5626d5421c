//! The tuner: for each shape a model runs, time a small set of launch shapes on synthetic data
//! of that shape and format, check each against the preset's output, and keep the preset unless
//! a candidate is clearly faster.
//!
//! Each candidate is timed as the median over `repeats` submissions of K back-to-back launches
//! (K chosen so one submission takes about `target_secs`), the candidates taking turns in every
//! round so drift on a shared machine hits them alike. Matvec launches cycle over several
//! copies of the weights so they are read from memory, as in decode, not from a cache.

use std::time::Instant;

use crate::gpu::{ChunkedTensor, DType, Dispatch, Gpu, GpuError, GpuTensor, Result};
use crate::model::Llama;
use crate::ops::attention::{Attention, Split};
use crate::ops::bandwidth::median;
use crate::ops::kv_cache::KvCache;
use crate::ops::{MatMul, MatMulTune, MatVecTune, QMatVec, StepParams};

use super::{AttnChoice, AttnShape, MatMulChoice, MatVecChoice, Tuning};

/// How hard to try. `Default` suits `tokenmill tune`; tests shrink it.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Candidates per shape at most, the preset included.
    pub max_candidates: usize,
    /// Timed submissions per candidate (the median counts).
    pub repeats: usize,
    /// Seconds of work one timed submission should take (sets K).
    pub target_secs: f64,
    /// Launches per submission at most.
    pub max_per_submit: usize,
    /// Bytes the cycled weight copies of one matvec shape should span at most.
    pub span_bytes: u64,
    /// A candidate replaces the preset only when the preset takes this fraction longer.
    pub min_gain: f64,
    /// Matvec candidates instead of `matvec_candidates` (the preset is always added).
    pub matvec_candidates: Option<Vec<MatVecTune>>,
    /// Matmul candidates instead of `matmul_candidates(gpu)`.
    pub matmul_candidates: Option<Vec<MatMulTune>>,
    /// Decode attention split counts instead of `split_candidates(..)`.
    pub split_candidates: Option<Vec<u32>>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            max_candidates: 12,
            repeats: 7,
            target_secs: 0.04,
            max_per_submit: 128,
            span_bytes: 48 << 20,
            min_gain: 0.03,
            matvec_candidates: None,
            matmul_candidates: None,
            split_candidates: None,
        }
    }
}

/// What to tune: the shapes one model uses on one device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// Decode matvecs: (weight format, rows, cols).
    pub matvec: Vec<(DType, usize, usize)>,
    /// Prefill rows per chunk (M of the matmuls).
    pub matmul_m: usize,
    /// Prefill matmuls: per weight format, its `[N, K]` weight shapes (timed together).
    pub matmul: Vec<(DType, Vec<(usize, usize)>)>,
    /// Decode attention shapes.
    pub attention: Vec<AttnShape>,
}

impl Workload {
    /// The shapes `model` runs: its decode matvecs (`Llama::matvec_shapes`), the same
    /// weights as prefill matmuls (all but the output head, which runs on one row), and its
    /// decode attention at its context length.
    pub fn of_model(model: &Llama) -> Workload {
        let matvec = model.matvec_shapes();
        let head = model.weights.lm_head();
        let head = (head.dtype, head.shape[0], head.shape[1]);
        let mut matmul: Vec<(DType, Vec<(usize, usize)>)> = Vec::new();
        for &(dt, n, k) in matvec.iter().filter(|&&s| s != head) {
            match matmul.iter_mut().find(|(d, _)| *d == dt) {
                Some((_, shapes)) => shapes.push((n, k)),
                None => matmul.push((dt, vec![(n, k)])),
            }
        }
        let c = &model.cfg;
        let attn = Attention::new(c.n_heads, c.n_kv_heads, c.head_dim);
        Workload {
            matvec,
            matmul_m: model.max_batch,
            matmul,
            attention: vec![AttnShape::of(&attn, model.ctx())],
        }
    }

    /// The part of this workload `t` has no choice for.
    pub fn missing(&self, t: &Tuning) -> Workload {
        Workload {
            matvec: self
                .matvec
                .iter()
                .copied()
                .filter(|&(d, r, c)| t.matvec(d, r, c).is_none())
                .collect(),
            matmul_m: self.matmul_m,
            matmul: self
                .matmul
                .iter()
                .filter(|(d, _)| t.matmul(*d).is_none())
                .cloned()
                .collect(),
            attention: self
                .attention
                .iter()
                .copied()
                .filter(|&s| t.attention(s).is_none())
                .collect(),
        }
    }

    /// Shapes to tune (progress units).
    pub fn len(&self) -> usize {
        self.matvec.len() + self.matmul.len() + self.attention.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One candidate's measurement.
#[derive(Clone, Debug)]
pub struct Trial {
    pub label: String,
    /// Median seconds per launch (matvec), per set of a format's matmuls, or per attention.
    pub secs: f64,
}

/// The measurements for one shape.
#[derive(Clone, Debug)]
pub struct Report {
    /// "matvec", "matmul" or "attention".
    pub op: &'static str,
    /// The shape, e.g. "q4_1 576x1536".
    pub shape: String,
    /// Units of work per timed launch (bytes for GB/s, flops for GFLOP/s).
    pub work: f64,
    /// "GB/s" or "GFLOP/s".
    pub unit: &'static str,
    /// Every candidate that ran; the preset is first.
    pub trials: Vec<Trial>,
    /// Index of the kept one in `trials`.
    pub chosen: usize,
    /// Seconds of the preset and of the round's fastest in a second, longer head-to-head run,
    /// made when the fastest beat the preset in the first round; it decides.
    pub confirm: Option<[f64; 2]>,
    /// Candidates left out because they failed to build or disagreed with the preset.
    pub rejected: Vec<String>,
}

impl Report {
    /// Preset time over chosen time (from the head-to-head run); 1 when the preset is kept.
    pub fn speedup(&self) -> f64 {
        match (self.chosen, self.confirm) {
            (0, _) => 1.0,
            (_, Some([preset, chosen])) => preset / chosen,
            (c, None) => self.trials[0].secs / self.trials[c].secs,
        }
    }

    /// Work per second of `t`, in `unit`'s scale (1e9).
    pub fn rate(&self, t: &Trial) -> f64 {
        self.work / t.secs / 1e9
    }
}

/// Matvec launch shapes worth trying on `gpu` for `rows` output rows, the preset first.
/// CPU-backed adapters get a small one-thread-per-row-group set (every new pipeline costs a
/// compile there) after the preset, which spreads the rows evenly over one workgroup per host
/// thread.
pub fn matvec_candidates(gpu: &Gpu, rows: usize) -> Vec<MatVecTune> {
    let t = |wg, tpr, rows| MatVecTune { wg, tpr, rows };
    let mut v = vec![MatVecTune::preset(gpu, rows)];
    if gpu.desc.software {
        for wg in [8, 16] {
            for rows in [64, 32, 16] {
                v.push(t(wg, 1, rows));
            }
        }
    } else {
        v.extend([
            t(32, 32, 1),
            t(32, 32, 2),
            t(64, 64, 1),
            t(64, 64, 4),
            t(128, 128, 1),
            t(128, 128, 2),
            t(256, 256, 1),
            t(64, 32, 2),
            t(128, 32, 2),
            t(256, 32, 1),
            t(128, 16, 4),
            t(256, 16, 2),
        ]);
    }
    v
}

/// Matmul tiles worth trying on `gpu`, the preset first (each adjusted to the device).
pub fn matmul_candidates(gpu: &Gpu) -> Vec<MatMulTune> {
    let cpu = MatMulTune::CPU;
    let gpu_t = MatMulTune::GPU;
    let v = if gpu.desc.software {
        vec![
            cpu,
            MatMulTune { bk: 32, ..cpu },
            MatMulTune { tn: 2, ..cpu },
            MatMulTune {
                subgroup_a: false,
                ..cpu
            },
            MatMulTune {
                bk: 32,
                f16_tiles: false,
                ..cpu
            },
        ]
    } else {
        vec![
            gpu_t,
            MatMulTune {
                f16_math: false,
                ..gpu_t
            },
            MatMulTune { bk: 64, ..gpu_t },
            MatMulTune {
                wg_n: 8,
                wg_m: 8,
                tm: 8,
                ..gpu_t
            },
            MatMulTune {
                wg_n: 16,
                wg_m: 8,
                tm: 8,
                ..gpu_t
            },
            MatMulTune {
                wg_n: 32,
                wg_m: 8,
                tn: 2,
                ..gpu_t
            },
            MatMulTune {
                f16_tiles: false,
                f16_math: false,
                ..gpu_t
            },
            cpu,
        ]
    };
    v.into_iter().map(|t| t.fit(gpu)).collect()
}

/// Split counts worth trying for a cache of `max_ctx`, the preset (`auto_splits`) first.
pub fn split_candidates(max_ctx: usize) -> Vec<u32> {
    let mut v = vec![Attention::auto_splits(max_ctx)];
    v.extend(
        [1, 2, 4, 8, 16, 32]
            .into_iter()
            .filter(|&n| n as usize <= max_ctx),
    );
    v
}

/// `v` without repeats (first kept), cut to `max`.
fn dedup<T: PartialEq>(v: Vec<T>, max: usize) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out.truncate(max.max(1));
    out
}

/// Deterministic pseudo-random generator (xorshift64*), enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random `[rows, cols]` weights in `dtype`'s bytes: random quant codes with small, valid f16
/// scales (and mins), or values in [-1, 1) for plain formats. `cols` must be whole blocks.
pub fn synthetic_weights(dtype: DType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let n = rows * cols;
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    match dtype {
        DType::F32 => (0..n).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        DType::F16 => (0..n).flat_map(|_| f16(rng.unit())).collect(),
        DType::U32 => (0..n)
            .flat_map(|_| (rng.next() as u32).to_le_bytes())
            .collect(),
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => {
            let bb = dtype.block_bytes();
            let mut out = vec![0u8; n / 32 * bb];
            for block in out.chunks_mut(bb) {
                for chunk in block.chunks_mut(8) {
                    let r = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
                let scale = if dtype == DType::Q8_0 { 0.01 } else { 0.1 };
                block[..2].copy_from_slice(&f16(scale * (1.0 + 0.5 * rng.unit())));
                if dtype == DType::Q4_1 {
                    block[2..4].copy_from_slice(&f16(-0.75 + 0.1 * rng.unit()));
                }
            }
            out
        }
    }
}

fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.unit()).collect()
}

/// Whether `got` matches `want` within `rel` of the largest |want| (rounding differences of
/// another summation order or tile precision pass; misread data does not).
fn agrees(got: &[f32], want: &[f32], rel: f32) -> bool {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = rel * scale + 1e-5;
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= tol && g.is_finite())
}

/// Seconds one run of `set` takes (after one untimed run that also compiles and warms).
fn time_once(gpu: &Gpu, set: &[Dispatch]) -> Result<f64> {
    gpu.run(set)?;
    let t = Instant::now();
    gpu.run(set)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Median seconds per submission of each set, candidates taking turns every round.
fn time_sets(gpu: &Gpu, sets: &[&[Dispatch]], repeats: usize) -> Result<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(repeats); sets.len()];
    for _ in 0..repeats.max(1) {
        for (set, s) in sets.iter().zip(&mut samples) {
            let t = Instant::now();
            gpu.submit(set)?;
            gpu.wait()?;
            s.push(t.elapsed().as_secs_f64());
        }
    }
    gpu.check("tune")?;
    Ok(samples.iter_mut().map(|s| median(s)).collect())
}

/// Launches per submission so that one takes about `opts.target_secs`.
fn per_submit(opts: &TuneOptions, one: f64) -> usize {
    ((opts.target_secs / one.max(1e-7)).ceil() as usize).clamp(1, opts.max_per_submit.max(1))
}

/// The index kept: the fastest, if it beats the preset (index 0) by more than `min_gain`.
fn choose(secs: &[f64], min_gain: f64) -> usize {
    let best = (0..secs.len())
        .min_by(|&a, &b| secs[a].total_cmp(&secs[b]))
        .unwrap_or(0);
    if secs[0] > secs[best] * (1.0 + min_gain) {
        best
    } else {
        0
    }
}

/// What `measure` found for candidates (index 0 the preset).
struct Measured<C> {
    cands: Vec<C>,
    trials: Vec<Trial>,
    chosen: usize,
    confirm: Option<[f64; 2]>,
    rejected: Vec<String>,
}

impl<C: Copy> Measured<C> {
    fn choice(&self) -> C {
        self.cands[self.chosen]
    }

    fn report(&self, op: &'static str, shape: String, work: f64, unit: &'static str) -> Report {
        Report {
            op,
            shape,
            work,
            unit,
            trials: self.trials.clone(),
            chosen: self.chosen,
            confirm: self.confirm,
            rejected: self.rejected.clone(),
        }
    }
}

/// Time `cands` (labelled; index 0 the preset); `build(c, i)` gives the dispatches of launch
/// `i` of candidate `c`, `read` the output after a run. A candidate that fails to build or
/// whose output differs from the preset's by more than `rel` (`agrees`) is left out. The fastest replaces the preset only
/// if it wins by more than `min_gain` twice: in the round-robin and in a head-to-head rerun.
fn measure<C: Copy>(
    gpu: &Gpu,
    opts: &TuneOptions,
    cands: &[(C, String)],
    rel: f32,
    build: &dyn Fn(C, usize) -> Result<Vec<Dispatch>>,
    read: &dyn Fn() -> Result<Vec<f32>>,
) -> Result<Measured<C>> {
    let (preset, _) = cands[0];
    let start = Instant::now();
    let launches = |c: C, n: usize| -> Result<Vec<Dispatch>> {
        let sets = (0..n).map(|i| build(c, i)).collect::<Result<Vec<_>>>()?;
        Ok(sets.into_iter().flatten().collect())
    };
    // One launch (it also compiles and warms up), then several if one is short, so that the
    // submission overhead does not dominate the estimate of a launch's time.
    let mut one = time_once(gpu, &launches(preset, 1)?)?;
    if one < opts.target_secs / 4.0 {
        one = time_once(gpu, &launches(preset, 8)?)? / 8.0;
    }
    let reps = per_submit(opts, one);
    let want = read()?;
    let mut kept = Vec::new();
    let mut sets = Vec::new();
    let mut rejected = Vec::new();
    for (i, (c, label)) in cands.iter().enumerate() {
        let set = match launches(*c, reps) {
            Ok(s) => s,
            Err(e) if i > 0 => {
                log::info!("tune: {label} skipped: {e}");
                rejected.push(format!("{label} (fails to build)"));
                continue;
            }
            Err(e) => return Err(e),
        };
        gpu.run(&set)?;
        if i > 0 && !agrees(&read()?, &want, rel) {
            log::warn!("tune: {label} gives other results than the preset; not used");
            rejected.push(format!("{label} (wrong results)"));
            continue;
        }
        kept.push((*c, label.clone()));
        sets.push(set);
    }
    let built = start.elapsed().as_secs_f64();
    let all: Vec<&[Dispatch]> = sets.iter().map(|s| s.as_slice()).collect();
    let secs = time_sets(gpu, &all, opts.repeats)?;
    let mut chosen = choose(&secs, opts.min_gain);
    let mut confirm = None;
    if chosen != 0 {
        let pair = time_sets(gpu, &[all[0], all[chosen]], 2 * opts.repeats)?;
        let pair = [pair[0] / reps as f64, pair[1] / reps as f64];
        if pair[0] <= pair[1] * (1.0 + opts.min_gain) {
            chosen = 0;
        }
        confirm = Some(pair);
    }
    log::debug!(
        "tune: {} candidates x {reps} launches: {built:.2} s to build and check, {:.2} s timed",
        sets.len(),
        start.elapsed().as_secs_f64() - built
    );
    let (cands, trials) = kept
        .into_iter()
        .zip(secs)
        .map(|((c, label), s)| {
            let secs = s / reps as f64;
            (c, Trial { label, secs })
        })
        .unzip();
    Ok(Measured {
        cands,
        trials,
        chosen,
        confirm,
        rejected,
    })
}

/// Tune the matvec of one weight shape.
pub fn tune_matvec(
    gpu: &Gpu,
    dtype: DType,
    rows: usize,
    cols: usize,
    opts: &TuneOptions,
) -> Result<(MatVecChoice, Report)> {
    let mut cands = vec![MatVecTune::preset(gpu, rows)];
    cands.extend(
        opts.matvec_candidates
            .clone()
            .unwrap_or_else(|| matvec_candidates(gpu, rows)),
    );
    let cands: Vec<_> = dedup(cands, opts.max_candidates)
        .into_iter()
        .filter(|t| t.check(gpu).is_ok())
        .map(|t| (t, format!("{}/{}/{}", t.wg, t.tpr, t.rows)))
        .collect();
    if cands.is_empty() {
        return Err(GpuError::shape(
            "tune",
            "the matvec preset is not valid here",
        ));
    }
    let bytes = synthetic_weights(dtype, rows, cols, (rows * 31 + cols) as u64);
    let nbytes = bytes.len() as u64;
    let copies = (opts.span_bytes / nbytes.max(1)).clamp(1, opts.max_per_submit.max(1) as u64);
    let ws: Vec<ChunkedTensor> = (0..copies)
        .map(|_| gpu.upload_chunked("tune_w", [rows, cols], dtype, &bytes))
        .collect::<Result<_>>()?;
    drop(bytes);
    let x = gpu.upload_f32("tune_x", &[cols], &random_f32(cols, 7))?;
    let y = gpu.zeros("tune_y", &[rows], DType::F32)?;
    let build =
        |t: MatVecTune, r: usize| QMatVec::prepare_tuned(gpu, &ws[r % ws.len()], &x, &y, false, t);
    let m = measure(gpu, opts, &cands, 1e-3, &build, &|| gpu.read_f32(&y))?;
    let shape = format!("{} {rows}x{cols}", dtype.name());
    let report = m.report("matvec", shape, nbytes as f64, "GB/s");
    let choice = MatVecChoice {
        dtype,
        rows,
        cols,
        tune: m.choice(),
        speedup: report.speedup(),
    };
    Ok((choice, report))
}

fn matmul_label(t: &MatMulTune) -> String {
    let mut s = format!("{}x{} t{}x{} k{}", t.wg_m, t.wg_n, t.tm, t.tn, t.bk);
    for (on, name) in [
        (t.subgroup_a, " sg"),
        (t.f16_tiles, " h-tile"),
        (t.f16_math, " h-math"),
    ] {
        if on {
            s.push_str(name);
        }
    }
    s
}

/// Tune the prefill matmul for one weight format over its `[N, K]` shapes at M = `m`.
pub fn tune_matmul(
    gpu: &Gpu,
    dtype: DType,
    m: usize,
    shapes: &[(usize, usize)],
    opts: &TuneOptions,
) -> Result<(MatMulChoice, Report)> {
    let mut cands = vec![MatMulTune::for_device(gpu)];
    cands.extend(
        opts.matmul_candidates
            .clone()
            .unwrap_or_else(|| matmul_candidates(gpu)),
    );
    let cands: Vec<_> = dedup(cands, opts.max_candidates)
        .into_iter()
        .filter(|t| t.check(gpu).is_ok())
        .map(|t| (t, matmul_label(&t)))
        .collect();
    if cands.is_empty() || shapes.is_empty() || m == 0 {
        return Err(GpuError::shape("tune", "nothing to tune for the matmul"));
    }
    let mut ops = Vec::new();
    for (i, &(n, k)) in shapes.iter().enumerate() {
        let w = synthetic_weights(dtype, n, k, 1000 + i as u64);
        let w = gpu.upload_chunked("tune_w", [n, k], dtype, &w)?;
        let a = gpu.upload_f32("tune_a", &[m, k], &random_f32(m * k, 11 + i as u64))?;
        let c = gpu.zeros("tune_c", &[m, n], DType::F32)?;
        ops.push((a, w, c));
    }
    let flops: f64 = shapes.iter().map(|&(n, k)| 2.0 * (m * n * k) as f64).sum();
    let build = |t: MatMulTune, _r: usize| -> Result<Vec<Dispatch>> {
        let op = MatMul::new(gpu).with_tune(t);
        let mut out = Vec::new();
        for (a, w, c) in &ops {
            out.extend(op.prepare(gpu, a, w, c)?);
        }
        Ok(out)
    };
    let read = || -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for (_, _, c) in &ops {
            out.extend(gpu.read_f32(c)?);
        }
        Ok(out)
    };
    // f16 tiles round A and W to f16, f32 tiles do not.
    let meas = measure(gpu, opts, &cands, 2e-2, &build, &read)?;
    let dims: Vec<String> = shapes.iter().map(|(n, k)| format!("{n}x{k}")).collect();
    let shape = format!("{} M={m}, N x K {}", dtype.name(), dims.join(" "));
    let report = meas.report("matmul", shape, flops, "GFLOP/s");
    let choice = MatMulChoice {
        dtype,
        tune: meas.choice(),
        speedup: report.speedup(),
    };
    Ok((choice, report))
}

/// Tune decode attention's split count for one shape, timed at an eighth and at half of the
/// cache length (a split count is fixed for every length the cache reaches).
pub fn tune_attention(
    gpu: &Gpu,
    shape: AttnShape,
    opts: &TuneOptions,
) -> Result<(AttnChoice, Report)> {
    let AttnShape {
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: hd,
        max_ctx,
    } = shape;
    let attn = Attention::new(nh, nkv, hd);
    let max = gpu.caps.limits.max_compute_workgroups_per_dimension;
    let mut cands = vec![attn.preset_splits(gpu, max_ctx)];
    cands.extend(
        opts.split_candidates
            .clone()
            .unwrap_or_else(|| split_candidates(max_ctx)),
    );
    let cands: Vec<_> = dedup(cands, opts.max_candidates)
        .into_iter()
        .filter(|&n| (1..=max).contains(&n))
        .map(|n| {
            let label = if n == 1 {
                "single".to_string()
            } else {
                format!("{n} splits")
            };
            (n, label)
        })
        .collect();
    if cands.is_empty() {
        return Err(GpuError::shape("tune", "no valid attention split count"));
    }
    let kv = KvCache::new(gpu, 1, nkv, max_ctx, hd)?;
    let layer = &kv.layers[0];
    for (i, t) in [&layer.k, &layer.v].into_iter().enumerate() {
        let n = t.numel();
        let vals = random_f32(n, 21 + i as u64);
        let bytes: Vec<u8> = match t.dtype {
            DType::F16 => vals
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            _ => bytemuck::cast_slice(&vals).to_vec(),
        };
        gpu.queue.write_buffer(&t.buffer, t.offset, &bytes);
    }
    let q = gpu.upload_f32("tune_q", &[nh, hd], &random_f32(nh * hd, 5))?;
    let lens = [(max_ctx / 8).max(1), (max_ctx / 2).max(1)];
    let outs: Vec<GpuTensor> = lens
        .iter()
        .map(|_| gpu.zeros("tune_attn", &[nh, hd], DType::F32))
        .collect::<Result<_>>()?;
    let steps: Vec<wgpu::Buffer> = lens
        .iter()
        .map(|&s| gpu.uniform("tune_step", &StepParams::new(s - 1, 1)))
        .collect();
    let build = |n: u32, _r: usize| -> Result<Vec<Dispatch>> {
        let split = if n == 1 {
            Split::Single
        } else {
            Split::Splits(n)
        };
        let mut out = Vec::new();
        for (step, o) in steps.iter().zip(&outs) {
            out.extend(attn.decode(gpu, step, &q, layer, o, split)?);
        }
        Ok(out)
    };
    let read = || -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for o in &outs {
            out.extend(gpu.read_f32(o)?);
        }
        Ok(out)
    };
    let m = measure(gpu, opts, &cands, 1e-3, &build, &read)?;
    let elem = kv.dtype.block_bytes();
    let bytes: usize = lens.iter().map(|&s| 2 * nkv * s * hd * elem).sum();
    let text = format!(
        "{nh}/{nkv} heads x {hd}, ctx {max_ctx} (at {} and {})",
        lens[0], lens[1]
    );
    let report = m.report("attention", text, bytes as f64, "GB/s");
    let choice = AttnChoice {
        shape,
        splits: m.choice(),
        speedup: report.speedup(),
    };
    Ok((choice, report))
}

/// Tune every shape of `work`; `progress(done, total, what)` is called before each shape and
/// once at the end. Returns the choices (to merge into the device's table) and the reports.
pub fn run(
    gpu: &Gpu,
    work: &Workload,
    opts: &TuneOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<(Tuning, Vec<Report>)> {
    let total = work.len();
    let mut done = 0;
    let mut tuning = Tuning::default();
    let mut reports = Vec::with_capacity(total);
    for &(dt, rows, cols) in &work.matvec {
        progress(done, total, &format!("matvec {} {rows}x{cols}", dt.name()));
        let (c, r) = tune_matvec(gpu, dt, rows, cols, opts)?;
        tuning.set_matvec(c);
        reports.push(r);
        done += 1;
    }
    for (dt, shapes) in &work.matmul {
        progress(done, total, &format!("matmul {}", dt.name()));
        let (c, r) = tune_matmul(gpu, *dt, work.matmul_m, shapes, opts)?;
        tuning.set_matmul(c);
        reports.push(r);
        done += 1;
    }
    for &shape in &work.attention {
        progress(done, total, &format!("attention ctx {}", shape.max_ctx));
        let (c, r) = tune_attention(gpu, shape, opts)?;
        tuning.set_attention(c);
        reports.push(r);
        done += 1;
    }
    progress(total, total, "");
    Ok((tuning, reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_keeps_the_preset_within_the_noise_guard() {
        assert_eq!(choose(&[1.0, 0.98, 1.01], 0.03), 0);
        assert_eq!(choose(&[1.0, 0.9, 0.95], 0.03), 1);
        assert_eq!(choose(&[0.5, 0.9, 0.95], 0.03), 0);
        assert_eq!(choose(&[1.0], 0.03), 0);
    }

    #[test]
    fn agrees_allows_rounding_but_not_garbage() {
        let want = [10.0, -5.0, 0.0];
        assert!(agrees(&[10.001, -5.002, 0.003], &want, 1e-3));
        assert!(!agrees(&[10.1, -5.0, 0.0], &want, 1e-3));
        assert!(!agrees(&[f32::NAN, -5.0, 0.0], &want, 1e-3));
        assert!(!agrees(&[10.0, -5.0], &want, 1e-3));
    }

    #[test]
    fn per_submit_and_dedup() {
        let o = TuneOptions::default();
        assert_eq!(per_submit(&o, 1.0), 1);
        assert_eq!(per_submit(&o, o.target_secs / 10.0), 10);
        assert_eq!(per_submit(&o, 0.0), o.max_per_submit);
        assert_eq!(dedup(vec![3, 1, 3, 2, 1], 10), vec![3, 1, 2]);
        assert_eq!(dedup(vec![3, 1, 2], 2), vec![3, 1]);
        assert_eq!(split_candidates(512)[0], Attention::auto_splits(512));
        assert!(split_candidates(4).iter().all(|&n| n <= 4));
    }
}
