//! The profiler on every adapter, by every timing method the adapter has (the wall clock
//! always): one timing per dispatch, positive and finite, names and costs carried over, and
//! the dispatches really run.

mod common;

use common::{assert_close, for_each_gpu, rand_vec};
use tokenmill::gpu::profile::{KernelTiming, Profile, Profiler, TimingMethod};
use tokenmill::gpu::{DType, Dispatch, Gpu, GpuTensor};
use tokenmill::ops::{Elementwise, MatMul, QMatVec};

const N: usize = 4096;
const ROWS: usize = 64;
const COLS: usize = 256;
const M: usize = 4;

struct Plan {
    dispatches: Vec<Dispatch>,
    /// Bytes bound per dispatch, from the tensors' sizes.
    bytes: Vec<u64>,
    y: GpuTensor,
    w: Vec<f32>,
    x: Vec<f32>,
}

/// Two elementwise ops, a matvec and a matmul on small buffers.
fn plan(gpu: &Gpu) -> Plan {
    let f32s = |name, shape: &[usize], seed| {
        let n = shape.iter().product();
        gpu.upload_f32(name, shape, &rand_vec(n, seed, 1.0))
            .unwrap()
    };
    let (a, b) = (f32s("a", &[N], 1), f32s("b", &[N], 2));
    let out = gpu.zeros("out", &[N], DType::F32).unwrap();
    let w = rand_vec(ROWS * COLS, 3, 1.0);
    let wt = gpu
        .upload_chunked("w", [ROWS, COLS], DType::F32, bytemuck::cast_slice(&w))
        .unwrap();
    let x = rand_vec(COLS, 4, 1.0);
    let xt = gpu.upload_f32("x", &[COLS], &x).unwrap();
    let y = gpu.zeros("y", &[ROWS], DType::F32).unwrap();
    let am = f32s("am", &[M, COLS], 5);
    let cm = gpu.zeros("cm", &[M, ROWS], DType::F32).unwrap();

    let mut dispatches = vec![
        Elementwise::Add.prepare(gpu, &a, &b, &out).unwrap(),
        Elementwise::SiluMul.prepare(gpu, &a, &b, &out).unwrap(),
    ];
    let mut bytes = vec![3 * (N as u64) * 4; 2];
    let mv = QMatVec::prepare(gpu, &wt, &xt, &y, false).unwrap();
    for (_, chunk) in &wt.chunks {
        bytes.push(chunk.nbytes() + (COLS + ROWS) as u64 * 4);
    }
    dispatches.extend(mv);
    let mm = MatMul::new(gpu).prepare(gpu, &am, &wt, &cm).unwrap();
    for (_, chunk) in &wt.chunks {
        bytes.push(chunk.nbytes() + (M * COLS + M * ROWS) as u64 * 4);
    }
    dispatches.extend(mm);
    Plan {
        dispatches,
        bytes,
        y,
        w,
        x,
    }
}

/// The methods this device can be profiled with, and the profiler that forces each.
fn methods(gpu: &Gpu) -> Vec<(TimingMethod, Profiler)> {
    let p = |timestamps, inside_passes| Profiler {
        repeats: 2,
        timestamps,
        inside_passes,
    };
    let mut out = vec![(TimingMethod::WallClock, p(false, false))];
    if gpu.caps.timestamps {
        out.push((TimingMethod::PassTimestamps, p(true, false)));
    }
    if gpu.caps.timestamps_inside_passes {
        out.push((TimingMethod::InsidePass, p(true, true)));
    }
    out
}

fn check_profile(what: &str, profile: &Profile, plan: &Plan) {
    let d = &plan.dispatches;
    assert_eq!(
        profile.timings.len(),
        d.len(),
        "{what}: one timing per dispatch"
    );
    for (i, (t, d)) in profile.timings.iter().zip(d).enumerate() {
        assert_eq!(t.index, i, "{what}");
        assert_eq!(t.kernel, d.kernel, "{what}: dispatch {i}");
        assert_eq!(t.workgroups, d.workgroups, "{what}: dispatch {i}");
        assert!(
            t.micros.is_finite() && t.micros > 0.0,
            "{what}: dispatch {i} ({}) took {} µs",
            t.kernel,
            t.micros
        );
        assert_eq!(t.bytes, d.bytes, "{what}: dispatch {i} bytes");
        assert_eq!(t.bytes, plan.bytes[i], "{what}: dispatch {i} bytes bound");
        assert_eq!(t.flops, d.flops, "{what}: dispatch {i} flops");
    }
    assert!(
        profile.step_wall_us.is_finite() && profile.step_wall_us > 0.0,
        "{what}: step {} µs",
        profile.step_wall_us
    );
    let timestamps = profile.method != TimingMethod::WallClock;
    assert_eq!(profile.step_gpu_us.is_some(), timestamps, "{what}");
    if let Some(g) = profile.step_gpu_us {
        assert!(g.is_finite() && g > 0.0, "{what}: GPU step {g} µs");
    }
    let summary = profile.by_kernel();
    let calls: usize = summary.iter().map(|s| s.calls).sum();
    assert_eq!(calls, d.len(), "{what}");
    let ew = summary.iter().find(|s| s.kernel == "elementwise").unwrap();
    assert_eq!(ew.calls, 2, "{what}");
    let mm = summary.iter().find(|s| s.kernel == "matmul").unwrap();
    assert!(mm.gflops.is_some_and(|g| g > 0.0), "{what}: matmul GFLOP/s");
    assert!(
        summary.windows(2).all(|w| w[0].total_us >= w[1].total_us),
        "{what}: sorted by time"
    );
}

#[test]
fn profile_times_every_dispatch_by_every_method() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let plan = plan(gpu);
        let mm = plan
            .dispatches
            .iter()
            .find(|d| d.kernel == "matmul")
            .unwrap();
        assert_eq!(
            mm.flops,
            2 * (M * ROWS * COLS) as u64,
            "matmul sets 2·m·n·k"
        );
        for (method, profiler) in methods(gpu) {
            assert_eq!(profiler.method(gpu), method);
            let what = format!("{} {method:?}", t.label);
            let profile = profiler.run(gpu, &plan.dispatches).unwrap();
            assert_eq!(profile.method, method, "{what}");
            assert_eq!(profile.repeats, 2, "{what}");
            check_profile(&what, &profile, &plan);
        }
        // The profiled dispatches really ran: the matvec's output is right.
        let want = QMatVec::reference(
            DType::F32,
            bytemuck::cast_slice(&plan.w),
            COLS,
            &plan.x,
            None,
        );
        assert_close(
            "matvec after profiling",
            &gpu.read_f32(&plan.y).unwrap(),
            &want,
            1e-4,
            1e-4,
        );
    });
}

#[test]
fn timestamps_off_falls_back_to_the_wall_clock() {
    for_each_gpu(|t| {
        let off = Profiler {
            timestamps: false,
            ..Default::default()
        };
        assert_eq!(off.method(&t.gpu), TimingMethod::WallClock);
        let auto = Profiler::default().method(&t.gpu);
        let want = if t.gpu.caps.timestamps_inside_passes {
            TimingMethod::InsidePass
        } else if t.gpu.caps.timestamps {
            TimingMethod::PassTimestamps
        } else {
            TimingMethod::WallClock
        };
        assert_eq!(auto, want, "{}", t.label);
    });
}

#[test]
fn dispatch_cost_builders_override() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let a = gpu.upload_f32("a", &[8], &[1.0; 8]).unwrap();
        let out = gpu.zeros("out", &[8], DType::F32).unwrap();
        let d = Elementwise::Silu.prepare(gpu, &a, &a, &out).unwrap();
        // a is bound twice (a, b) and out once; the uniform is not counted.
        assert_eq!(d.bytes, 3 * 8 * 4);
        assert_eq!(d.flops, 0);
        let d = d.with_flops(40).with_bytes(64);
        assert_eq!((d.bytes, d.flops), (64, 40));
    });
}

#[test]
fn summary_adds_up_by_kernel() {
    let timing = |index, kernel, micros, bytes, flops| KernelTiming {
        index,
        kernel,
        workgroups: [1, 1, 1],
        micros,
        bytes,
        flops,
    };
    let profile = Profile {
        method: TimingMethod::WallClock,
        repeats: 1,
        timings: vec![
            timing(0, "norm", 1.0, 1000, 0),
            timing(1, "matvec", 4.0, 8000, 0),
            timing(2, "matvec", 2.0, 4000, 0),
            timing(3, "matmul", 3.0, 0, 6000),
        ],
        step_gpu_us: None,
        step_wall_us: 12.0,
        empty_submit_us: 0.5,
    };
    assert_eq!(profile.kernel_sum_us(), 10.0);
    assert_eq!(profile.overhead_us(), 2.0);
    let s = profile.by_kernel();
    let names: Vec<_> = s.iter().map(|s| s.kernel).collect();
    assert_eq!(names, ["matvec", "matmul", "norm"]);
    assert_eq!((s[0].calls, s[0].total_us, s[0].mean_us), (2, 6.0, 3.0));
    assert!((s[0].share - 0.6).abs() < 1e-12);
    // 12000 bytes in 6 µs = 2 GB/s; 6000 FLOPs in 3 µs = 2 GFLOP/s.
    assert!((s[0].gbps.unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(s[0].gflops, None);
    assert!((s[1].gflops.unwrap() - 2.0).abs() < 1e-12);
    assert!((s.iter().map(|s| s.share).sum::<f64>() - 1.0).abs() < 1e-12);
}
