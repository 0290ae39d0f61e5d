//! Chat templates: the Jinja template a tokenizer carries (`chat_template.jinja`, or
//! `chat_template` in `tokenizer_config.json`), rendered with minijinja as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True)` renders it.

use std::path::Path;

use serde::Serialize;

use crate::error::AdapterError;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model's chat template and the special tokens it may refer to.
#[derive(Debug, Clone)]
pub(crate) struct ChatTemplate {
    model: String,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template of the export in `dir`, if its tokenizer has one.
    pub(crate) fn load(model: &str, dir: &Path) -> Result<Option<Self>, AdapterError> {
        let bad = |path: &Path, reason: String| AdapterError::BadFile {
            model: model.to_owned(),
            path: path.to_owned(),
            reason,
        };
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read(&config_path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| bad(&config_path, e.to_string()))?
            }
            Err(_) => serde_json::Value::Null,
        };
        let jinja = dir.join("chat_template.jinja");
        let source = match std::fs::read_to_string(&jinja) {
            Ok(source) => source,
            Err(_) => match config["chat_template"].as_str() {
                Some(source) => source.to_owned(),
                None => return Ok(None),
            },
        };
        // Special tokens appear as plain strings or as {"content": …} objects.
        let token = |key: &str| {
            let value = &config[key];
            value
                .as_str()
                .or_else(|| value["content"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let template = Self {
            model: model.to_owned(),
            source,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
        };
        // A template that does not parse is a broken export, reported at load time.
        template
            .environment()
            .map_err(|e| bad(&jinja, e.to_string()))?;
        Ok(Some(template))
    }

    fn environment(&self) -> Result<minijinja::Environment<'_>, minijinja::Error> {
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        env.add_template("chat", &self.source)?;
        Ok(env)
    }

    /// The prompt text for `messages`, ending with the assistant's turn opened.
    pub(crate) fn render(&self, messages: &[ChatMessage]) -> Result<String, AdapterError> {
        let invalid = |e: minijinja::Error| AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason: format!("chat template: {e}"),
        };
        let env = self.environment().map_err(invalid)?;
        let template = env.get_template("chat").map_err(invalid)?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml_with_a_generation_prompt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("chat_template.jinja"),
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        )
        .unwrap();
        let template = ChatTemplate::load("m", dir.path())
            .unwrap()
            .expect("a template");
        let text = template.render(&[ChatMessage::new("user", "hi")]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn no_template_is_none_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::load("m", dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join("chat_template.jinja"), "{% for %}").unwrap();
        assert!(ChatTemplate::load("m", dir.path()).is_err());
    }
}
