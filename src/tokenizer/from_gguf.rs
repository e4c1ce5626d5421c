//! Builds a `tokenizers` pipeline from GGUF `tokenizer.ggml.*` metadata, following llama.cpp's
//! rules: gpt2 = byte-level BPE with the regex named by `tokenizer.ggml.pre`; llama =
//! SentencePiece-style BPE over scores with byte fallback and a space prefix per text fragment.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{eog_ids, Result, Tokenizer, TokenizerError};
use crate::model::Metadata;

/// GGUF token types (llama.cpp's llama_token_type).
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;

/// Split regexes of the Llama 3 and Qwen2 families (the GPT-2 one is ByteLevel's built-in).
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a `tokenizer.ggml.pre` name splits text before BPE.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PreKind {
    /// GPT-2 regex.
    Gpt2,
    /// Every digit alone, then the GPT-2 regex.
    DigitsGpt2,
    /// A regex split, then byte-level mapping without the GPT-2 regex.
    Regex(&'static str),
}

/// The pre-tokenizers known here, by `tokenizer.ggml.pre` name (llama.cpp groups them alike).
const PRE_TOKENIZERS: &[(&str, PreKind)] = &[
    ("gpt2", PreKind::Gpt2),
    ("gpt-2", PreKind::Gpt2),
    ("mpt", PreKind::Gpt2),
    ("olmo", PreKind::Gpt2),
    ("jais", PreKind::Gpt2),
    ("smollm", PreKind::DigitsGpt2),
    ("starcoder", PreKind::DigitsGpt2),
    ("refact", PreKind::DigitsGpt2),
    ("command-r", PreKind::DigitsGpt2),
    ("codeshell", PreKind::DigitsGpt2),
    ("exaone", PreKind::DigitsGpt2),
    ("minerva-7b", PreKind::DigitsGpt2),
    ("llama3", PreKind::Regex(LLAMA3_REGEX)),
    ("llama-v3", PreKind::Regex(LLAMA3_REGEX)),
    ("llama-bpe", PreKind::Regex(LLAMA3_REGEX)),
    ("falcon3", PreKind::Regex(LLAMA3_REGEX)),
    ("pixtral", PreKind::Regex(LLAMA3_REGEX)),
    ("dbrx", PreKind::Regex(LLAMA3_REGEX)),
    ("smaug-bpe", PreKind::Regex(LLAMA3_REGEX)),
    ("qwen2", PreKind::Regex(QWEN2_REGEX)),
    ("stablelm2", PreKind::Regex(QWEN2_REGEX)),
    ("deepseek-r1-qwen", PreKind::Regex(QWEN2_REGEX)),
];

/// Vocabulary facts shared by both model kinds.
struct Vocabulary<'a> {
    file: &'a str,
    tokens: &'a [String],
    types: Vec<i64>,
}

pub(super) fn build(meta: &Metadata) -> Result<Tokenizer> {
    let file = meta.file();
    let model = meta.str("tokenizer.ggml.model")?;
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let types = match meta.get("tokenizer.ggml.token_type") {
        Some(_) => meta.ints("tokenizer.ggml.token_type")?,
        None => vec![1; tokens.len()],
    };
    let bad = |what: String| TokenizerError::BadVocab {
        file: file.into(),
        what,
    };
    if tokens.is_empty() {
        return Err(bad("tokenizer.ggml.tokens is empty".into()));
    }
    if types.len() != tokens.len() {
        return Err(bad(format!(
            "tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens has {}",
            types.len(),
            tokens.len()
        )));
    }
    let vocab = Vocabulary {
        file,
        tokens,
        types,
    };
    let id_key = |key: &str| -> Result<Option<u32>> {
        match meta.opt_u64(key)? {
            Some(id) if (id as usize) < tokens.len() => Ok(Some(id as u32)),
            Some(id) => Err(bad(format!(
                "{key} = {id} is outside the vocabulary of {}",
                tokens.len()
            ))),
            None => Ok(None),
        }
    };
    let bos = id_key("tokenizer.ggml.bos_token_id")?;
    let eos = id_key("tokenizer.ggml.eos_token_id")?;
    let eot = id_key("tokenizer.ggml.eot_token_id")?;
    let unk = id_key("tokenizer.ggml.unknown_token_id")?;

    let (mut inner, default_bos) = match model {
        "gpt2" => (build_bpe(meta, &vocab)?, false),
        "llama" => (build_spm(meta, &vocab, unk)?, true),
        other => {
            return Err(TokenizerError::UnsupportedModel {
                file: file.into(),
                model: other.into(),
            })
        }
    };
    let add_bos = meta
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(default_bos)
        && bos.is_some();
    let add_eos = meta
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false)
        && eos.is_some();

    add_special_tokens(&mut inner, &vocab);
    if add_bos || add_eos {
        let mut single = Vec::new();
        let mut specials = Vec::new();
        let mut push = |id: Option<u32>, single: &mut Vec<String>| {
            if let Some(id) = id {
                let text = tokens[id as usize].clone();
                specials.push((text.clone(), id));
                single.push(text);
            }
        };
        push(bos.filter(|_| add_bos), &mut single);
        single.push("$A".to_string());
        push(eos.filter(|_| add_eos), &mut single);
        let post = TemplateProcessing::builder()
            .try_single(single)
            .map_err(|e| build_err(file, e))?
            .special_tokens(specials)
            .build()
            .map_err(|e| build_err(file, e))?;
        inner.with_post_processor(Some(post));
    }

    let mut control = vocab
        .types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == TYPE_CONTROL)
        .map(|(i, _)| (i as u32, tokens[i].as_str()));
    let mut eos_ids = eog_ids(eos, &mut control);
    if let Some(eot) = eot.filter(|id| !eos_ids.contains(id)) {
        eos_ids.push(eot);
    }
    Ok(Tokenizer {
        vocab_size: inner.get_vocab_size(true),
        inner,
        bos_id: bos,
        eos_ids,
        add_bos,
        add_eos,
    })
}

fn build_err(file: &str, e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build {
        file: file.into(),
        message: e.to_string(),
    }
}

/// Control and unknown tokens become special added tokens (matched in text, skipped when
/// decoding with `skip_special`); user-defined ones become plain added tokens.
fn add_special_tokens(inner: &mut tokenizers::Tokenizer, vocab: &Vocabulary) {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (text, &t) in vocab.tokens.iter().zip(&vocab.types) {
        if text.is_empty() {
            continue;
        }
        match t {
            TYPE_CONTROL | TYPE_UNKNOWN => special.push(AddedToken::from(text.clone(), true)),
            TYPE_USER_DEFINED => {
                user.push(AddedToken::from(text.clone(), false).normalized(false));
            }
            _ => {}
        }
    }
    inner.add_special_tokens(&special);
    inner.add_tokens(&user);
}

fn vocab_map(vocab: &Vocabulary) -> Vocab {
    // Later duplicates win, as in llama.cpp's token_to_id map.
    vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

fn build_bpe(meta: &Metadata, vocab: &Vocabulary) -> Result<tokenizers::Tokenizer> {
    let file = vocab.file;
    let pre_name = meta.opt_str("tokenizer.ggml.pre")?.unwrap_or("gpt2");
    let pre = PRE_TOKENIZERS
        .iter()
        .find(|(n, _)| *n == pre_name)
        .map(|(_, k)| *k)
        .ok_or_else(|| TokenizerError::UnsupportedPre {
            file: file.into(),
            pre: pre_name.into(),
            known: PRE_TOKENIZERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let merges = meta
        .strings("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| TokenizerError::BadVocab {
                    file: file.into(),
                    what: format!("tokenizer.ggml.merges[{i}] = {m:?} is not two tokens"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(vocab), merges)
        .ignore_merges(matches!(pre, PreKind::Regex(r) if r == LLAMA3_REGEX))
        .build()
        .map_err(|e| build_err(file, e))?;

    let byte_level = ByteLevel::new(false, true, true);
    let pre_tok: PreTokenizerWrapper = match pre {
        PreKind::Gpt2 => byte_level.into(),
        PreKind::DigitsGpt2 => {
            PreSequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
        PreKind::Regex(r) => {
            let split = Split::new(
                SplitPattern::Regex(r.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| build_err(file, e))?;
            PreSequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
    };
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(ByteLevel::default()));
    Ok(tok)
}

/// SentencePiece vocabularies store scores, not merges: every split of a token into two vocabulary
/// tokens is a merge, ranked by the merged token's score (higher first), as llama.cpp's SPM
/// tokenizer picks the best-scoring pair first.
fn build_spm(
    meta: &Metadata,
    vocab: &Vocabulary,
    unk: Option<u32>,
) -> Result<tokenizers::Tokenizer> {
    let file = vocab.file;
    let scores: Vec<f64> = match meta.get("tokenizer.ggml.scores") {
        Some(_) => match meta.array("tokenizer.ggml.scores")? {
            crate::model::MetaArray::F32(v) => v.iter().map(|&x| x as f64).collect(),
            crate::model::MetaArray::F64(v) => v.clone(),
            other => {
                return Err(TokenizerError::BadVocab {
                    file: file.into(),
                    what: format!(
                        "tokenizer.ggml.scores is {}, expected floats",
                        other.type_name()
                    ),
                })
            }
        },
        None => vec![0.0; vocab.tokens.len()],
    };
    if scores.len() != vocab.tokens.len() {
        return Err(TokenizerError::BadVocab {
            file: file.into(),
            what: format!(
                "tokenizer.ggml.scores has {} entries, tokenizer.ggml.tokens has {}",
                scores.len(),
                vocab.tokens.len()
            ),
        });
    }
    let ids: HashMap<&str, usize> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut candidates: Vec<(f64, usize, String, String)> = Vec::new();
    for (i, t) in vocab.tokens.iter().enumerate() {
        if vocab.types[i] != 1 {
            continue;
        }
        for (cut, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(cut);
            if ids.contains_key(a) && ids.contains_key(b) {
                candidates.push((scores[i], i, a.to_string(), b.to_string()));
            }
        }
    }
    candidates.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let merges = candidates.into_iter().map(|(_, _, a, b)| (a, b)).collect();

    let mut builder = BPE::builder()
        .vocab_and_merges(vocab_map(vocab), merges)
        .byte_fallback(true);
    if let Some(u) = unk {
        builder = builder.unk_token(vocab.tokens[u as usize].clone());
    }
    let bpe = builder.build().map_err(|e| build_err(file, e))?;

    let prefix = meta
        .opt_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let replace = |a: &str, b: &str| Replace::new(a, b).map_err(|e| build_err(file, e));
    let mut norm = Vec::new();
    if prefix {
        norm.push(Prepend::new("\u{2581}".into()).into());
    }
    norm.push(replace(" ", "\u{2581}")?.into());
    let mut dec: Vec<DecoderWrapper> = vec![
        replace("\u{2581}", " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_normalizer(Some(NormalizerSequence::new(norm)));
    tok.with_decoder(Some(DecoderSequence::new(dec)));
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetaArray, MetaValue};

    fn spm_meta() -> Metadata {
        let toks = [
            "<unk>",
            "<s>",
            "</s>",
            "<0xC3>",
            "<0xA9>",
            "\u{2581}",
            "a",
            "b",
            "\u{2581}a",
            "ab",
            "\u{2581}ab",
            "\u{2581}b",
        ];
        let types = vec![2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1];
        let scores = vec![
            0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -0.5, -0.6, -0.1, -0.7,
        ];
        let mut m = Metadata::new("spm.gguf");
        let mut put = |k: &str, v| m.insert(k.into(), v).unwrap();
        put("tokenizer.ggml.model", MetaValue::String("llama".into()));
        let toks = toks.iter().map(|s| s.to_string()).collect();
        put(
            "tokenizer.ggml.tokens",
            MetaValue::Array(MetaArray::String(toks)),
        );
        put(
            "tokenizer.ggml.token_type",
            MetaValue::Array(MetaArray::I32(types)),
        );
        put(
            "tokenizer.ggml.scores",
            MetaValue::Array(MetaArray::F32(scores)),
        );
        put("tokenizer.ggml.unknown_token_id", MetaValue::U32(0));
        put("tokenizer.ggml.bos_token_id", MetaValue::U32(1));
        put("tokenizer.ggml.eos_token_id", MetaValue::U32(2));
        m
    }

    #[test]
    fn sentencepiece_style_vocab() {
        let tok = build(&spm_meta()).unwrap();
        assert!(tok.adds_bos());
        assert_eq!(tok.eos_ids(), &[2]);
        // Best-scoring pair first: "▁a" then "▁a"+"b".
        assert_eq!(tok.encode("ab", true).unwrap(), vec![1, 10]);
        // Byte fallback for a character outside the vocabulary.
        assert_eq!(tok.encode("é", false).unwrap(), vec![5, 3, 4]);
        // A space prefix after a special token too, as llama.cpp does.
        assert_eq!(tok.encode("<s>ab b", true).unwrap(), vec![1, 1, 10, 11]);
        assert_eq!(tok.decode(&[1, 10, 11], true).unwrap(), "ab b");
        assert_eq!(tok.decode(&[5, 3, 4], false).unwrap(), "é");
    }

    #[test]
    fn unsupported_vocab_kinds_are_typed() {
        let mut m = spm_meta();
        let mut bad = Metadata::new("bert.gguf");
        for (k, v) in m.iter() {
            let v = if k == "tokenizer.ggml.model" {
                MetaValue::String("bert".into())
            } else {
                v.clone()
            };
            bad.insert(k.into(), v).unwrap();
        }
        let e = build(&bad).unwrap_err();
        assert!(matches!(e, TokenizerError::UnsupportedModel { .. }), "{e}");

        m.insert("tokenizer.ggml.pre".into(), MetaValue::String("x".into()))
            .unwrap();
        let mut gpt2 = Metadata::new("gpt2.gguf");
        for (k, v) in m.iter() {
            let v = if k == "tokenizer.ggml.model" {
                MetaValue::String("gpt2".into())
            } else {
                v.clone()
            };
            gpt2.insert(k.into(), v).unwrap();
        }
        gpt2.insert(
            "tokenizer.ggml.merges".into(),
            MetaValue::Array(MetaArray::String(vec!["a b".into()])),
        )
        .unwrap();
        let e = build(&gpt2).unwrap_err();
        assert!(matches!(e, TokenizerError::UnsupportedPre { .. }), "{e}");
    }
}
