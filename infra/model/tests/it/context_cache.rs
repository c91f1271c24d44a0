//! Explicit context caching against the fake `cachedContents` endpoint: a task's repeated large prefix
//! is cached once, later calls name it and leave the prefix out, usage counts cached tokens at the
//! cached price, and failures fall back to whole calls.

use std::sync::Arc;
use std::time::Duration;

use cadre_domain::ports::model::{ChatMessage, Model, ModelRequest, ToolSpec};
use cadre_domain::TaskId;
use cadre_model::gateway::{ContextCachePrice, ModelPrice, PriceTable};
use cadre_model::{ApiKey, ContextCacheConfig, GeminiConfig, GeminiModel, GoogleCredentials};
use cadre_testkit::model_server::{ModelServer, Scripted};
use serde_json::json;

use crate::gateway::{config, Fixture};
use crate::vertex_config;

/// $1 per 1M input, $0.10 cached, $1 per 1M per hour of storage, at least 100 tokens, 10 minutes.
fn cache_config() -> ContextCacheConfig {
    ContextCacheConfig {
        ttl: Duration::from_secs(600),
        price: ModelPrice::per_million_usd(1.0, 2.0, 0.1),
        cache: ContextCachePrice { storage_per_hour: 1_000_000, min_tokens: 100 },
    }
}

fn cached_gemini(server: &ModelServer, cache: Option<ContextCacheConfig>) -> GeminiModel {
    let mut config = GeminiConfig::new(ApiKey::new("test-key-123").unwrap());
    config.base_url = server.base_url();
    config.model = "gemini-test".into();
    config.context_cache = cache;
    GeminiModel::new(config).unwrap()
}

/// A task's conversation: a large repository context, then `turns` more exchanges.
fn conversation(task: &TaskId, turns: usize) -> ModelRequest {
    let mut messages =
        vec![ChatMessage::user(format!("REPOSITORY\n{}", "fn main() {}\n".repeat(100)))];
    for i in 0..turns {
        messages.push(ChatMessage::model(format!("answer {i}")));
        messages.push(ChatMessage::user(format!("question {}", i + 1)));
    }
    ModelRequest {
        task: Some(task.clone()),
        tools: vec![ToolSpec {
            name: "grep".into(),
            description: "searches".into(),
            parameters: json!({"type": "object"}),
        }],
        ..ModelRequest::new("generate", "you are a careful engineer", messages)
    }
}

#[tokio::test]
async fn a_repeated_prefix_is_cached_once_and_later_calls_name_it() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let model = cached_gemini(&server, Some(cache_config()));
    let task = TaskId::generate();
    let first = model.complete(&conversation(&task, 1)).await.unwrap();
    assert_eq!(first.usage.cached, 0);
    assert!(server.cached_contents().is_empty(), "a prefix seen once is not cached");

    let second = model.complete(&conversation(&task, 2)).await.unwrap();
    let [name] = server.cached_contents().try_into().unwrap();
    let [create] = server.side_requests().try_into().unwrap();
    assert_eq!((create.method.as_str(), create.path.as_str()), ("POST", "/v1beta/cachedContents"));
    assert_eq!(create.body["model"], "models/gemini-test");
    assert_eq!(create.body["ttl"], "600s");
    assert_eq!(create.body["systemInstruction"]["parts"][0]["text"], "you are a careful engineer");
    assert_eq!(create.body["tools"][0]["functionDeclarations"][0]["name"], "grep");
    assert_eq!(
        create.body["contents"].as_array().unwrap().len(),
        2,
        "the repository turn and the first answer"
    );

    let sent = &server.requests()[1].body;
    assert_eq!(sent["cachedContent"], name.as_str());
    for absent in ["systemInstruction", "tools", "toolConfig"] {
        assert!(sent.get(absent).is_none(), "{absent} must not be sent beside cachedContent");
    }
    assert_eq!(
        sent["contents"].as_array().unwrap().len(),
        3,
        "only the turns after the cached prefix"
    );
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "question 1");
    let cached_tokens = second.usage.cached;
    assert!(cached_tokens >= 100, "{:?}", second.usage);
    assert!(
        second.usage.input > 2 * cached_tokens,
        "the creation is charged as input once: {:?}",
        second.usage
    );

    let third = model.complete(&conversation(&task, 3)).await.unwrap();
    assert_eq!(server.cached_contents().len(), 1, "a longer conversation reuses the one cache");
    assert_eq!(server.requests()[2].body["cachedContent"], name.as_str());
    assert_eq!(third.usage.cached, cached_tokens);
    assert!(
        third.usage.input < second.usage.input,
        "no creation charge the second time: {:?}",
        third.usage
    );

    model.release_context_caches(&task).await;
    assert!(server.cached_contents().is_empty());
    assert_eq!(server.side_requests().last().unwrap().method, "DELETE");
}

#[tokio::test]
async fn cached_tokens_are_priced_as_cached_by_the_gateway() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let f = Fixture::new(Arc::new(cached_gemini(&server, Some(cache_config()))), config());
    let task = TaskId::generate();
    for turns in 1..=3 {
        f.gateway.complete(&conversation(&task, turns)).await.unwrap();
    }
    let rows = f.ledger.records();
    let third = &rows[2];
    assert!(third.tokens.cached > 0);
    // $1 per 1M uncached input, $0.10 per 1M cached (rounded up), $2 per 1M output.
    let expected = (third.tokens.input - third.tokens.cached)
        + (third.tokens.cached).div_ceil(10)
        + 2 * third.tokens.output;
    assert!(
        third.cost_micros.abs_diff(expected) <= 1,
        "{} vs {expected}: {:?}",
        third.cost_micros,
        third.tokens
    );
}

#[tokio::test]
async fn a_refused_creation_sends_the_call_whole_and_is_not_retried() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    server.set_min_cache_tokens(1_000_000);
    let model = cached_gemini(&server, Some(cache_config()));
    let task = TaskId::generate();
    for turns in 1..=4 {
        model.complete(&conversation(&task, turns)).await.unwrap();
    }
    assert_eq!(server.side_requests().len(), 1, "one refused creation, then none");
    assert!(server.requests().iter().all(|r| r.body.get("cachedContent").is_none()));
    assert!(server.requests().iter().all(|r| r.body.get("systemInstruction").is_some()));
}

#[tokio::test]
async fn a_403_for_a_lost_cache_resends_the_call_whole() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let model = cached_gemini(&server, Some(cache_config()));
    let task = TaskId::generate();
    model.complete(&conversation(&task, 1)).await.unwrap();
    model.complete(&conversation(&task, 2)).await.unwrap();
    let [name] = server.cached_contents().try_into().unwrap();
    reqwest::Client::new()
        .delete(format!("{}/v1beta/{name}", server.base_url()))
        .send()
        .await
        .unwrap();
    assert!(server.cached_contents().is_empty());
    let reply = model.complete(&conversation(&task, 3)).await.unwrap();
    assert_eq!(reply.text, "ok");
    let requests = server.requests();
    let last_two = &requests[requests.len() - 2..];
    assert_eq!(last_two[0].body["cachedContent"], name.as_str());
    assert!(
        last_two[1].body.get("cachedContent").is_none()
            && last_two[1].body.get("systemInstruction").is_some()
    );
}

#[tokio::test]
async fn calls_without_a_task_or_without_the_config_never_create_caches() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let task = TaskId::generate();
    let off = cached_gemini(&server, None);
    for turns in 1..=3 {
        off.complete(&conversation(&task, turns)).await.unwrap();
    }
    let on = cached_gemini(&server, Some(cache_config()));
    for turns in 1..=3 {
        on.complete(&ModelRequest { task: None, ..conversation(&task, turns) }).await.unwrap();
    }
    // An hour-long cache does not pay for itself at one reuse: caching stays off.
    let hour = cached_gemini(
        &server,
        Some(ContextCacheConfig { ttl: Duration::from_secs(3_600), ..cache_config() }),
    );
    for turns in 1..=3 {
        hour.complete(&conversation(&task, turns)).await.unwrap();
    }
    assert!(server.side_requests().is_empty());
}

#[tokio::test]
async fn the_builtin_prices_enable_caching_for_flash_but_not_flash_lite() {
    let table = PriceTable::builtin();
    let flash = ContextCacheConfig::from_table(
        &table,
        "gemini-3-flash-preview",
        cadre_model::DEFAULT_CACHE_TTL,
    )
    .unwrap();
    assert!(flash.saves_money());
    assert_eq!(flash.cache.min_tokens, 1024);
    let lite = ContextCacheConfig::from_table(
        &table,
        "gemini-2.5-flash-lite",
        cadre_model::DEFAULT_CACHE_TTL,
    )
    .unwrap();
    assert!(!lite.saves_money(), "a 10-minute cache costs more than one reuse saves on flash-lite");
    assert!(ContextCacheConfig::from_table(
        &PriceTable::default(),
        "gemini-3-flash-preview",
        cadre_model::DEFAULT_CACHE_TTL
    )
    .is_none());
}

#[tokio::test]
async fn vertex_caches_live_under_the_project_and_location() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let mut config =
        vertex_config(&server, GoogleCredentials::metadata_server(Some(&server.host())));
    config.context_cache = Some(cache_config());
    let model = GeminiModel::vertex(config).unwrap();
    let task = TaskId::generate();
    model.complete(&conversation(&task, 1)).await.unwrap();
    model.complete(&conversation(&task, 2)).await.unwrap();
    let [name] = server.cached_contents().try_into().unwrap();
    assert!(
        name.starts_with("projects/test-project/locations/us-central1/cachedContents/"),
        "{name}"
    );
    let create = server
        .side_requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/cachedContents"))
        .unwrap();
    assert_eq!(
        create.body["model"],
        "projects/test-project/locations/us-central1/publishers/google/models/gemini-test"
    );
    assert_eq!(server.requests()[1].body["cachedContent"], name.as_str());
    model.release_all_context_caches().await;
    assert!(server.cached_contents().is_empty());
}
