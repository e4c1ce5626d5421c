//! Prefill matmul throughput: GFLOP/s = 2·M·N·K / time for each weight format on each adapter.
//!
//! `cargo bench --no-default-features --bench matmul -- [--m 128 --n 2048 --k 2048]
//!  [--formats f32,f16,q8_0,q4_0,q4_1] [--reps 4] [--samples 5] [--a f32|f16]
//!  [--tune wg_n=8,wg_m=8,bk=32,tm=8,tn=4,sg=1,f16t=0,f16m=0]`
//! Each sample is one submission of `reps` matmuls; the median sample is reported, and on Linux
//! also the best throughput per CPU-second (software adapters run on this process's threads).

use std::time::Instant;

use tokenmill::gpu::{DType, Gpu, GpuOptions};
use tokenmill::ops::{MatMul, MatMulTune};
use tokenmill::quant;

struct Args {
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
    samples: usize,
    formats: Vec<DType>,
    a_f16: bool,
    tune: Vec<(String, u32)>,
}

fn parse_args() -> Args {
    let mut args = Args {
        m: 128,
        n: 2048,
        k: 2048,
        reps: 4,
        samples: 5,
        formats: vec![
            DType::F32,
            DType::F16,
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
        ],
        a_f16: false,
        tune: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--m" => args.m = val().parse().expect("--m"),
            "--n" => args.n = val().parse().expect("--n"),
            "--k" => args.k = val().parse().expect("--k"),
            "--reps" => args.reps = val().parse().expect("--reps"),
            "--samples" => args.samples = val().parse().expect("--samples"),
            "--a" => args.a_f16 = val() == "f16",
            "--formats" => {
                args.formats = val()
                    .split(',')
                    .map(|f| match f {
                        "f32" => DType::F32,
                        "f16" => DType::F16,
                        "q8_0" => DType::Q8_0,
                        "q4_0" => DType::Q4_0,
                        "q4_1" => DType::Q4_1,
                        other => panic!("unknown format {other}"),
                    })
                    .collect()
            }
            "--tune" => {
                args.tune = val()
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("--tune key=value,...");
                        (k.to_string(), v.parse().expect("tune value"))
                    })
                    .collect()
            }
            // cargo bench passes --bench; ignore anything else we do not know.
            _ => {}
        }
    }
    args
}

fn apply(mut t: MatMulTune, kv: &[(String, u32)]) -> MatMulTune {
    for (k, v) in kv {
        match k.as_str() {
            "wg_n" => t.wg_n = *v,
            "wg_m" => t.wg_m = *v,
            "bk" => t.bk = *v,
            "tm" => t.tm = *v,
            "tn" => t.tn = *v,
            "sg" => t.subgroup_a = *v != 0,
            "f16t" => t.f16_tiles = *v != 0,
            "f16m" => t.f16_math = *v != 0,
            other => panic!("unknown tune key {other}"),
        }
    }
    t
}

/// CPU seconds used by this process (all threads) so far, on Linux; software adapters run their
/// shaders on our threads, so this also gives a throughput per CPU second that does not depend
/// on how busy a shared machine is.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let args = parse_args();
    let (m, n, k) = (args.m, args.n, args.k);
    for gpu in Gpu::open_all_blocking(&GpuOptions::default()) {
        let gpu = match gpu {
            Ok(g) if g.desc.backend != "gl" => g,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("skipping adapter: {e}");
                continue;
            }
        };
        let tune = apply(MatMulTune::for_device(&gpu), &args.tune).fit(&gpu);
        println!(
            "{} ({}), M={m} N={n} K={k}, A {}, {tune:?}",
            gpu.desc.name,
            gpu.desc.backend,
            if args.a_f16 { "f16" } else { "f32" }
        );
        let a_vals: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let a = if args.a_f16 {
            let h: Vec<half::f16> = a_vals.iter().map(|&x| half::f16::from_f32(x)).collect();
            gpu.upload_f16("a", &[m, k], &h).expect("upload a")
        } else {
            gpu.upload_f32("a", &[m, k], &a_vals).expect("upload a")
        };
        let c = gpu.zeros("c", &[m, n], DType::F32).expect("c");
        let w_vals: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729 % 2001) as f32 / 1000.0) - 1.0)
            .collect();
        for &fmt in &args.formats {
            let bytes = quant::quantize(fmt, &w_vals);
            let w = gpu
                .upload_chunked("w", [n, k], fmt, &bytes)
                .expect("upload w");
            let op = MatMul::new(&gpu).with_tune(tune);
            let one = op.prepare(&gpu, &a, &w, &c).expect("prepare");
            let mut ds = Vec::new();
            for _ in 0..args.reps {
                ds.extend(op.prepare(&gpu, &a, &w, &c).expect("prepare"));
            }
            gpu.run(&one).expect("warm-up");
            let mut times = Vec::new();
            let mut cpus = Vec::new();
            for _ in 0..args.samples {
                let cpu0 = cpu_seconds();
                let t0 = Instant::now();
                gpu.run(&ds).expect("run");
                times.push(t0.elapsed().as_secs_f64());
                if let (Some(a), Some(b)) = (cpu0, cpu_seconds()) {
                    cpus.push(b - a);
                }
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            cpus.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let med = times[times.len() / 2];
            let cpu = cpus.first().copied();
            let flops = 2.0 * (m * n * k) as f64 * args.reps as f64;
            let per_cpu = cpu.filter(|&c| c > 0.0).map_or(String::new(), |c| {
                format!(", best {:.2} GFLOP per CPU-second", flops / c / 1e9)
            });
            println!(
                "  {:>5}: {:8.2} GFLOP/s  ({:.1} ms per matmul, median of {}{per_cpu})",
                fmt.name(),
                flops / med / 1e9,
                med * 1e3 / args.reps as f64,
                args.samples
            );
        }
    }
}
