//! Chat template rendering against the text llama.cpp's Jinja engine produced for the fixture.

#[path = "common/model_file.rs"]
mod model_file;

use tokenmill::chat::{ChatError, ChatTemplate, Message};
use tokenmill::model::{GgufFile, Metadata};
use tokenmill::tokenizer::Tokenizer;

fn messages(v: &serde_json::Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn rendered_chat_equals_fixture() {
    let Some(path) = model_file::model_path() else {
        return;
    };
    let f = GgufFile::open(path).unwrap();
    let tok = Tokenizer::from_gguf(&f.metadata).unwrap();
    let chat = ChatTemplate::from_gguf(&f.metadata, &tok).unwrap();
    assert_eq!(chat.eos_token(), "<|im_end|>");
    let mut n = 0;
    for p in model_file::prompts().iter().filter(|p| p["kind"] == "chat") {
        let msgs = messages(&p["messages"]);
        let add_gen = p["add_generation_prompt"].as_bool().unwrap();
        let text = chat.render(&msgs, add_gen).unwrap();
        assert_eq!(text, p["prompt"].as_str().unwrap());
        // End to end: rendered text to llama.cpp's prompt ids.
        assert_eq!(
            tok.encode(&text, true).unwrap(),
            model_file::ids(&p["prompt_ids"])
        );
        n += 1;
    }
    assert!(n >= 2, "fixture has {n} chat prompts");

    // SmolLM2's template adds its default system prompt when none is given.
    let text = chat.render(&[Message::user("hi")], false).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(text.ends_with("<|im_start|>user\nhi<|im_end|>\n"));
}

#[test]
fn missing_template_is_typed() {
    let meta = Metadata::new("no-template.gguf");
    let tok_json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#;
    let tok = Tokenizer::from_json_bytes("t.json", tok_json.as_bytes()).unwrap();
    let err = ChatTemplate::from_gguf(&meta, &tok).unwrap_err();
    assert!(matches!(err, ChatError::NoTemplate { .. }));
    assert!(err.to_string().contains("no-template.gguf"), "{err}");
}
