//! A generation session: prefill, decode loop, sampling, streaming text, stop conditions and
//! timing. The KV cache is kept between calls, and a new prompt reuses the longest prefix
//! already in the cache (so multi-turn chat only runs the new turn).

use web_time::Instant;

use crate::gpu::Gpu;
use crate::model::forward::Logits;
use crate::model::llama::{Llama, ModelError};
use crate::sampling::{Sampler, SamplingParams};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop when the output ends with any of these (the stop text itself is not emitted).
    pub stop: Vec<String>,
    /// Token ids that end generation (EOS, end-of-turn).
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 128,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            stop_tokens: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndToken,
    StopString,
    MaxTokens,
    ContextFull,
}

/// Timing and counts of one generation.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Prompt tokens given, and how many of them were already in the cache.
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    /// From the start of the call to the first generated token.
    pub time_to_first_token: f64,
    /// Seconds per decode step, in order.
    pub token_secs: Vec<f64>,
}

impl Stats {
    pub fn prefill_tok_s(&self) -> f64 {
        let n = (self.prompt_tokens - self.reused_tokens) as f64;
        if self.prefill_secs > 0.0 {
            n / self.prefill_secs
        } else {
            0.0
        }
    }

    pub fn decode_tok_s(&self) -> f64 {
        let n = self.token_secs.len() as f64;
        if self.decode_secs > 0.0 {
            n / self.decode_secs
        } else {
            0.0
        }
    }
}

pub struct Output {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub stats: Stats,
}

/// Holds back text that might be the start of a stop string, emits the rest.
struct StopFilter<'a> {
    stops: &'a [String],
    text: String,
    emitted: usize,
}

impl<'a> StopFilter<'a> {
    /// Add text; returns (text safe to emit now, whether a stop string was hit).
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.text.push_str(piece);
        if let Some(end) = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            let out = self.text[self.emitted..end.max(self.emitted)].to_string();
            self.emitted = self.text.len();
            return (out, true);
        }
        // Keep back the longest suffix that is a proper prefix of some stop string.
        let hold = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&n| s.is_char_boundary(n))
                    .map(move |n| &s[..n])
            })
            .filter(|p| self.text.ends_with(p))
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let safe = self.text.len() - hold;
        let out = self.text[self.emitted..safe.max(self.emitted)].to_string();
        self.emitted = safe.max(self.emitted);
        (out, false)
    }

    fn flush(&mut self) -> String {
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

/// A model plus what has been run through it.
pub struct Session {
    pub model: Llama,
    /// Tokens in the KV cache, in order.
    pub cached: Vec<u32>,
}

impl Session {
    pub fn new(model: Llama) -> Self {
        Session {
            model,
            cached: Vec::new(),
        }
    }

    /// Generate after `prompt` (the whole conversation so far, as tokens). `decode` turns
    /// generated tokens into text; `on_text` receives the streamed text as it is produced.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(
        &mut self,
        gpu: &Gpu,
        prompt: &[u32],
        opts: &GenerateOptions,
        decode: &dyn Fn(&[u32]) -> String,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Output, ModelError> {
        let start = Instant::now();
        if prompt.is_empty() {
            return Err(ModelError::Empty);
        }
        // Reuse the cached prefix; always run at least the last prompt token for its logits.
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let reuse = common.min(prompt.len() - 1);
        self.model.pos = reuse;
        self.cached.truncate(reuse);
        let new = &prompt[reuse..];
        if reuse + new.len() > self.model.ctx() {
            return Err(ModelError::ContextFull {
                tokens: new.len(),
                used: reuse,
                ctx: self.model.ctx(),
            });
        }
        let mut sampler = Sampler::new(opts.sampling.clone());
        let need = opts.sampling.need();
        let mut stats = Stats {
            prompt_tokens: prompt.len(),
            reused_tokens: reuse,
            ..Default::default()
        };
        let mut logits: Logits = self.model.forward(gpu, new, need)?;
        self.cached.extend_from_slice(new);
        stats.prefill_secs = start.elapsed().as_secs_f64();
        let mut history = prompt.to_vec();
        let mut generated = Vec::new();
        let mut filter = StopFilter {
            stops: &opts.stop,
            text: String::new(),
            emitted: 0,
        };
        let mut shown = String::new();
        let stop = loop {
            let token = sampler.sample(logits.candidates(), &history);
            if generated.is_empty() {
                stats.time_to_first_token = start.elapsed().as_secs_f64();
            }
            if opts.stop_tokens.contains(&token) {
                break StopReason::EndToken;
            }
            generated.push(token);
            history.push(token);
            // Decode all generated tokens and emit the new tail, once it is whole UTF-8.
            let text = decode(&generated);
            if !text.ends_with('\u{fffd}')
                && text.len() >= shown.len()
                && text.starts_with(shown.as_str())
            {
                let (out, hit) = filter.push(&text[shown.len()..]);
                shown = text;
                if !out.is_empty() {
                    on_text(&out);
                }
                if hit {
                    break StopReason::StopString;
                }
            }
            if generated.len() >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.model.pos + 1 > self.model.ctx() {
                break StopReason::ContextFull;
            }
            let t0 = Instant::now();
            logits = self.model.forward(gpu, &[token], need)?;
            self.cached.push(token);
            stats.token_secs.push(t0.elapsed().as_secs_f64());
        };
        if stop != StopReason::StopString {
            let rest = filter.flush();
            if !rest.is_empty() {
                on_text(&rest);
            }
        }
        stats.decode_secs = stats.token_secs.iter().sum();
        stats.generated_tokens = generated.len();
        Ok(Output {
            tokens: generated,
            stop,
            stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_filter_holds_back_possible_prefixes() {
        let stops = vec!["<end>".to_string()];
        let mut f = StopFilter {
            stops: &stops,
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(f.push("hello <e"), ("hello ".to_string(), false));
        assert_eq!(f.push("x"), ("<ex".to_string(), false));
        assert_eq!(f.push(" bye<en"), (" bye".to_string(), false));
        assert_eq!(f.push("d> tail"), ("".to_string(), true));
    }

    #[test]
    fn stop_filter_flushes_when_no_stop() {
        let stops = vec!["STOP".to_string()];
        let mut f = StopFilter {
            stops: &stops,
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(f.push("abc S").0, "abc ");
        assert_eq!(f.flush(), "S");
    }
}
