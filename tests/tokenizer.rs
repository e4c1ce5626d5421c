//! Tokenizer built from SmolLM2's GGUF metadata against llama.cpp's ids (the reference fixture).

#[path = "common/model_file.rs"]
mod model_file;

use std::sync::OnceLock;

use tokenmill::model::GgufFile;
use tokenmill::tokenizer::{Tokenizer, TokenizerError};

/// The tokenizer of the real model, built once; `None` when the model is absent (outside CI).
fn tokenizer() -> Option<&'static Tokenizer> {
    static TOK: OnceLock<Option<Tokenizer>> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = model_file::model_path()?;
        let f = GgufFile::open(path).unwrap();
        Some(Tokenizer::from_gguf(&f.metadata).unwrap())
    })
    .as_ref()
}

#[test]
fn prompt_ids_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    for p in model_file::prompts() {
        let text = p["prompt"].as_str().unwrap();
        let want = model_file::ids(&p["prompt_ids"]);
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got, want, "prompt {text:?}");
    }
}

#[test]
fn decode_round_trips() {
    let Some(tok) = tokenizer() else { return };
    for p in model_file::prompts() {
        let text = p["prompt"].as_str().unwrap();
        let ids = model_file::ids(&p["prompt_ids"]);
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // llama.cpp's own detokenization of the greedy continuation (special tokens shown).
        let greedy = model_file::ids(&p["greedy_ids"]);
        assert_eq!(
            tok.decode(&greedy, false).unwrap(),
            p["greedy_text"].as_str().unwrap(),
            "continuation of {text:?}"
        );
    }
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nhi");
}

#[test]
fn streaming_matches_one_shot_decode() {
    let Some(tok) = tokenizer() else { return };
    let mut cases: Vec<Vec<u32>> = model_file::prompts()
        .iter()
        .flat_map(|p| {
            [
                model_file::ids(&p["prompt_ids"]),
                model_file::ids(&p["greedy_ids"]),
            ]
        })
        .collect();
    // Multi-byte characters split over several byte-level tokens.
    cases.push(tok.encode("日本語 🦀🦀 ünïcödé", false).unwrap());
    for ids in cases {
        let mut stream = tok.stream(false);
        let mut out = String::new();
        for &id in &ids {
            if let Some(piece) = stream.push(id).unwrap() {
                assert!(
                    !piece.contains('\u{FFFD}'),
                    "incomplete UTF-8 emitted: {piece:?}"
                );
                out.push_str(&piece);
            }
        }
        if let Some(rest) = stream.finish().unwrap() {
            out.push_str(&rest);
        }
        assert_eq!(out, tok.decode(&ids, false).unwrap());
    }
    // A lone crab's first bytes produce nothing until the character is complete.
    let crab = tok.encode("🦀", false).unwrap();
    assert!(crab.len() > 1, "the crab is several byte tokens: {crab:?}");
    let mut stream = tok.stream(false);
    for &id in &crab[..crab.len() - 1] {
        assert_eq!(stream.push(id).unwrap(), None);
    }
    assert_eq!(
        stream.push(*crab.last().unwrap()).unwrap().as_deref(),
        Some("🦀")
    );
}

#[test]
fn special_token_rules() {
    let Some(tok) = tokenizer() else { return };
    let fx = model_file::fixture();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(fx["bos_id"].as_u64().unwrap() as u32));
    assert_eq!(tok.eos_id(), Some(fx["eos_id"].as_u64().unwrap() as u32));
    assert_eq!(tok.eos_token().as_deref(), Some("<|im_end|>"));
    assert!(
        tok.is_eos(2) && tok.is_eos(0),
        "eos ids {:?}",
        tok.eos_ids()
    );
    assert!(!tok.adds_bos() && !tok.adds_eos());
    assert_eq!(tok.encode("", true).unwrap(), Vec::<u32>::new());
    assert_eq!(tok.encode("<|im_start|>", false).unwrap(), vec![1]);
    assert!(matches!(
        tok.decode(&[5, 49152], false),
        Err(TokenizerError::BadTokenId { id: 49152, .. })
    ));
}

#[test]
fn tokenizer_json_path_gives_the_same_ids() {
    let Some(tok) = tokenizer() else { return };
    let json = tok.inner().to_string(false).unwrap();
    let mut from_json = Tokenizer::from_json_bytes("tokenizer.json", json.as_bytes()).unwrap();
    from_json.set_special(None, Some("<|im_end|>")).unwrap();
    assert_eq!(from_json.eos_ids(), tok.eos_ids());
    for p in model_file::prompts() {
        let text = p["prompt"].as_str().unwrap();
        assert_eq!(
            from_json.encode(text, true).unwrap(),
            model_file::ids(&p["prompt_ids"])
        );
    }
    let err = Tokenizer::from_json_bytes("broken.json", b"{\"model\": 3}").unwrap_err();
    assert!(err.to_string().contains("broken.json"), "{err}");
}
