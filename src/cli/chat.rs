//! `tokenmill chat`: an interactive multi-turn chat. The KV cache is kept between turns: each
//! turn renders the whole conversation and only the tokens past the cached prefix are run.

use std::io::{BufRead, Write};

use anyhow::{bail, Result};
use clap::Args;
use tokenmill::chat::Message;

use super::load::{self, ModelArgs};
use super::run::{generate, prompt_tokens, summary, SamplingArgs};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// System message
    #[arg(long)]
    pub system: Option<String>,
    /// Print the speed summary after each answer
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: ChatArgs) -> Result<()> {
    let (loaded, mut session) = load::load(&args.model, (0, args.sampling.max_tokens as u32))?;
    if loaded.template.is_none() {
        bail!("this model has no chat template (tokenizer.chat_template); use `tokenmill run` instead");
    }
    let opts = args.sampling.options(&loaded);
    let mut messages: Vec<Message> = args.system.iter().map(Message::system).collect();
    eprintln!(
        "chatting with {} on {} — /reset starts over, /exit or Ctrl-D quits",
        loaded.file.gguf().file,
        loaded.gpu.desc.name
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next() else { break };
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                eprintln!("error: that line is not valid UTF-8; type it again");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        messages.push(Message::user(line.clone()));
        let tokens = match prompt_tokens(&loaded, &session, &line, Some(&messages)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                messages.pop();
                continue;
            }
        };
        let (output, text) = generate(&loaded, &mut session, &tokens, &opts)?;
        let _ = super::print("\n");
        messages.push(Message::assistant(text.trim().to_string()));
        if args.stats {
            eprintln!("{}", summary(&loaded, &session, &output));
        }
    }
    Ok(())
}
