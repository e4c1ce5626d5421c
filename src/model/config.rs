//! Llama-family hyperparameters from GGUF metadata, and the check that every tensor the
//! transformer needs is present with the right shape.

use super::error::{LoadError, Result};
use super::gguf::Gguf;
use super::metadata::Metadata;

/// Hyperparameters of a llama-architecture model (Llama 2/3, Mistral, SmolLM, TinyLlama...).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_layers: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// FFN inner size.
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Dimensions per head that RoPE rotates (usually `head_dim`).
    pub rope_dim: usize,
    /// RoPE base frequency (`rope.freq_base`).
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
    pub vocab_size: usize,
    /// No `output.weight`: the output head reuses `token_embd.weight`.
    pub tied_embeddings: bool,
}

/// Names of the tensors of one block.
pub fn block_tensor(layer: usize, name: &str) -> String {
    format!("blk.{layer}.{name}.weight")
}

impl LlamaConfig {
    /// Reads the config from the header and checks every expected tensor's presence and shape.
    pub fn from_gguf(gguf: &Gguf) -> Result<LlamaConfig> {
        let tied = gguf.tensor_info("output.weight").is_none();
        let embd_rows = gguf
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied());
        let cfg = LlamaConfig::from_metadata(&gguf.metadata, tied, embd_rows)?;
        cfg.check_tensors(gguf)?;
        Ok(cfg)
    }

    /// Reads the config from metadata alone. `vocab_fallback` is used when neither
    /// `llama.vocab_size` nor `tokenizer.ggml.tokens` gives the vocabulary size.
    pub fn from_metadata(
        meta: &Metadata,
        tied_embeddings: bool,
        vocab_fallback: Option<u64>,
    ) -> Result<LlamaConfig> {
        let file = meta.file();
        let arch = meta.str("general.architecture")?;
        if arch != "llama" {
            return Err(LoadError::UnsupportedArchitecture {
                file: file.into(),
                got: arch.into(),
            });
        }
        let bad = |detail: String| LoadError::BadConfig {
            file: file.into(),
            detail,
        };
        let k = |name: &str| format!("llama.{name}");
        // Sizes stay within u32 so products of two fit in u64 and usize on every target.
        let size = |key: &str| -> Result<usize> {
            let v = meta.u64(key)?;
            match u32::try_from(v) {
                Ok(v) if v > 0 => Ok(v as usize),
                _ => Err(bad(format!(
                    "{key} = {v}, expected a positive size below 2^32"
                ))),
            }
        };
        let opt_size = |key: &str| -> Result<Option<usize>> {
            match meta.get(key) {
                None => Ok(None),
                Some(_) => size(key).map(Some),
            }
        };

        if let Some(n) = meta.opt_u64(&k("expert_count"))? {
            if n > 0 {
                return Err(bad(format!(
                    "{} = {n}: mixture-of-experts models are not supported",
                    k("expert_count")
                )));
            }
        }
        let n_layers = size(&k("block_count"))?;
        let n_embd = size(&k("embedding_length"))?;
        let n_ff = size(&k("feed_forward_length"))?;
        let n_heads = size(&k("attention.head_count"))?;
        let n_kv_heads = opt_size(&k("attention.head_count_kv"))?.unwrap_or(n_heads);
        if !n_heads.is_multiple_of(n_kv_heads) {
            return Err(bad(format!(
                "head_count {n_heads} is not a multiple of head_count_kv {n_kv_heads}"
            )));
        }
        let head_dim = match opt_size(&k("attention.key_length"))? {
            Some(d) => d,
            None if n_embd.is_multiple_of(n_heads) => n_embd / n_heads,
            None => {
                return Err(bad(format!(
                    "embedding_length {n_embd} is not a multiple of head_count {n_heads}"
                )))
            }
        };
        if let Some(v) = opt_size(&k("attention.value_length"))? {
            if v != head_dim {
                return Err(bad(format!(
                    "value_length {v} differs from key_length {head_dim}; not supported"
                )));
            }
        }
        let rope_dim = opt_size(&k("rope.dimension_count"))?.unwrap_or(head_dim);
        if rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "rope.dimension_count {rope_dim}: expected an even number <= head_dim {head_dim}"
            )));
        }
        let rope_theta = meta.opt_f64(&k("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
        let rms_eps = meta
            .opt_f64(&k("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5) as f32;
        if !(rope_theta > 0.0 && rope_theta.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(bad(format!(
                "rope.freq_base {rope_theta} / rms epsilon {rms_eps} out of range"
            )));
        }
        let context_length = size(&k("context_length"))?;
        let vocab = match opt_size(&k("vocab_size"))? {
            Some(v) => Some(v),
            None => match meta.get("tokenizer.ggml.tokens") {
                Some(_) => Some(meta.strings("tokenizer.ggml.tokens")?.len()),
                None => vocab_fallback.map(|v| v as usize),
            },
        };
        let vocab_size = match vocab {
            Some(v) if v > 0 => v,
            _ => {
                return Err(bad(
                    "vocabulary size unknown: no llama.vocab_size, tokenizer.ggml.tokens or token_embd.weight"
                        .into(),
                ))
            }
        };
        Ok(LlamaConfig {
            architecture: arch.into(),
            n_layers,
            n_embd,
            n_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_theta,
            rms_eps,
            context_length,
            vocab_size,
            tied_embeddings,
        })
    }

    /// Query heads per KV head (grouped-query attention).
    pub fn gqa_group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Every tensor the transformer reads, with its GGUF dims (innermost first).
    pub fn expected_tensors(&self) -> impl Iterator<Item = (String, Vec<u64>)> + '_ {
        let [e, ff, v] = [self.n_embd, self.n_ff, self.vocab_size].map(|x| x as u64);
        let q = self.n_heads as u64 * self.head_dim as u64;
        let kv = self.n_kv_heads as u64 * self.head_dim as u64;
        let head = [
            ("token_embd.weight".to_string(), vec![e, v]),
            ("output_norm.weight".to_string(), vec![e]),
        ];
        let output = (!self.tied_embeddings).then(|| ("output.weight".to_string(), vec![e, v]));
        let blocks = (0..self.n_layers).flat_map(move |l| {
            [
                ("attn_norm", vec![e]),
                ("attn_q", vec![e, q]),
                ("attn_k", vec![e, kv]),
                ("attn_v", vec![e, kv]),
                ("attn_output", vec![q, e]),
                ("ffn_norm", vec![e]),
                ("ffn_gate", vec![e, ff]),
                ("ffn_up", vec![e, ff]),
                ("ffn_down", vec![ff, e]),
            ]
            .into_iter()
            .map(move |(n, d)| (block_tensor(l, n), d))
        });
        head.into_iter().chain(output).chain(blocks)
    }

    /// Checks that each expected tensor exists with the expected dims (trailing 1s ignored).
    pub fn check_tensors(&self, gguf: &Gguf) -> Result<()> {
        fn trim(d: &[u64]) -> &[u64] {
            let n = d.iter().rposition(|&x| x != 1).map_or(0, |i| i + 1);
            &d[..n]
        }
        for (name, expected) in self.expected_tensors() {
            let info = gguf.require_tensor(&name)?;
            if trim(&info.dims) != trim(&expected) {
                return Err(LoadError::WrongShape {
                    file: gguf.file.clone(),
                    tensor: name,
                    expected,
                    got: info.dims.clone(),
                });
            }
        }
        Ok(())
    }
}
