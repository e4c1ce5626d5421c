//! `tokenmill run`: one prompt (or one chat message), streamed to stdout; load progress and a
//! summary go to stderr.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use tokenmill::chat::Message;
use tokenmill::generate::{GenerateOptions, Output, Session};
use tokenmill::sampling::SamplingParams;

use super::load::{self, Loaded, ModelArgs};

#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Maximum tokens to generate
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all)
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// 1 = off
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the output contains this text (repeatable)
    #[arg(long)]
    pub stop: Vec<String>,
    /// Keep generating past end-of-sequence tokens (for fixed-length benchmarks)
    #[arg(long)]
    pub ignore_eos: bool,
}

impl SamplingArgs {
    pub fn options(&self, loaded: &Loaded) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repetition_penalty: self.repeat_penalty,
                seed: self.seed,
                ..Default::default()
            },
            stop: self.stop.clone(),
            stop_tokens: if self.ignore_eos {
                Vec::new()
            } else {
                loaded.tokenizer.eos_ids().to_vec()
            },
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// The prompt; read from stdin when absent
    #[arg(long)]
    pub prompt: Option<String>,
    /// Treat the prompt as one user message rendered through the model's chat template
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat
    #[arg(long)]
    pub system: Option<String>,
}

fn read_prompt(args: &RunArgs) -> Result<String> {
    let text = match &args.prompt {
        Some(p) => p.clone(),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the prompt from stdin")?;
            String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "the prompt on stdin is not valid UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                )
            })?
        }
    };
    if text.trim().is_empty() {
        bail!("empty prompt: give --prompt TEXT or text on stdin");
    }
    Ok(text)
}

/// Render and tokenize `messages` (chat) or `text` (raw), checking it fits the context.
pub fn prompt_tokens(
    loaded: &Loaded,
    session: &Session,
    text: &str,
    messages: Option<&[Message]>,
) -> Result<Vec<u32>> {
    let tokens = match messages {
        Some(m) => {
            let Some(t) = &loaded.template else {
                bail!(
                    "this model has no chat template (tokenizer.chat_template); run without --chat"
                )
            };
            let rendered = t.render(m, true)?;
            loaded.tokenizer.encode(&rendered, false)?
        }
        None => loaded.tokenizer.encode(text, true)?,
    };
    let ctx = session.model.ctx();
    if tokens.len() >= ctx {
        bail!(
            "prompt is {} tokens, longer than the context of {ctx} (raise --ctx, at most {})",
            tokens.len(),
            session.model.cfg.context_length
        );
    }
    Ok(tokens)
}

/// Stream one generation to stdout; a closed pipe stops quietly.
pub fn generate(
    loaded: &Loaded,
    session: &mut Session,
    tokens: &[u32],
    opts: &GenerateOptions,
) -> Result<(Output, String)> {
    let tokenizer = &loaded.tokenizer;
    let decode = |ids: &[u32]| tokenizer.decode(ids, true).unwrap_or_default();
    let mut text = String::new();
    let mut out = std::io::stdout().lock();
    let mut open = true;
    let output = session.generate(&loaded.gpu, tokens, opts, &decode, &mut |piece| {
        text.push_str(piece);
        if open && (out.write_all(piece.as_bytes()).is_err() || out.flush().is_err()) {
            open = false;
        }
    })?;
    let _ = out.flush();
    Ok((output, text))
}

pub fn summary(loaded: &Loaded, session: &Session, o: &Output) -> String {
    let s = &o.stats;
    let (w, kv, act) = session.model.memory();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    format!(
        "\n-- {} ({}) | load {:.1} s | prompt {} tok ({} cached) at {:.1} tok/s | {} tok at {:.1} tok/s | first token {:.0} ms | GPU memory {:.1} MiB weights + {:.1} MiB KV cache + {:.1} MiB activations | stop: {:?}",
        loaded.gpu.desc.name,
        loaded.gpu.desc.backend,
        loaded.load_secs,
        s.prompt_tokens,
        s.reused_tokens,
        s.prefill_tok_s(),
        s.generated_tokens,
        s.decode_tok_s(),
        s.time_to_first_token * 1e3,
        mib(w),
        mib(kv),
        mib(act),
        o.stop
    )
}

pub fn run(args: RunArgs) -> Result<()> {
    let text = read_prompt(&args)?;
    let (loaded, mut session) = load::load(&args.model, (0, args.sampling.max_tokens as u32))?;
    let messages = args.chat.then(|| {
        let mut m: Vec<Message> = args.system.iter().map(Message::system).collect();
        m.push(Message::user(text.clone()));
        m
    });
    let tokens = prompt_tokens(&loaded, &session, &text, messages.as_deref())?;
    let opts = args.sampling.options(&loaded);
    let (output, _) = generate(&loaded, &mut session, &tokens, &opts)?;
    let _ = super::print("\n");
    eprintln!("{}", summary(&loaded, &session, &output));
    Ok(())
}
