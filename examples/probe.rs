use tokenmill::gpu::{Gpu, GpuOptions};
use tokenmill::model::{GgufFile, Llama};
use tokenmill::sampling::LogitsNeed;

fn main() {
    let gpu = Gpu::open_blocking(&GpuOptions::default()).unwrap();
    let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let t0 = std::time::Instant::now();
    let mut m = Llama::load(&gpu, &file, 256, |_, _| {}).unwrap();
    eprintln!("load {:?}", t0.elapsed());
    let prompt = [504u32, 3575, 282, 4649, 314];
    let t0 = std::time::Instant::now();
    let l = m.forward(&gpu, &prompt, LogitsNeed::Full).unwrap();
    eprintln!("prefill {:?}", t0.elapsed());
    let mut c = l.candidates();
    c.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("top5 {:?}", &c[..5]);
    let mut tok = c[0].1;
    let mut out = vec![tok];
    let t0 = std::time::Instant::now();
    for _ in 0..8 {
        let l = m.forward(&gpu, &[tok], LogitsNeed::Argmax).unwrap();
        tok = l.candidates()[0].1;
        out.push(tok);
    }
    eprintln!("8 decode {:?}", t0.elapsed());
    println!("greedy {out:?}");
}
