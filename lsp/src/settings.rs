//! The editor's settings for Cadre, from `initializationOptions` and `workspace/didChangeConfiguration`.
//!
//! Both carry the same object, either bare or under a `cadre` key (`{"cadre": {"model": …}}`), because
//! editors differ in how they nest per-server settings. Unknown keys are ignored. Secrets are never
//! accepted here: an API key belongs in the server's environment, and a key found in the settings is
//! dropped with a warning that names the key, never its value.

use serde::Deserialize;
use serde_json::Value;

/// Names of settings that look like secrets; their values are dropped unread.
const SECRET_KEYS: &[&str] = &["apiKey", "api_key", "key", "token", "geminiApiKey", "openaiApiKey"];

/// Settings a person may set from the editor. `None` keeps the server's own default (its command line
/// and environment).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The model spec, as `--model` takes it: `gemini[:MODEL_ID]`, `openai:MODEL@BASE_URL`, `replay:FILE`.
    pub model: Option<String>,
    /// The model endpoint (base URL) for the spec above.
    pub endpoint: Option<String>,
    /// The most one task may spend on model calls, in US dollars.
    #[serde(alias = "budget")]
    pub budget_usd: Option<f64>,
    /// Generate→test rounds before a task gives up.
    pub max_rounds: Option<u32>,
    /// The command that runs the repository's tests (detected when absent).
    pub test_command: Option<String>,
    /// How often the server polls a running task's progress, in milliseconds.
    pub poll_ms: Option<u64>,
    /// The URL of a Cadre deployment's task API: tasks then run there, not in the server's process
    /// (its token comes from `CADRE_API_TOKEN` in the server's environment, never from settings).
    pub remote: Option<String>,
}

/// What reading the settings found besides the settings themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsNotes {
    /// Keys whose values were dropped because they look like secrets.
    pub dropped_secrets: Vec<String>,
    /// Why the object could not be read, when it could not.
    pub error: Option<String>,
}

impl Settings {
    /// Reads settings from the JSON an editor sent. `null` or an absent object gives the defaults.
    #[must_use]
    pub fn from_json(value: Option<&Value>) -> (Settings, SettingsNotes) {
        let mut notes = SettingsNotes::default();
        let Some(value) = value else { return (Settings::default(), notes) };
        let object = match value.get("cadre") {
            Some(inner) => inner,
            None => value,
        };
        let Some(map) = object.as_object() else {
            if !object.is_null() {
                notes.error = Some(
                    "cadre settings must be a JSON object such as {\"model\": \"gemini\"}; they were ignored"
                        .to_owned(),
                );
            }
            return (Settings::default(), notes);
        };
        let mut clean = map.clone();
        for key in SECRET_KEYS {
            if clean.remove(*key).is_some() {
                notes.dropped_secrets.push((*key).to_owned());
            }
        }
        match serde_json::from_value::<Settings>(Value::Object(clean)) {
            Ok(settings) => (settings, notes),
            Err(error) => {
                notes.error = Some(format!(
                    "cadre settings could not be read ({error}); they were ignored: give model and \
                     endpoint as strings, budgetUsd as a number"
                ));
                (Settings::default(), notes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_bare_and_nested_objects_and_drops_secrets() {
        let (s, notes) = Settings::from_json(Some(&json!({
            "cadre": {"model": "gemini:gemini-3-flash-preview", "budgetUsd": 1.5, "apiKey": "sk-secret"}
        })));
        assert_eq!(s.model.as_deref(), Some("gemini:gemini-3-flash-preview"));
        assert_eq!(s.budget_usd, Some(1.5));
        assert_eq!(notes.dropped_secrets, vec!["apiKey".to_owned()]);
        assert!(!format!("{s:?}{notes:?}").contains("sk-secret"));

        let (s, notes) = Settings::from_json(Some(
            &json!({"endpoint": "http://127.0.0.1:9", "remote": "https://cadre.example", "token": "t0k"}),
        ));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.remote.as_deref(), Some("https://cadre.example"));
        assert_eq!(notes.dropped_secrets, vec!["token".to_owned()]);
        let (_, notes) = Settings::from_json(Some(&json!({"endpoint": "http://127.0.0.1:9"})));
        assert_eq!(notes, SettingsNotes::default());
    }

    #[test]
    fn a_malformed_object_is_ignored_with_a_reason() {
        let (s, notes) = Settings::from_json(Some(&json!({"budgetUsd": "lots"})));
        assert_eq!(s, Settings::default());
        assert!(notes.error.unwrap().contains("budgetUsd as a number"));
        let (_, notes) = Settings::from_json(Some(&json!(3)));
        assert!(notes.error.is_some());
        let (_, notes) = Settings::from_json(Some(&Value::Null));
        assert!(notes.error.is_none());
    }
}
