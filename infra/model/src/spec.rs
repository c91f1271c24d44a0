//! The `--model` argument: which provider, which model, where.

use std::path::PathBuf;

/// The accepted forms, quoted by every parse error.
const ACCEPTED: &str =
    "`gemini`, `gemini:<model-id>`, `openai:<model>@<base_url>` or `replay:<path>`";

/// A parsed `--model` value. Keys and other settings come from configuration, not from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// Gemini; `None` means the configured default model.
    Gemini {
        /// The model id, when given.
        model: Option<String>,
    },
    /// An OpenAI-compatible server.
    OpenAi {
        /// The model name the server knows.
        model: String,
        /// The API root including its version, e.g. `http://localhost:11434/v1`.
        base_url: String,
    },
    /// A transcript to answer from.
    Replay {
        /// The JSONL transcript.
        path: PathBuf,
    },
}

/// A `--model` value that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model spec {spec:?} is not valid: {reason}; use {ACCEPTED}")]
pub struct ModelSpecError {
    /// The value given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses `gemini`, `gemini:<model-id>`, `openai:<model>@<base_url>` or `replay:<path>`.
///
/// The OpenAI form splits at the `@` that starts the URL (`@http://` or `@https://`), so model names
/// that contain `@` or `:` (`llama3.2:1b`) still parse.
///
/// # Errors
/// [`ModelSpecError`] naming the accepted forms when `spec` matches none of them.
pub fn parse_model_spec(spec: &str) -> Result<ModelSpec, ModelSpecError> {
    let fail = |reason: &str| ModelSpecError { spec: spec.to_owned(), reason: reason.to_owned() };
    let trimmed = spec.trim();
    let (provider, rest) = match trimmed.split_once(':') {
        Some((provider, rest)) => (provider, Some(rest)),
        None => (trimmed, None),
    };
    match (provider, rest) {
        ("gemini", None) => Ok(ModelSpec::Gemini { model: None }),
        ("gemini", Some(model)) => {
            if model.is_empty() || model.contains(char::is_whitespace) {
                return Err(fail("the gemini model id is empty or contains spaces"));
            }
            Ok(ModelSpec::Gemini { model: Some(model.to_owned()) })
        }
        ("openai", Some(rest)) => {
            let at = ["@http://", "@https://"]
                .iter()
                .filter_map(|marker| rest.find(marker))
                .min()
                .ok_or_else(|| {
                    fail("the openai form needs @<base_url> with an http:// or https:// URL")
                })?;
            let (model, base_url) = (&rest[..at], &rest[at + 1..]);
            if model.is_empty() {
                return Err(fail("the openai model name before @ is empty"));
            }
            Ok(ModelSpec::OpenAi { model: model.to_owned(), base_url: base_url.to_owned() })
        }
        ("replay", Some(path)) if !path.is_empty() => {
            Ok(ModelSpec::Replay { path: PathBuf::from(path) })
        }
        ("openai" | "replay", _) => {
            Err(fail(&format!("`{provider}` needs an argument after the colon")))
        }
        _ => Err(fail(&format!("unknown provider `{provider}`"))),
    }
}

/// Parses `vertex` or `vertex:<model-id>` (Gemini on Vertex AI): `None` when `spec` is another form,
/// else the model id (`None` for the default). Kept apart from [`ModelSpec`] until the binary matches a
/// `Vertex` variant; [`crate::VertexConfig::from_env`] builds the rest from the environment.
///
/// # Errors
/// [`ModelSpecError`] when the model id after `vertex:` is empty or contains spaces.
pub fn parse_vertex_spec(spec: &str) -> Option<Result<Option<String>, ModelSpecError>> {
    let trimmed = spec.trim();
    if trimmed == "vertex" {
        return Some(Ok(None));
    }
    let model = trimmed.strip_prefix("vertex:")?;
    if model.is_empty() || model.contains(char::is_whitespace) {
        return Some(Err(ModelSpecError {
            spec: spec.to_owned(),
            reason: "the vertex model id is empty or contains spaces; use `vertex` or `vertex:<model-id>`"
                .to_owned(),
        }));
    }
    Some(Ok(Some(model.to_owned())))
}
