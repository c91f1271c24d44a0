//! Providers tested at the wire against the local `ModelServer`, never by mocking the `Model` trait.

mod batch;
mod context_cache;
mod count;
mod embed;
mod gateway;
mod gemini;
mod interactions;
mod openai;
mod replay;
mod spec;
mod stream;
mod tools;
mod vertex;

use std::time::Duration;

use cadre_domain::ports::model::{CachePolicy, ChatMessage, ModelRequest};
use cadre_model::{
    ApiKey, GeminiConfig, GeminiModel, GoogleCredentials, OpenAiCompatConfig, OpenAiCompatModel,
    VertexConfig,
};

/// A plain request with one user turn.
fn ask(text: &str) -> ModelRequest {
    ModelRequest {
        purpose: "plan".to_owned(),
        system: "you are terse".to_owned(),
        messages: vec![ChatMessage::user(text)],
        response_schema: None,
        temperature: Some(0.0),
        max_output_tokens: Some(256),
        task: None,
        template: None,
        cache: CachePolicy::Use,
        ..Default::default()
    }
}

fn gemini_at(base_url: &str, timeout: Duration) -> GeminiModel {
    let mut config = GeminiConfig::new(ApiKey::new("test-key-123").unwrap());
    config.base_url = base_url.to_owned();
    config.model = "gemini-test".to_owned();
    config.timeout = timeout;
    GeminiModel::new(config).unwrap()
}

fn openai_at(base_url: &str, key: Option<&str>) -> OpenAiCompatModel {
    let mut config = OpenAiCompatConfig::new(format!("{base_url}/v1"), "llama-test");
    config.api_key = key.map(|k| ApiKey::new(k).unwrap());
    config.timeout = Duration::from_secs(10);
    OpenAiCompatModel::new(config).unwrap()
}

/// A local port with nobody listening: bound, then released.
fn dead_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Gemini on Vertex AI at the local server, with tokens from its metadata-server path.
fn vertex_at(server: &cadre_testkit::model_server::ModelServer) -> GeminiModel {
    GeminiModel::vertex(vertex_config(
        server,
        GoogleCredentials::metadata_server(Some(&server.host())),
    ))
    .unwrap()
}

fn vertex_config(
    server: &cadre_testkit::model_server::ModelServer,
    credentials: GoogleCredentials,
) -> VertexConfig {
    let mut config = VertexConfig::new("test-project", "us-central1", credentials);
    config.model = "gemini-test".to_owned();
    config.base_url = Some(server.base_url());
    config.timeout = Duration::from_secs(10);
    config
}
