//! Per-kernel GPU time of a list of dispatches (a decode step, a prefill chunk).
//!
//! Three ways to time one dispatch, best first:
//! - `InsidePass`: the whole list in one compute pass, as it really runs, with a timestamp
//!   written between dispatches (TIMESTAMP_QUERY_INSIDE_PASSES);
//! - `PassTimestamps`: one compute pass per dispatch, with begin/end timestamp writes
//!   (TIMESTAMP_QUERY);
//! - `WallClock`: one submission per dispatch, bracketed by the host clock from submit to
//!   completion, less the median cost of an empty submission.
//!
//! Either way the whole list is also submitted as one pass and timed on the host (and on the
//! GPU when timestamps exist), so a report can set the sum of the kernels against the real
//! step: the difference is what dispatch, barriers and submission cost.

use serde::Serialize;
use web_time::Instant;

use super::device::Gpu;
use super::error::{GpuError, Result};
use super::pipelines::Dispatch;

/// Timestamps one query set holds (wgpu's QUERY_SET_MAX_QUERIES).
const MAX_QUERIES: usize = wgpu::QUERY_SET_MAX_QUERIES as usize;

/// Wall-clock results at or below an empty submission's cost are reported as this many
/// microseconds: below what the method resolves, yet positive.
pub const WALL_CLOCK_FLOOR_US: f64 = 0.01;

/// How kernel times were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMethod {
    /// GPU timestamps between the dispatches of one compute pass.
    InsidePass,
    /// GPU timestamps at the start and end of one compute pass per dispatch.
    PassTimestamps,
    /// Host clock around one submission per dispatch, less an empty submission.
    WallClock,
}

impl TimingMethod {
    pub fn describe(self) -> &'static str {
        match self {
            TimingMethod::InsidePass => "GPU timestamps between dispatches in one pass",
            TimingMethod::PassTimestamps => "GPU timestamps, one pass per dispatch",
            TimingMethod::WallClock => {
                "wall clock, one submit+wait per dispatch less an empty submit+wait"
            }
        }
    }
}

/// The time of one dispatch of the list (the median over the repeats).
#[derive(Clone, Debug, Serialize)]
pub struct KernelTiming {
    /// Position in the dispatch list.
    pub index: usize,
    pub kernel: &'static str,
    pub workgroups: [u32; 3],
    pub micros: f64,
    /// `Dispatch::bytes` (bytes bound unless the op set them).
    pub bytes: u64,
    pub flops: u64,
}

impl KernelTiming {
    /// Achieved GB/s over `bytes`, when known.
    pub fn gbps(&self) -> Option<f64> {
        rate(self.bytes, self.micros)
    }

    pub fn gflops(&self) -> Option<f64> {
        rate(self.flops, self.micros)
    }
}

/// Units per microsecond / 1000 = G units per second; `None` for no units or no time.
fn rate(units: u64, micros: f64) -> Option<f64> {
    (units > 0 && micros > 0.0).then(|| units as f64 / micros / 1e3)
}

/// Every dispatch of one kernel name, added up.
#[derive(Clone, Debug, Serialize)]
pub struct KernelSummary {
    pub kernel: &'static str,
    pub calls: usize,
    pub total_us: f64,
    pub mean_us: f64,
    /// Fraction of the sum of all kernels.
    pub share: f64,
    pub bytes: u64,
    pub flops: u64,
    pub gbps: Option<f64>,
    pub gflops: Option<f64>,
}

/// What `Profiler::run` measured.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub method: TimingMethod,
    pub repeats: usize,
    /// One entry per dispatch, in list order.
    pub timings: Vec<KernelTiming>,
    /// GPU time of the whole list recorded in one pass (median), when timestamps exist.
    pub step_gpu_us: Option<f64>,
    /// Host time to encode the whole list in one pass, submit it and wait for it (median; with
    /// timestamps, until the pass's two timestamps are read back, as a step reads its token).
    pub step_wall_us: f64,
    /// Host time to submit an empty pass and wait for it (median).
    pub empty_submit_us: f64,
}

impl Profile {
    pub fn kernel_sum_us(&self) -> f64 {
        self.timings.iter().map(|t| t.micros).sum()
    }

    /// The real step less the sum of its kernels: dispatch, barrier and submission cost.
    pub fn overhead_us(&self) -> f64 {
        self.step_wall_us - self.kernel_sum_us()
    }

    /// Timings added up per kernel name, most time first.
    pub fn by_kernel(&self) -> Vec<KernelSummary> {
        let sum = self.kernel_sum_us();
        let mut out: Vec<KernelSummary> = Vec::new();
        for t in &self.timings {
            let s = match out.iter_mut().find(|s| s.kernel == t.kernel) {
                Some(s) => s,
                None => {
                    out.push(KernelSummary {
                        kernel: t.kernel,
                        calls: 0,
                        total_us: 0.0,
                        mean_us: 0.0,
                        share: 0.0,
                        bytes: 0,
                        flops: 0,
                        gbps: None,
                        gflops: None,
                    });
                    out.last_mut().unwrap()
                }
            };
            s.calls += 1;
            s.total_us += t.micros;
            s.bytes += t.bytes;
            s.flops += t.flops;
        }
        for s in &mut out {
            s.mean_us = s.total_us / s.calls as f64;
            s.share = if sum > 0.0 { s.total_us / sum } else { 0.0 };
            s.gbps = rate(s.bytes, s.total_us);
            s.gflops = rate(s.flops, s.total_us);
        }
        out.sort_by(|a, b| b.total_us.total_cmp(&a.total_us));
        out
    }
}

/// Profiling settings; `Profiler::default()` uses the best method the device granted.
#[derive(Clone, Debug)]
pub struct Profiler {
    /// Measurements per dispatch; each reported time is their median.
    pub repeats: usize,
    /// Use timestamp queries when granted (false forces the wall clock).
    pub timestamps: bool,
    /// Prefer timestamps inside one pass over one pass per dispatch when granted.
    pub inside_passes: bool,
}

impl Default for Profiler {
    fn default() -> Self {
        Profiler {
            repeats: 5,
            timestamps: true,
            inside_passes: true,
        }
    }
}

/// Profile `dispatches` with the best method the device has; the median of `repeats` runs.
#[cfg(not(target_arch = "wasm32"))]
pub fn profile(gpu: &Gpu, dispatches: &[Dispatch], repeats: usize) -> Result<Profile> {
    Profiler {
        repeats,
        ..Default::default()
    }
    .run(gpu, dispatches)
}

impl Profiler {
    /// The method `run` will use on `gpu`.
    pub fn method(&self, gpu: &Gpu) -> TimingMethod {
        match (self.timestamps && gpu.caps.timestamps, self.inside_passes) {
            (true, true) if gpu.caps.timestamps_inside_passes => TimingMethod::InsidePass,
            (true, _) => TimingMethod::PassTimestamps,
            (false, _) => TimingMethod::WallClock,
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, gpu: &Gpu, dispatches: &[Dispatch]) -> Result<Profile> {
        pollster::block_on(self.run_async(gpu, dispatches))
    }

    /// Time every dispatch of `dispatches` and the whole list. The dispatches run
    /// `repeats + 1` times or more (the first run warms up), so they must tolerate re-running
    /// (decode and prefill plans do: they rewrite the same outputs).
    pub async fn run_async(&self, gpu: &Gpu, dispatches: &[Dispatch]) -> Result<Profile> {
        let method = self.method(gpu);
        let repeats = self.repeats.max(1);
        let n = dispatches.len();
        wall_submit(gpu, dispatches).await?;
        let mut per: Vec<Vec<f64>> = vec![Vec::with_capacity(repeats); n];
        let (mut step_wall, mut step_gpu, mut empty) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            for _ in 0..4 {
                empty.push(wall_submit(gpu, &[]).await?);
            }
            if method == TimingMethod::WallClock {
                step_wall.push(wall_submit(gpu, dispatches).await?);
            } else {
                let (gpu_us, wall_us) = whole_pass(gpu, dispatches).await?;
                step_gpu.push(gpu_us);
                step_wall.push(wall_us);
            }
            let times = match method {
                TimingMethod::InsidePass => inside_pass(gpu, dispatches).await?,
                TimingMethod::PassTimestamps => pass_per_dispatch(gpu, dispatches).await?,
                TimingMethod::WallClock => {
                    let mut v = Vec::with_capacity(n);
                    for d in dispatches {
                        v.push(wall_submit(gpu, std::slice::from_ref(d)).await?);
                    }
                    v
                }
            };
            for (p, t) in per.iter_mut().zip(times) {
                p.push(t);
            }
        }
        let empty_submit_us = median(&mut empty);
        let timings = dispatches
            .iter()
            .zip(&mut per)
            .enumerate()
            .map(|(index, (d, times))| {
                let mut micros = median(times);
                if method == TimingMethod::WallClock {
                    micros = (micros - empty_submit_us).max(WALL_CLOCK_FLOOR_US);
                }
                KernelTiming {
                    index,
                    kernel: d.kernel,
                    workgroups: d.workgroups,
                    micros,
                    bytes: d.bytes,
                    flops: d.flops,
                }
            })
            .collect();
        Ok(Profile {
            method,
            repeats,
            timings,
            step_gpu_us: (!step_gpu.is_empty()).then(|| median(&mut step_gpu)),
            step_wall_us: median(&mut step_wall),
            empty_submit_us,
        })
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn label(dispatches: &[Dispatch]) -> &'static str {
    dispatches.first().map(|d| d.kernel).unwrap_or("profile")
}

/// Wait until every submission has finished.
async fn finish(gpu: &Gpu) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    gpu.wait()?;
    #[cfg(target_arch = "wasm32")]
    {
        let (tx, rx) = futures::channel::oneshot::channel();
        gpu.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        rx.await
            .map_err(|_| GpuError::Readback("work-done callback dropped".into()))?;
    }
    Ok(())
}

/// Microseconds from submitting `dispatches` in one pass to their completion, on the host.
async fn wall_submit(gpu: &Gpu, dispatches: &[Dispatch]) -> Result<f64> {
    let start = Instant::now();
    gpu.submit(dispatches)?;
    finish(gpu).await?;
    let us = start.elapsed().as_secs_f64() * 1e6;
    gpu.check(label(dispatches))?;
    Ok(us)
}

/// A timestamp query set of `count` entries and the buffers to resolve and read it.
struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    count: u32,
}

impl Queries {
    fn new(gpu: &Gpu, count: usize) -> Queries {
        let size = (count * wgpu::QUERY_SIZE as usize) as u64;
        let buffer = |usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile timestamps"),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        Queries {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: count as u32,
            }),
            resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            read: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            count: count as u32,
        }
    }

    /// Append the resolve and copy to `enc`, submit it, and read the timestamps in ns.
    async fn submit_and_read(
        &self,
        gpu: &Gpu,
        what: &str,
        mut enc: wgpu::CommandEncoder,
    ) -> Result<Vec<f64>> {
        enc.resolve_query_set(&self.set, 0..self.count, &self.resolve, 0);
        let size = self.resolve.size();
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, size);
        gpu.scoped_sync(what, || gpu.queue.submit([enc.finish()]))?;
        let (tx, rx) = futures::channel::oneshot::channel();
        self.read.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        finish(gpu).await?;
        rx.await
            .map_err(|_| GpuError::Readback("map callback dropped".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let ticks: Vec<u64> = {
            let bytes = self
                .read
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&bytes)
        };
        self.read.unmap();
        gpu.check(what)?;
        let period = gpu.queue.get_timestamp_period() as f64;
        Ok(ticks.iter().map(|&t| t as f64 * period).collect())
    }
}

/// Nanoseconds between timestamp `a` and a later `b` (0 if the clock went backwards).
fn span_us(a: f64, b: f64) -> f64 {
    (b - a).max(0.0) / 1e3
}

/// Per-dispatch µs from timestamps between the dispatches of one pass.
async fn inside_pass(gpu: &Gpu, dispatches: &[Dispatch]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(dispatches.len());
    for chunk in dispatches.chunks(MAX_QUERIES - 1) {
        let q = Queries::new(gpu, chunk.len() + 1);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("profile"),
                timestamp_writes: None,
            });
            pass.write_timestamp(&q.set, 0);
            for (i, d) in chunk.iter().enumerate() {
                Gpu::record(&mut pass, std::slice::from_ref(d));
                pass.write_timestamp(&q.set, i as u32 + 1);
            }
        }
        let ns = q.submit_and_read(gpu, label(chunk), enc).await?;
        out.extend(ns.windows(2).map(|w| span_us(w[0], w[1])));
    }
    Ok(out)
}

/// Per-dispatch µs from begin/end timestamps of one pass per dispatch.
async fn pass_per_dispatch(gpu: &Gpu, dispatches: &[Dispatch]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(dispatches.len());
    for chunk in dispatches.chunks(MAX_QUERIES / 2) {
        let q = Queries::new(gpu, chunk.len() * 2);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (i, d) in chunk.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.kernel),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            Gpu::record(&mut pass, std::slice::from_ref(d));
        }
        let ns = q.submit_and_read(gpu, label(chunk), enc).await?;
        out.extend(ns.chunks(2).map(|p| span_us(p[0], p[1])));
    }
    Ok(out)
}

/// The whole list recorded in one pass: GPU µs from the pass's begin/end timestamps, and host
/// µs from encoding to the readback of the timestamps (as a decode step reads back its token).
async fn whole_pass(gpu: &Gpu, dispatches: &[Dispatch]) -> Result<(f64, f64)> {
    let q = Queries::new(gpu, 2);
    let start = Instant::now();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("profile step"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &q.set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        Gpu::record(&mut pass, dispatches);
    }
    let ns = q.submit_and_read(gpu, label(dispatches), enc).await?;
    let wall = start.elapsed().as_secs_f64() * 1e6;
    Ok((span_us(ns[0], ns[1]), wall))
}
