//! Tokenizer: a Hugging Face `tokenizers` pipeline built from GGUF metadata (gpt2-style BPE or
//! SentencePiece-style vocabularies) or read from a `tokenizer.json`, plus BOS/EOS rules and a
//! streaming detokenizer that only emits complete UTF-8.
//!
//! Special tokens written in the text (e.g. `<|im_start|>`) are always matched as single tokens,
//! like llama.cpp's `parse_special = true`; `add_special` only controls the BOS/EOS the model adds.

mod from_gguf;

use thiserror::Error;

use crate::model::{LoadError, Metadata};

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Metadata(#[from] LoadError),
    #[error("{file}: tokenizer.ggml.model '{model}' is not supported, expected gpt2 or llama")]
    UnsupportedModel { file: String, model: String },
    #[error("{file}: pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported; known: {known}")]
    UnsupportedPre {
        file: String,
        pre: String,
        known: String,
    },
    #[error("{file}: {what}")]
    BadVocab { file: String, what: String },
    #[error("{file}: building the tokenizer failed: {message}")]
    Build { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding failed: {message}")]
    Encode { message: String },
    #[error("decoding failed: {message}")]
    Decode { message: String },
    #[error("token id {id} is out of range for a vocabulary of {vocab_size}")]
    BadTokenId { id: u32, vocab_size: usize },
}

pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// Texts that end generation when they are control tokens of a vocabulary (as llama.cpp does).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "<EOT>",
    "</s>",
];

/// A tokenizer with its special-token rules.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    /// The primary EOS (or `None`), then every other end-of-generation id.
    eos_ids: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos_id", &self.bos_id)
            .field("eos_ids", &self.eos_ids)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(meta: &Metadata) -> Result<Tokenizer> {
        from_gguf::build(meta)
    }

    /// Reads a `tokenizer.json`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            file: name.clone(),
            source,
        })?;
        Tokenizer::from_json_bytes(&name, &bytes)
    }

    /// Parses a `tokenizer.json` held in memory; `name` labels errors. BOS/EOS come from the
    /// post-processor and the special added tokens; [`Tokenizer::set_special`] overrides them.
    pub fn from_json_bytes(name: &str, bytes: &[u8]) -> Result<Tokenizer> {
        let inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Build {
                file: name.into(),
                message: e.to_string(),
            })?;
        let vocab_size = inner.get_vocab_size(true);
        let specials: Vec<(u32, String)> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        let eos_ids = eog_ids(None, specials.iter().map(|(id, s)| (*id, s.as_str())));
        // BOS as added by the post-processor, if any: encode nothing and look.
        let empty = inner
            .encode("", true)
            .map_err(|e| TokenizerError::Build {
                file: name.into(),
                message: e.to_string(),
            })?
            .get_ids()
            .to_vec();
        let bos_id = empty.first().copied().filter(|id| !eos_ids.contains(id));
        Ok(Tokenizer {
            bos_id,
            add_bos: bos_id.is_some(),
            add_eos: empty.last().is_some_and(|id| eos_ids.contains(id)),
            eos_ids,
            vocab_size,
            inner,
        })
    }

    /// Sets BOS and the primary EOS by token text (e.g. from `tokenizer_config.json`).
    pub fn set_special(&mut self, bos: Option<&str>, eos: Option<&str>) -> Result<()> {
        let find = |t: &str| {
            self.inner
                .token_to_id(t)
                .ok_or_else(|| TokenizerError::BadVocab {
                    file: "tokenizer".into(),
                    what: format!("special token '{t}' is not in the vocabulary"),
                })
        };
        if let Some(b) = bos {
            self.bos_id = Some(find(b)?);
        }
        if let Some(e) = eos {
            let id = find(e)?;
            self.eos_ids.retain(|&x| x != id);
            self.eos_ids.insert(0, id);
        }
        Ok(())
    }

    /// Token ids of `text`. With `add_special`, BOS/EOS are added as the model's rules say.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc =
            self.inner
                .encode_fast(text, add_special)
                .map_err(|e| TokenizerError::Encode {
                    message: e.to_string(),
                })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; with `skip_special`, control tokens (BOS, EOS, chat markers) are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(TokenizerError::BadTokenId {
                id,
                vocab_size: self.vocab_size,
            });
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Decode {
                message: e.to_string(),
            })
    }

    /// An incremental decoder for generated tokens.
    pub fn stream(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tok: self,
            skip_special,
            ids: Vec::new(),
            context: 0,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The primary EOS id, if the vocabulary names one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_ids.first().copied()
    }

    /// Every id that ends generation (EOS, EOT, `<|im_end|>`...).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// Whether `encode(.., true)` adds BOS / EOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    pub fn adds_eos(&self) -> bool {
        self.add_eos
    }

    /// The vocabulary string of `id` (byte-level or `▁` forms, as stored).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    /// BOS as text, for chat templates.
    pub fn bos_token(&self) -> Option<String> {
        self.bos_id.and_then(|id| self.token(id))
    }

    /// EOS as text, for chat templates.
    pub fn eos_token(&self) -> Option<String> {
        self.eos_id().and_then(|id| self.token(id))
    }

    /// The underlying `tokenizers` pipeline.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// End-of-generation ids: `eos` first, then control tokens with a known end-of-turn text.
fn eog_ids<'a>(eos: Option<u32>, specials: impl Iterator<Item = (u32, &'a str)>) -> Vec<u32> {
    let mut ids: Vec<u32> = eos.into_iter().collect();
    let mut rest: Vec<u32> = specials
        .filter(|(id, s)| EOG_TEXTS.contains(s) && Some(*id) != eos)
        .map(|(id, _)| id)
        .collect();
    rest.sort_unstable();
    rest.dedup();
    ids.extend(rest);
    ids
}

/// Decodes tokens one at a time, emitting text only once it is complete UTF-8.
///
/// Each step decodes the pending tokens together with the previously emitted chunk as context
/// and emits what they add past the context's text, so decoders that look at neighbours
/// (leading-space rules, byte fallback, multi-token characters) match a one-shot decode.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Context tokens (already emitted), then pending ones.
    ids: Vec<u32>,
    /// Number of context tokens at the front of `ids`.
    context: usize,
}

impl StreamDecoder<'_> {
    /// Adds one token; returns newly completed text, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let (prefix, text) = self.texts()?;
        if text.len() <= prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let out = new_part(&prefix, &text);
        self.ids.drain(..self.context);
        self.context = self.ids.len();
        Ok(Some(out))
    }

    /// Flushes pending tokens (an incomplete character becomes U+FFFD) and resets.
    pub fn finish(&mut self) -> Result<Option<String>> {
        let (prefix, text) = self.texts()?;
        self.ids.clear();
        self.context = 0;
        let out = new_part(&prefix, &text);
        Ok((!out.is_empty()).then_some(out))
    }

    fn texts(&self) -> Result<(String, String)> {
        let prefix = self
            .tok
            .decode(&self.ids[..self.context], self.skip_special)?;
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        Ok((prefix, text))
    }
}

/// `text` past `prefix`; if `prefix` is not a prefix of it, past their common part.
fn new_part(prefix: &str, text: &str) -> String {
    if let Some(rest) = text.strip_prefix(prefix) {
        return rest.to_string();
    }
    let common = prefix
        .char_indices()
        .zip(text.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prefix.len().min(text.len()), |((i, _), _)| i);
    let mut cut = common;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[cut..].to_string()
}
