//! Read-bandwidth probe: the device's achievable memory read rate, measured with a kernel of
//! our own, as the roofline that matvec and decode throughput are compared against.
//!
//! The probe tries a few access patterns and launch sizes and keeps the best, since what reads
//! fastest differs by device: many workgroups of coalesced vec4 loads on GPUs; few, long-running
//! workgroups where each SIMD lane streams its own span on CPU-backed adapters (lavapipe), whose
//! per-lane gathers read more per element with 64-bit loads (SHADER_INT64) than with 32-bit ones.

use std::time::Instant;

use crate::gpu::{BindingKind, Dispatch, Gpu, GpuError, PipelineKey, Result};

const K: &str = "bandwidth";
const WG: u32 = 256;
/// Seconds one timed submission should take at least (the dispatch is repeated within it), so
/// that submit overhead stays small on fast devices.
const MIN_SUBMIT_SECS: f64 = 0.02;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    stride: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[
    BindingKind::Uniform,
    BindingKind::ReadOnly,
    BindingKind::ReadWrite,
];

/// One way of reading the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeShape {
    /// Each thread reads its own contiguous span of u32s (else vec4<u32>s strided by the thread
    /// count, consecutive threads at consecutive addresses).
    pub contiguous: bool,
    /// With `contiguous`: vec4<u64> loads instead of u32 (needs SHADER_INT64).
    pub wide: bool,
    /// Loads per thread, which sets the number of workgroups.
    pub loads_per_thread: u32,
}

impl ProbeShape {
    /// The shapes `measure_read_bandwidth` tries.
    pub const ALL: [ProbeShape; 6] = [
        ProbeShape {
            contiguous: false,
            wide: false,
            loads_per_thread: 32,
        },
        ProbeShape {
            contiguous: false,
            wide: false,
            loads_per_thread: 4096,
        },
        ProbeShape {
            contiguous: true,
            wide: false,
            loads_per_thread: 256,
        },
        ProbeShape {
            contiguous: true,
            wide: false,
            loads_per_thread: 16384,
        },
        ProbeShape {
            contiguous: true,
            wide: true,
            loads_per_thread: 64,
        },
        ProbeShape {
            contiguous: true,
            wide: true,
            loads_per_thread: 4096,
        },
    ];

    /// Whether `gpu` can run this shape.
    pub fn runs_on(&self, gpu: &Gpu) -> bool {
        !self.wide || gpu.caps.int64
    }

    /// A short name of the load pattern.
    pub fn name(&self) -> &'static str {
        match (self.contiguous, self.wide) {
            (false, _) => "vec4<u32> strided",
            (true, false) => "u32 contiguous",
            (true, true) => "vec4<u64> contiguous",
        }
    }
}

/// A prepared probe over a buffer of `bytes` bytes.
pub struct ReadProbe {
    pub shape: ProbeShape,
    /// Bytes one dispatch reads.
    pub bytes: u64,
    /// Dispatches per timed submission, set by the first call to `samples`.
    pub reps: usize,
    dispatch: Dispatch,
    _src: wgpu::Buffer,
    _out: wgpu::Buffer,
}

impl ReadProbe {
    /// Allocate and fill a source buffer of about `bytes` (clamped to the binding and buffer
    /// limits) and prepare the probe over it.
    pub fn new(gpu: &Gpu, bytes: u64, shape: ProbeShape) -> Result<Self> {
        let limit = gpu.caps.max_binding().min(gpu.caps.limits.max_buffer_size);
        let elem = match (shape.contiguous, shape.wide) {
            (true, false) => 4,
            (true, true) => 32,
            (false, _) => 16,
        };
        let mut n = bytes.min(limit).min(u32::MAX as u64 * 4) / elem;
        let threads_wanted = n
            .div_ceil(shape.loads_per_thread.max(1) as u64)
            .max(WG as u64);
        let grid = gpu.grid(threads_wanted.div_ceil(WG as u64) as u32);
        let groups = grid[0] as u64 * grid[1] as u64 * grid[2] as u64;
        let stride = groups * WG as u64;
        if shape.contiguous {
            // Whole spans only, so every thread reads the same amount.
            n = n / stride * stride;
        }
        let bytes = n * elem;
        if bytes == 0 {
            return Err(GpuError::shape(K, "probe buffer rounds to 0 bytes"));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let src = gpu.scoped_sync(K, || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bandwidth src"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        })?;
        // Fill with a non-zero pattern so every page is really backed by memory.
        let piece: Vec<u8> = (0..(16u64 << 20).min(bytes))
            .map(|i| (i * 7 + 1) as u8)
            .collect();
        let mut at = 0;
        while at < bytes {
            let len = (piece.len() as u64).min(bytes - at);
            gpu.queue.write_buffer(&src, at, &piece[..len as usize]);
            at += len;
        }
        let out = gpu.scoped_sync(K, || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bandwidth out"),
                size: stride * 4,
                usage,
                mapped_at_creation: false,
            })
        })?;
        let extra: &[&'static str] = match (shape.contiguous, shape.wide) {
            (true, false) => &["CONTIG"],
            (true, true) => &["CONTIG", "INT64"],
            (false, _) => &[],
        };
        let mut flags = gpu.flags(extra);
        flags.remove("F16");
        let key = PipelineKey {
            shader: "bandwidth",
            entry: "read_probe",
            flags,
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(
            K,
            &Params {
                n: n as u32,
                stride: stride as u32,
                _pad: [0; 2],
            },
        );
        let dispatch = gpu.dispatch(
            &kernel,
            &[
                params.as_entire_binding(),
                src.as_entire_binding(),
                out.as_entire_binding(),
            ],
            grid,
        )?;
        Ok(ReadProbe {
            shape,
            bytes,
            reps: 1,
            dispatch,
            _src: src,
            _out: out,
        })
    }

    /// Submit `reps` probe dispatches in one pass, wait, and return the seconds taken.
    fn time(&self, gpu: &Gpu, reps: usize) -> Result<f64> {
        let start = Instant::now();
        gpu.scoped_sync(K, || {
            let mut enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(K) });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(K),
                    timestamp_writes: None,
                });
                let d = &self.dispatch;
                for _ in 0..reps {
                    pass.set_pipeline(&d.pipeline);
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
                }
            }
            gpu.queue.submit([enc.finish()]);
        })?;
        gpu.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// Run the probe `iters` times (after a warm-up that also sizes the submissions) and return
    /// each run's GB/s (1e9 B/s), from wall-clock time around a submission and `gpu.wait()`.
    pub fn samples(&mut self, gpu: &Gpu, iters: usize) -> Result<Vec<f64>> {
        let once = self.time(gpu, 1)?;
        gpu.check(K)?;
        let reps = ((MIN_SUBMIT_SECS / once.max(1e-6)).ceil() as usize).clamp(1, 64);
        self.reps = reps;
        let mut out = Vec::with_capacity(iters);
        for _ in 0..iters {
            let secs = self.time(gpu, reps)?;
            out.push((self.bytes * reps as u64) as f64 / secs / 1e9);
        }
        gpu.check(K)?;
        Ok(out)
    }
}

/// Read bandwidth in GB/s (1e9 B/s): for each of `ProbeShape::ALL`, the median of `iters` runs
/// over a buffer of about `bytes` bytes; of those, the best. Use a buffer well beyond the
/// last-level cache (e.g. 256 MiB).
pub fn measure_read_bandwidth(gpu: &Gpu, bytes: u64, iters: usize) -> Result<f64> {
    let mut best = 0f64;
    for shape in ProbeShape::ALL.iter().filter(|s| s.runs_on(gpu)) {
        let mut probe = ReadProbe::new(gpu, bytes, *shape)?;
        let mut s = probe.samples(gpu, iters.max(1))?;
        best = best.max(median(&mut s));
    }
    Ok(best)
}

/// Median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
