//! Read-bandwidth probe: the device's achievable memory read rate, measured with a kernel of
//! our own, as the roofline that matvec and decode throughput are compared against.

use std::time::Instant;

use crate::gpu::{BindingKind, Dispatch, Gpu, GpuError, PipelineKey, Result};

const K: &str = "bandwidth";
const WG: u32 = 256;
/// vec4<u32> loads per thread the launch aims for.
const LOADS_PER_THREAD: u64 = 32;
/// Bytes one timed submission reads at least (repeating the dispatch), so that submit
/// overhead stays small on fast devices.
const BYTES_PER_SUBMIT: u64 = 1 << 30;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    stride: u32,
    _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

const BINDINGS: &[BindingKind] = &[BindingKind::Uniform, BindingKind::ReadOnly, BindingKind::ReadWrite];

/// A prepared probe over a buffer of `bytes` bytes.
pub struct ReadProbe {
    pub bytes: u64,
    dispatch: Dispatch,
    _src: wgpu::Buffer,
    _out: wgpu::Buffer,
}

impl ReadProbe {
    /// Allocate and fill a source buffer of about `bytes` (clamped to the binding and buffer
    /// limits, rounded down to 16 bytes) and prepare the probe over it.
    pub fn new(gpu: &Gpu, bytes: u64) -> Result<Self> {
        let limit = gpu.caps.max_binding().min(gpu.caps.limits.max_buffer_size);
        let bytes = bytes.min(limit).min(u32::MAX as u64 * 16) / 16 * 16;
        if bytes == 0 {
            return Err(GpuError::shape(K, "probe size rounds to 0 bytes"));
        }
        let n = bytes / 16;
        let threads_wanted = n.div_ceil(LOADS_PER_THREAD).max(WG as u64);
        let grid = gpu.grid(threads_wanted.div_ceil(WG as u64) as u32);
        let groups = grid[0] * grid[1] * grid[2];
        let stride = groups as u64 * WG as u64;
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
        let piece: Vec<u8> = (0..(16u64 << 20).min(bytes)).map(|i| (i * 7 + 1) as u8).collect();
        let mut at = 0;
        while at < bytes {
            let len = (piece.len() as u64).min(bytes - at);
            gpu.queue.write_buffer(&src, at, &piece[..len as usize]);
            at += len;
        }
        let out = gpu.scoped_sync(K, || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bandwidth out"),
                size: groups as u64 * 4,
                usage,
                mapped_at_creation: false,
            })
        })?;
        let key = PipelineKey {
            shader: "bandwidth",
            entry: "read_probe",
            flags: Default::default(),
            overrides: vec![("WG", WG as i64)],
        };
        let kernel = gpu.kernel(K, &key, BINDINGS)?;
        let params = gpu.uniform(K, &Params {
            n: n as u32,
            stride: stride as u32,
            _pad: [0; 2],
        });
        let dispatch = gpu.dispatch(
            &kernel,
            &[params.as_entire_binding(), src.as_entire_binding(), out.as_entire_binding()],
            grid,
        )?;
        Ok(ReadProbe {
            bytes,
            dispatch,
            _src: src,
            _out: out,
        })
    }

    /// Run the probe `iters` times (after one warm-up) and return each run's GB/s (1e9 B/s),
    /// from wall-clock time around a submission of several dispatches and `gpu.wait()`.
    pub fn samples(&self, gpu: &Gpu, iters: usize) -> Result<Vec<f64>> {
        let reps = BYTES_PER_SUBMIT.div_ceil(self.bytes).clamp(1, 64) as usize;
        let batch: Vec<&Dispatch> = std::iter::repeat_n(&self.dispatch, reps).collect();
        let run = || -> Result<f64> {
            let start = Instant::now();
            submit_refs(gpu, &batch)?;
            gpu.wait()?;
            Ok(start.elapsed().as_secs_f64())
        };
        run()?;
        gpu.check(K)?;
        let mut out = Vec::with_capacity(iters);
        for _ in 0..iters {
            let secs = run()?;
            out.push((self.bytes * reps as u64) as f64 / secs / 1e9);
        }
        gpu.check(K)?;
        Ok(out)
    }
}

fn submit_refs(gpu: &Gpu, batch: &[&Dispatch]) -> Result<()> {
    gpu.scoped_sync(K, || {
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(K) });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(K),
                timestamp_writes: None,
            });
            for d in batch {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
        }
        gpu.queue.submit([enc.finish()]);
    })
}

/// Median read bandwidth in GB/s (1e9 B/s) over `iters` runs of the probe on a buffer of
/// about `bytes` bytes. Use a buffer well beyond the last-level cache (e.g. 256 MiB).
pub fn measure_read_bandwidth(gpu: &Gpu, bytes: u64, iters: usize) -> Result<f64> {
    let probe = ReadProbe::new(gpu, bytes)?;
    let mut s = probe.samples(gpu, iters.max(1))?;
    Ok(median(&mut s))
}

/// Median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
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
