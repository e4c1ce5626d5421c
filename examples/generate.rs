//! Generate text with the library in a few lines.
//! Run: source scripts/lavapipe.sh (without a GPU); bash models/fetch.sh;
//!      cargo run --release --example generate -- "Why is the sky blue?"

use tokenmill::chat::{ChatTemplate, Message};
use tokenmill::generate::{GenerateOptions, Session};
use tokenmill::model::{GgufFile, Llama};
use tokenmill::tokenizer::Tokenizer;
use tokenmill::{Gpu, GpuOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Why is the sky blue?".into());
    let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
    let gpu = Gpu::open_blocking(&GpuOptions::default())?;
    let tokenizer = Tokenizer::from_gguf(&file.gguf().metadata)?;
    let template = ChatTemplate::from_gguf(&file.gguf().metadata, &tokenizer)?;
    let mut session = Session::new(Llama::load(&gpu, &file, 1024, |_, _| {})?);

    let prompt = template.render(&[Message::user(question)], true)?;
    let tokens = tokenizer.encode(&prompt, false)?;
    let opts = GenerateOptions {
        max_tokens: 64,
        stop_tokens: tokenizer.eos_ids().to_vec(),
        ..Default::default()
    };
    let decode = |ids: &[u32]| tokenizer.decode(ids, true).unwrap_or_default();
    let out = session.generate(&gpu, &tokens, &opts, &decode, &mut |text| print!("{text}"))?;
    println!(
        "\n[{} tokens at {:.1} tok/s on {}]",
        out.stats.generated_tokens,
        out.stats.decode_tok_s(),
        gpu.desc.name
    );
    Ok(())
}
