//! The exact-match response cache: which calls may use it, their key, and an in-memory [`ModelCache`].
//!
//! Only deterministic calls are cached (temperature 0 or unset) unless the caller bypasses the cache, and
//! only whole answers are stored: a reply cut at the token cap, or a structured reply that is not JSON,
//! would be served again and again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use cadre_domain::ports::model::{CachePolicy, FinishReason, ModelReply, ModelRequest};
use cadre_domain::ports::model_cache::{CacheError, CacheKey, CachedReply, ModelCache};
use cadre_domain::Timestamp;
use sha2::{Digest, Sha256};

use super::structured::strip_json_fence;
use crate::replay::request_key;

/// Whether `request` may be answered from, and stored into, the cache.
#[must_use]
pub fn is_cacheable(request: &ModelRequest) -> bool {
    request.cache == CachePolicy::Use && request.temperature.is_none_or(|t| t == 0.0)
}

/// The key of `request` sent to `model`: SHA-256 over the model id and the replay key, which covers the
/// system instruction, the turns, the schema, the temperature and the output cap (not the task, step or
/// template, which do not change the answer).
#[must_use]
pub fn cache_key(model: &str, request: &ModelRequest) -> CacheKey {
    let mut hasher = Sha256::new();
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(request_key(request).as_bytes());
    CacheKey::new(hex(&hasher.finalize()))
}

/// Whether `reply` is worth serving again: a natural end, and parseable JSON when JSON was asked for.
#[must_use]
pub fn is_storable(request: &ModelRequest, reply: &ModelReply) -> bool {
    reply.finish == FinishReason::Stop
        && (request.response_schema.is_none()
            || serde_json::from_str::<serde::de::IgnoredAny>(strip_json_fence(&reply.text)).is_ok())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A [`ModelCache`] in memory, for tests and single-process runs; the oldest entry is evicted first
/// once `capacity` entries are held.
#[derive(Debug)]
pub struct MemoryModelCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<CacheKey, CachedReply>,
    order: VecDeque<CacheKey>,
}

impl MemoryModelCache {
    /// An empty cache holding at most `capacity` replies (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> MemoryModelCache {
        MemoryModelCache { capacity: capacity.max(1), entries: Mutex::new(Entries::default()) }
    }

    /// How many replies are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no reply is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryModelCache {
    /// Up to 10,000 replies.
    fn default() -> MemoryModelCache {
        MemoryModelCache::new(10_000)
    }
}

#[async_trait]
impl ModelCache for MemoryModelCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, CacheError> {
        Ok(self.lock().by_key.get(key).cloned())
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: &ModelReply,
        at: Timestamp,
    ) -> Result<(), CacheError> {
        let mut entries = self.lock();
        let entry = CachedReply { reply: reply.clone(), stored_at: at };
        if entries.by_key.insert(key.clone(), entry).is_none() {
            entries.order.push_back(key.clone());
            while entries.by_key.len() > self.capacity {
                let Some(oldest) = entries.order.pop_front() else { break };
                entries.by_key.remove(&oldest);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{ChatMessage, TokenUsage};

    fn request() -> ModelRequest {
        ModelRequest {
            purpose: "plan".into(),
            system: "s".into(),
            messages: vec![ChatMessage::user("u")],
            response_schema: None,
            temperature: None,
            max_output_tokens: None,
            task: None,
            template: None,
            cache: CachePolicy::Use,
            ..Default::default()
        }
    }

    fn reply(text: &str, finish: FinishReason) -> ModelReply {
        ModelReply {
            text: text.into(),
            usage: TokenUsage::default(),
            finish,
            model: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_deterministic_calls_that_did_not_opt_out_are_cached() {
        assert!(is_cacheable(&request()));
        assert!(is_cacheable(&ModelRequest { temperature: Some(0.0), ..request() }));
        assert!(!is_cacheable(&ModelRequest { temperature: Some(0.7), ..request() }));
        assert!(!is_cacheable(&ModelRequest { cache: CachePolicy::Bypass, ..request() }));
    }

    #[test]
    fn the_key_covers_model_and_prompt_but_not_the_bookkeeping() {
        let base = cache_key("m", &request());
        assert_eq!(base.as_str().len(), 64);
        assert_ne!(cache_key("other", &request()), base);
        assert_ne!(cache_key("m", &ModelRequest { system: "t".into(), ..request() }), base);
        assert_ne!(cache_key("m", &ModelRequest { max_output_tokens: Some(9), ..request() }), base);
        let task = Some(cadre_domain::TaskId::generate());
        let bookkeeping = ModelRequest {
            purpose: "review".into(),
            task,
            template: Some("plan@2".into()),
            ..request()
        };
        assert_eq!(cache_key("m", &bookkeeping), base);
    }

    #[test]
    fn cut_or_unparseable_replies_are_not_stored() {
        assert!(is_storable(&request(), &reply("hi", FinishReason::Stop)));
        assert!(!is_storable(&request(), &reply("hi", FinishReason::MaxTokens)));
        let json = ModelRequest { response_schema: Some(serde_json::json!({})), ..request() };
        assert!(is_storable(&json, &reply("```json\n{\"a\": 1}\n```", FinishReason::Stop)));
        assert!(!is_storable(&json, &reply("{\"a\": ", FinishReason::Stop)));
    }

    #[tokio::test]
    async fn memory_cache_evicts_the_oldest() {
        let cache = MemoryModelCache::new(2);
        for (i, key) in ["a", "b", "a", "c"].iter().enumerate() {
            let at = Timestamp(i64::try_from(i).unwrap());
            cache.put(&CacheKey::new(*key), &reply(key, FinishReason::Stop), at).await.unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&CacheKey::new("a")).await.unwrap(), None);
        let b = cache.get(&CacheKey::new("b")).await.unwrap().unwrap();
        assert_eq!((b.reply.text.as_str(), b.stored_at), ("b", Timestamp(1)));
        assert!(cache.get(&CacheKey::new("c")).await.unwrap().is_some());
    }
}
