//! Kernel throughput: the device's read bandwidth (our own probe), the cost of one dispatch
//! that does nothing, then decode matvec GB/s (weight bytes / time per matvec) and its
//! fraction of that bandwidth.
//!
//! `cargo bench --no-default-features --bench kernels`
//! Environment: `TOKENMILL_DEVICE` (adapter index or name), `TOKENMILL_TUNES` ("wg,tpr,rows"
//! triples separated by ';' to compare launch shapes in one run), `TOKENMILL_BENCH_FORMATS`
//! (e.g. "q4_0,q8_0"), `TOKENMILL_BENCH_SHAPES` (e.g. "4096x4096").

use std::time::Instant;

use tokenmill::gpu::{DType, Dispatch, Gpu, GpuOptions};
use tokenmill::ops::bandwidth::{median, ProbeShape, ReadProbe};
use tokenmill::ops::{MatVecTune, QMatVec};
use tokenmill::quant::quantize;

/// Matvecs recorded in one pass (one submission), to amortize submit overhead.
const PER_SUBMIT: usize = 20;
/// Timed submissions per measurement; the median is reported.
const REPEATS: usize = 7;
/// Weight copies are cycled until they span this many bytes, so that the weights are read
/// from memory, as in decode, and not from the last-level cache.
const SPAN_BYTES: u64 = 96 << 20;

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    Some(
        v.split([',', ';'])
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn tunes(gpu: &Gpu) -> Vec<MatVecTune> {
    let Ok(spec) = std::env::var("TOKENMILL_TUNES") else {
        return vec![MatVecTune::for_gpu(gpu)];
    };
    spec.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|t| {
            let v: Vec<u32> = t
                .split(',')
                .map(|n| n.trim().parse().expect("TOKENMILL_TUNES: wg,tpr,rows"))
                .collect();
            assert_eq!(v.len(), 3, "TOKENMILL_TUNES: wg,tpr,rows");
            MatVecTune {
                wg: v[0],
                tpr: v[1],
                rows: v[2],
            }
        })
        .collect()
}

fn dtype_named(name: &str) -> DType {
    match name {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "q8_0" => DType::Q8_0,
        "q4_0" => DType::Q4_0,
        "q4_1" => DType::Q4_1,
        other => panic!("unknown format {other}"),
    }
}

/// Dispatches per timed pass of `empty_dispatch_secs`.
const EMPTY_DISPATCHES: usize = 200;

/// Median seconds per dispatch of a kernel that returns at once: the fixed cost every kernel
/// of a decode step pays (on lavapipe, waking the driver's worker threads).
fn empty_dispatch_secs(gpu: &Gpu) -> f64 {
    let d = &gpu.device;
    let src = "@group(0) @binding(0) var<storage, read_write> b: array<u32>;\n\
               @compute @workgroup_size(8) fn k(@builtin(global_invocation_id) g: vec3<u32>) {\n\
               if g.x == 0xffffffffu { b[0] = 1u; } }";
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("empty"),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("empty"),
        layout: None,
        module: &module,
        entry_point: Some("k"),
        compilation_options: Default::default(),
        cache: None,
    });
    let buf = gpu.zeros("empty", &[64], DType::U32).expect("buffer");
    let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buf.binding(),
        }],
    });
    let mut secs: Vec<f64> = (0..REPEATS + 1)
        .map(|_| {
            let mut enc = d.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                for _ in 0..EMPTY_DISPATCHES {
                    pass.dispatch_workgroups(2, 1, 1);
                }
            }
            let t = Instant::now();
            gpu.queue.submit([enc.finish()]);
            gpu.wait().expect("wait");
            t.elapsed().as_secs_f64() / EMPTY_DISPATCHES as f64
        })
        .skip(1)
        .collect();
    gpu.check("empty dispatch").expect("device error");
    median(&mut secs)
}

/// Median wall-clock seconds per dispatch of `dispatches` (submitted together).
fn time_matvecs(gpu: &Gpu, dispatches: &[Dispatch]) -> f64 {
    gpu.run(dispatches).expect("warm-up");
    let mut secs: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            gpu.submit(dispatches).expect("submit");
            gpu.wait().expect("wait");
            t.elapsed().as_secs_f64() / dispatches.len() as f64
        })
        .collect();
    gpu.check("bench").expect("device error");
    median(&mut secs)
}

fn main() {
    let device = std::env::var("TOKENMILL_DEVICE")
        .map(|s| s.parse().unwrap())
        .unwrap_or_default();
    let gpu = Gpu::open_blocking(&GpuOptions {
        device,
        ..Default::default()
    })
    .expect("open a GPU");
    println!(
        "device: {} ({}, {})",
        gpu.desc.name, gpu.desc.backend, gpu.desc.driver_info
    );

    // The same measurement as `measure_read_bandwidth`, printed shape by shape.
    let mut bw_med = 0f64;
    for shape in ProbeShape::ALL.into_iter().filter(|s| s.runs_on(&gpu)) {
        let mut probe = ReadProbe::new(&gpu, 256 << 20, shape).expect("bandwidth probe");
        let mut bw = probe.samples(&gpu, 9).expect("bandwidth probe");
        let med = median(&mut bw);
        let best = bw.iter().copied().fold(0.0, f64::max);
        println!(
            "read bandwidth, {:<20} loads/thread {:>5} ({} MiB): median {med:.2} GB/s, best {best:.2} GB/s",
            shape.name(),
            shape.loads_per_thread,
            probe.bytes >> 20
        );
        bw_med = bw_med.max(med);
    }
    println!("read bandwidth (best median): {bw_med:.2} GB/s");
    println!(
        "empty dispatch: {:.1} us each ({EMPTY_DISPATCHES} in one pass, 2 workgroups, a storage binding each)",
        empty_dispatch_secs(&gpu) * 1e6
    );

    let formats: Vec<DType> = env_list("TOKENMILL_BENCH_FORMATS")
        .unwrap_or_else(|| ["q4_0", "q4_1", "q8_0", "f16"].map(String::from).to_vec())
        .iter()
        .map(|s| dtype_named(s))
        .collect();
    let shapes: Vec<[usize; 2]> = env_list("TOKENMILL_BENCH_SHAPES")
        .unwrap_or_else(|| vec!["4096x4096".into(), "11008x4096".into()])
        .iter()
        .map(|s| {
            let (r, c) = s.split_once('x').expect("shape as ROWSxCOLS");
            [r.parse().unwrap(), c.parse().unwrap()]
        })
        .collect();
    let tunes = tunes(&gpu);

    println!();
    println!(
        "{:<6} {:>11} {:>16} {:>6} {:>10} {:>7} {:>6}",
        "format", "rows x cols", "tune wg/tpr/rows", "MiB", "us/matvec", "GB/s", "of bw"
    );
    for &[rows, cols] in &shapes {
        let wf: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
        let gx = gpu.upload_f32("x", &[cols], &x).unwrap();
        let gy = gpu.zeros("y", &[rows], DType::F32).unwrap();
        for &dtype in &formats {
            let bytes = quantize(dtype, &wf);
            let nbytes = bytes.len() as u64;
            let copies = SPAN_BYTES.div_ceil(nbytes).clamp(1, PER_SUBMIT as u64) as usize;
            let ws: Vec<_> = (0..copies)
                .map(|_| {
                    gpu.upload_chunked("w", [rows, cols], dtype, &bytes)
                        .unwrap()
                })
                .collect();
            for &tune in &tunes {
                let dispatches: Vec<Dispatch> = (0..PER_SUBMIT)
                    .flat_map(|i| {
                        QMatVec::prepare_tuned(&gpu, &ws[i % copies], &gx, &gy, false, tune)
                            .unwrap()
                    })
                    .collect();
                let chunks = (dispatches.len() / PER_SUBMIT) as f64;
                let secs = time_matvecs(&gpu, &dispatches);
                let gbs = nbytes as f64 / (secs * chunks) / 1e9;
                println!(
                    "{:<6} {:>11} {:>16} {:>6.1} {:>10.0} {:>7.2} {:>5.0}%",
                    dtype.name(),
                    format!("{rows}x{cols}"),
                    format!("{}/{}/{}", tune.wg, tune.tpr, tune.rows),
                    nbytes as f64 / (1 << 20) as f64,
                    secs * chunks * 1e6,
                    gbs,
                    100.0 * gbs / bw_med
                );
            }
        }
    }
}
