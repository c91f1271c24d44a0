//! [`Secret`]: tokens and webhook secrets, which must never be printed.

use std::fmt;

/// A token or shared secret. `Debug` and `Display` print `***`, so a secret inside a config struct
/// cannot leak into a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, refusing an empty one (`what` names it in the error).
    ///
    /// # Errors
    /// [`crate::ConfigError::EmptySecret`] when `value` is blank.
    pub fn new(value: impl Into<String>, what: &'static str) -> Result<Self, crate::ConfigError> {
        let value = value.into();
        if value.trim().is_empty() {
            return Err(crate::ConfigError::EmptySecret(what));
        }
        Ok(Secret(value.trim().to_owned()))
    }

    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
