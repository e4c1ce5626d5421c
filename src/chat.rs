//! Chat templates: the Jinja template a model ships (`tokenizer.chat_template` in GGUF, or
//! `chat_template` in `tokenizer_config.json`) rendered with minijinja, configured like the
//! Hugging Face and llama.cpp renderers (trim_blocks, lstrip_blocks, Python string/list/dict
//! methods, `raise_exception`).

use std::collections::BTreeMap;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use thiserror::Error;

use crate::model::{LoadError, Metadata};
use crate::tokenizer::Tokenizer;

pub const GGUF_TEMPLATE_KEY: &str = "tokenizer.chat_template";
const NAME: &str = "chat_template";

#[derive(Debug, Error)]
pub enum ChatError {
    #[error("{file}: no chat template ({GGUF_TEMPLATE_KEY} is missing)")]
    NoTemplate { file: String },
    #[error(transparent)]
    Metadata(#[from] LoadError),
    #[error("{source_name}: chat template does not parse: {source:#}")]
    Syntax {
        source_name: String,
        #[source]
        source: JinjaError,
    },
    #[error("{source_name}: chat template failed to render: {source:#}")]
    Render {
        source_name: String,
        #[source]
        source: JinjaError,
    },
}

pub type Result<T, E = ChatError> = std::result::Result<T, E>;

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }

    fn to_value(&self) -> Value {
        let map: BTreeMap<&str, Value> = [
            ("role", Value::from(self.role.as_str())),
            ("content", Value::from(self.content.as_str())),
        ]
        .into_iter()
        .collect();
        Value::from(map)
    }
}

/// A compiled chat template plus the BOS/EOS strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source_name: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_name", &self.source_name)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `template`; `source_name` labels errors (e.g. the model file).
    pub fn new(
        source_name: &str,
        template: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|source| ChatError::Syntax {
                source_name: source_name.into(),
                source,
            })?;
        env.set_syntax(syntax);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, template.to_string())
            .map_err(|source| ChatError::Syntax {
                source_name: source_name.into(),
                source,
            })?;
        Ok(ChatTemplate {
            env,
            source_name: source_name.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template in GGUF metadata, with BOS/EOS text from the tokenizer.
    pub fn from_gguf(meta: &Metadata, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
        let template = meta
            .opt_str(GGUF_TEMPLATE_KEY)?
            .ok_or_else(|| ChatError::NoTemplate {
                file: meta.file().into(),
            })?;
        ChatTemplate::new(
            meta.file(),
            template,
            tokenizer.bos_token().unwrap_or_default(),
            tokenizer.eos_token().unwrap_or_default(),
        )
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, BTreeMap::new())
    }

    /// Like [`ChatTemplate::render`] with extra template variables (e.g. `tools`, `date_string`).
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: BTreeMap<String, Value>,
    ) -> Result<String> {
        let mut ctx = extra;
        ctx.insert(
            "messages".into(),
            Value::from(messages.iter().map(Message::to_value).collect::<Vec<_>>()),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        ctx.insert("bos_token".into(), Value::from(self.bos_token.as_str()));
        ctx.insert("eos_token".into(), Value::from(self.eos_token.as_str()));
        let render_err = |source| ChatError::Render {
            source_name: self.source_name.clone(),
            source,
        };
        let tmpl = self.env.get_template(NAME).map_err(render_err)?;
        tmpl.render(Value::from(ctx)).map_err(render_err)
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, msgs: &[Message], gen: bool) -> Result<String> {
        ChatTemplate::new("test", src, "<s>", "</s>")?.render(msgs, gen)
    }

    #[test]
    fn common_idioms() {
        let src = "{{ bos_token }}{% for m in messages %}{% if loop.first and m['role'] == 'system' %}[S]{% endif %}\
                   {{ m['content'] | trim }}{% if not loop.last %}|{% endif %}{% endfor %}\
                   {% if add_generation_prompt %}>{% endif %}{{ eos_token }}";
        let out = render(
            src,
            &[Message::system(" sys "), Message::user("hi\n")],
            true,
        )
        .unwrap();
        assert_eq!(out, "<s>[S]sys|hi></s>");
    }

    #[test]
    fn python_methods_and_blocks() {
        let src = "{% for m in messages %}\n  {{ m.content.strip().upper() }}\n{% endfor %}";
        let out = render(src, &[Message::user("  a "), Message::user("b")], false).unwrap();
        assert_eq!(out, "  A\n  B\n");
    }

    #[test]
    fn raise_exception_is_a_render_error() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok";
        assert_eq!(render(src, &[Message::user("x")], false).unwrap(), "ok");
        let err = render(src, &[Message::assistant("x")], false).unwrap_err();
        assert!(matches!(err, ChatError::Render { .. }));
        assert!(err.to_string().contains("first must be user"), "{err}");
    }

    #[test]
    fn syntax_error_is_typed() {
        let err = render("{% for m in messages %}", &[], false).unwrap_err();
        assert!(matches!(err, ChatError::Syntax { .. }), "{err}");
    }
}
