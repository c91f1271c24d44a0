//! The provider API key as a newtype, so it cannot leak through `Debug`, logs or error messages.

use std::fmt;

use cadre_domain::ports::model::ModelError;
use reqwest::header::HeaderValue;

/// A secret API key. Its `Debug` prints `ApiKey(***)` and it has no `Display`, so formatting a config
/// that holds one never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from configuration.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the key is empty or holds characters an HTTP header cannot
    /// carry (a pasted newline, say); the message never contains the key itself.
    pub fn new(key: impl Into<String>) -> Result<ApiKey, ModelError> {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(ModelError::NotConfigured {
                hint:
                    "the model API key is empty; export the provider's key (e.g. GEMINI_API_KEY), \
                       or run with --model replay:<file>"
                        .to_owned(),
            });
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ModelError::NotConfigured {
                hint: "the model API key contains spaces or control characters; \
                       copy the key again without surrounding text"
                    .to_owned(),
            });
        }
        Ok(ApiKey(trimmed.to_owned()))
    }

    /// The key as a header value marked sensitive, so HTTP-level logging redacts it too.
    pub(crate) fn header_value(&self, prefix: &str) -> Result<HeaderValue, ModelError> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0)).map_err(|_| {
            ModelError::NotConfigured {
                hint: "the model API key cannot be sent as an HTTP header; copy the key again"
                    .to_owned(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}
