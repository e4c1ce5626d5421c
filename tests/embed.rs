//! Embedding gather for every table format against the CPU dequantizer, including tables split
//! into several row chunks (a device opened with a 1 MiB binding limit) and ids past the vocab.
//!
//! Results must match bit for bit: every dequantized value is one f16 scale (11-bit mantissa)
//! times a small integer (<= 8 bits), which f32 holds exactly; q4_1 adds the f16 min once,
//! rounded the same way on both sides (an fma cannot differ, the product being exact).

mod common;

use common::{for_each_gpu, rand_vec};
use tokenmill::gpu::{ChunkedTensor, DType, Gpu, GpuOptions};
use tokenmill::ops::Embedding;
use tokenmill::quant::quantize;

const FORMATS: [DType; 5] = [
    DType::F32,
    DType::F16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
];

fn gather(gpu: &Gpu, ids: &[u32], table: &ChunkedTensor) -> Vec<f32> {
    let dim = table.shape[1];
    let gids = gpu.upload_u32("ids", &[ids.len()], ids).unwrap();
    // Start from garbage so rows the kernel fails to write are caught.
    let out = gpu
        .upload_f32("out", &[ids.len(), dim], &vec![f32::NAN; ids.len() * dim])
        .unwrap();
    gpu.run(&Embedding::prepare(gpu, &gids, table, &out).unwrap())
        .unwrap();
    gpu.read_f32(&out).unwrap()
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i} is {g}, expected {w}"
        );
    }
}

#[test]
fn embed_matches_cpu() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        for dtype in FORMATS {
            // 96 = 3 blocks: q8_0 rows are 102 bytes, so most rows start off a word boundary.
            let dims: &[usize] = if dtype.is_quantized() {
                &[32, 96, 256]
            } else {
                &[1, 7, 96]
            };
            for &dim in dims {
                let vocab = 37;
                let bytes = quantize(dtype, &rand_vec(vocab * dim, dim as u64, 3.0));
                let table = gpu
                    .upload_chunked("table", [vocab, dim], dtype, &bytes)
                    .unwrap();
                for ids in [
                    vec![0u32],
                    vec![36, 0, 5, 5, 18],
                    vec![3, 37, 1, u32::MAX, 36, 2, 9],
                ] {
                    let what = format!("{dtype:?} dim {dim} ids {ids:?}");
                    check(
                        &what,
                        &gather(gpu, &ids, &table),
                        &Embedding::reference(&ids, &bytes, dtype, dim),
                    );
                }
            }
        }
    });
}

#[test]
fn embed_chunked_table() {
    let opts = GpuOptions {
        max_binding_size: Some(1 << 20),
        ..Default::default()
    };
    let gpus: Vec<Gpu> = Gpu::open_all_blocking(&opts)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|g| g.desc.backend != "gl")
        .collect();
    if gpus.is_empty() {
        eprintln!("WARNING: no GPU adapter for the chunked embedding test");
    }
    for gpu in &gpus {
        eprintln!("-- on {} (max binding 1 MiB)", gpu.desc.name);
        for dtype in FORMATS {
            let dim = 64;
            // About 2.5 MiB of table: three chunks.
            let vocab = (5 << 19) / dtype.bytes_for(dim).unwrap();
            let bytes = quantize(dtype, &rand_vec(vocab * dim, 99, 2.0));
            let table = gpu
                .upload_chunked("table", [vocab, dim], dtype, &bytes)
                .unwrap();
            assert!(
                table.chunks.len() >= 3,
                "{dtype:?}: {} chunks",
                table.chunks.len()
            );
            // Both sides of every chunk boundary, the ends, repeats and out-of-range ids.
            let mut ids: Vec<u32> = vec![0, vocab as u32 - 1, vocab as u32, 7, 7];
            for (start, _) in &table.chunks[1..] {
                ids.extend([*start as u32 - 1, *start as u32]);
            }
            ids.extend(
                rand_vec(20, 5, 1.0)
                    .iter()
                    .map(|v| ((v + 1.0) * 0.5 * vocab as f32) as u32),
            );
            let what = format!("{dtype:?} vocab {vocab} in {} chunks", table.chunks.len());
            check(
                &what,
                &gather(gpu, &ids, &table),
                &Embedding::reference(&ids, &bytes, dtype, dim),
            );
        }
    }
}

#[test]
fn embed_rejects_bad_input() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let msg = |r: tokenmill::gpu::Result<Vec<tokenmill::gpu::Dispatch>>| {
            r.expect_err("an error").to_string()
        };
        let table = gpu
            .upload_chunked("table", [4, 32], DType::Q8_0, &[0u8; 4 * 34])
            .unwrap();
        let ids = gpu.upload_u32("ids", &[3], &[0, 1, 2]).unwrap();
        let out = gpu.zeros("out", &[3, 32], DType::F32).unwrap();
        let bad_out = gpu.zeros("out", &[3, 31], DType::F32).unwrap();
        let m = msg(Embedding::prepare(gpu, &ids, &table, &bad_out));
        assert!(
            m.contains("embed") && m.contains("[3, 31]") && m.contains("[3, 32]"),
            "{m}"
        );
        let fids = gpu.zeros("ids", &[3], DType::F32).unwrap();
        assert!(msg(Embedding::prepare(gpu, &fids, &table, &out)).contains("ids"));
        let ints = gpu
            .upload_chunked("table", [4, 32], DType::U32, &[0u8; 4 * 32 * 4])
            .unwrap();
        assert!(msg(Embedding::prepare(gpu, &ids, &ints, &out)).contains("u32"));
    });
}
