//! The model response cache port: exact-match replies stored under a key the gateway computes from
//! the model id, the parameters and the prompt.
//!
//! The cache only stores and returns; which requests may be cached (deterministic settings, the caller
//! did not opt out), how the key is made and how old an entry may be are the gateway's decisions.

use std::fmt;

use crate::ports::model::ModelReply;
use crate::time::Timestamp;

/// A cache key: an opaque digest the gateway computed (hex SHA-256 in practice).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Wraps a digest.
    #[must_use]
    pub fn new(digest: impl Into<String>) -> CacheKey {
        CacheKey(digest.into())
    }

    /// The digest as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored reply and when it was stored, so the gateway can refuse entries older than it allows.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedReply {
    /// The reply as the provider gave it.
    pub reply: ModelReply,
    /// When it was stored.
    pub stored_at: Timestamp,
}

/// Why a cache operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The backend is busy or unreachable for now.
    #[error("model cache unavailable: {0}")]
    Unavailable(String),
    /// A stored entry cannot be decoded.
    #[error("model cache entry is corrupt or of another version: {0}")]
    Corrupt(String),
}

impl CacheError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, CacheError::Unavailable(_))
    }
}

/// Replies stored by key.
#[async_trait::async_trait]
pub trait ModelCache: Send + Sync {
    /// The reply stored under `key`, if any.
    ///
    /// # Errors
    /// MUST return `Ok(None)` for a key never stored, [`CacheError::Corrupt`] for an entry that cannot
    /// be decoded, and [`CacheError::Unavailable`] when the backend cannot be read.
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, CacheError>;

    /// Stores `reply` under `key` as of `at`, replacing any entry there.
    ///
    /// # Errors
    /// MUST return [`CacheError::Unavailable`] when the entry could not be stored; after `Ok`, a `get`
    /// of the same key MUST return this reply and `at` (until replaced).
    async fn put(
        &self,
        key: &CacheKey,
        reply: &ModelReply,
        at: Timestamp,
    ) -> Result<(), CacheError>;
}
