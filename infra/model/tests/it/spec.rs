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

#[test]
fn vertex_specs_are_parsed_apart() {
    use cadre_model::parse_vertex_spec;
    assert_eq!(parse_vertex_spec("gemini"), None);
    assert_eq!(parse_vertex_spec("vertex"), Some(Ok(None)));
    assert_eq!(
        parse_vertex_spec("vertex:gemini-3-flash-preview"),
        Some(Ok(Some("gemini-3-flash-preview".into())))
    );
    assert!(matches!(parse_vertex_spec("vertex:"), Some(Err(_))));
}

#[test]
fn vertex_config_comes_from_the_environment() {
    use cadre_model::VertexConfig;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    };
    let config = VertexConfig::from_env(
        Some("gemini-3-pro-preview"),
        &env(&[("GOOGLE_CLOUD_PROJECT", "proj"), ("GCE_METADATA_HOST", "127.0.0.1:1")]),
    )
    .unwrap();
    assert_eq!(
        (config.project.as_str(), config.location.as_str(), config.model.as_str()),
        ("proj", "global", "gemini-3-pro-preview")
    );
    assert_eq!(config.credentials.kind(), "metadata server");
    let error = VertexConfig::from_env(None, &env(&[])).unwrap_err().to_string();
    assert!(error.contains("GOOGLE_CLOUD_PROJECT"), "{error}");
}
