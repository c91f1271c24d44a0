use std::path::PathBuf;

use cadre_model::{parse_model_spec, ApiKey, ModelSpec};

#[test]
fn accepted_forms() {
    let ok = |spec: &str| parse_model_spec(spec).unwrap();
    assert_eq!(ok("gemini"), ModelSpec::Gemini { model: None });
    assert_eq!(
        ok("gemini:gemini-3.5-flash"),
        ModelSpec::Gemini { model: Some("gemini-3.5-flash".into()) }
    );
    assert_eq!(
        ok("openai:llama3.2:1b@http://localhost:11434/v1"),
        ModelSpec::OpenAi {
            model: "llama3.2:1b".into(),
            base_url: "http://localhost:11434/v1".into()
        }
    );
    assert_eq!(
        ok("openai:org@model@https://user@host/v1"),
        ModelSpec::OpenAi { model: "org@model".into(), base_url: "https://user@host/v1".into() }
    );
    assert_eq!(
        ok("replay:tests/t.jsonl"),
        ModelSpec::Replay { path: PathBuf::from("tests/t.jsonl") }
    );
}

#[test]
fn rejected_forms_name_the_accepted_ones() {
    for spec in [
        "",
        "claude",
        "gemini:",
        "gemini:two words",
        "openai:llama",
        "openai:@http://h/v1",
        "openai",
        "replay:",
        "replay",
    ] {
        let error = parse_model_spec(spec).unwrap_err().to_string();
        assert!(
            error.contains("`gemini:<model-id>`")
                && error.contains("`openai:<model>@<base_url>`")
                && error.contains("`replay:<path>`"),
            "{spec:?}: {error}"
        );
    }
    let error = parse_model_spec("claude").unwrap_err().to_string();
    assert!(error.contains("unknown provider `claude`"), "{error}");
}

#[test]
fn api_key_debug_hides_the_key() {
    let key = ApiKey::new("AIzaSecret").unwrap();
    assert_eq!(format!("{key:?}"), "ApiKey(***)");
    let config = cadre_model::GeminiConfig::new(key);
    assert!(!format!("{config:?}").contains("AIzaSecret"), "{config:?}");
}

#[test]
fn api_key_rejects_empty_and_multiline_keys_without_echoing_them() {
    assert!(ApiKey::new("  ").is_err());
    let error = ApiKey::new("secret\nvalue").unwrap_err().to_string();
    assert!(!error.contains("secret"), "{error}");
}
