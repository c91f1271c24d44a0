//! [`FirestoreModelCache`]: the `ModelCache` port on Firestore, one document per key in `model_cache`,
//! so a reply cached by one Cloud Run instance is found by the others.

use async_trait::async_trait;
use cadre_domain::ports::model::ModelReply;
use cadre_domain::ports::model_cache::{CacheError, CacheKey, CachedReply, ModelCache};
use cadre_domain::Timestamp;

use super::{put, Fields, Firestore, FirestoreConfig, FsError};
use crate::storage::sha256_hex;

/// Model replies in a Firestore database.
#[derive(Debug, Clone)]
pub struct FirestoreModelCache {
    db: Firestore,
}

impl FirestoreModelCache {
    /// A cache in the database `config` names.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: &FirestoreConfig) -> Result<FirestoreModelCache, CacheError> {
        Ok(FirestoreModelCache { db: Firestore::new(config).map_err(cache_error)? })
    }

    /// The key is the gateway's digest; hashing it again keeps any key a valid document id.
    fn doc_name(&self, key: &CacheKey) -> String {
        self.db.name(&format!("model_cache/{}", sha256_hex(key.as_str().as_bytes())))
    }
}

fn cache_error(error: FsError) -> CacheError {
    match error {
        FsError::Corrupt(why) => CacheError::Corrupt(why),
        FsError::Unavailable(why) | FsError::Exists(why) => CacheError::Unavailable(why),
    }
}

#[async_trait]
impl ModelCache for FirestoreModelCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, CacheError> {
        let found = self.db.get(&[self.doc_name(key)]).await.map_err(cache_error)?;
        let Some(doc) = found.into_iter().flatten().next() else {
            return Ok(None);
        };
        let reply: ModelReply = doc.decode("reply").map_err(cache_error)?;
        let stored_at = Timestamp(doc.int("stored_at").map_err(cache_error)?);
        Ok(Some(CachedReply { reply, stored_at }))
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: &ModelReply,
        at: Timestamp,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_string(reply).map_err(|e| {
            CacheError::Corrupt(format!("the reply for key {key} cannot be encoded: {e}"))
        })?;
        let fields =
            Fields::new().string("key", key.as_str()).string("reply", &json).int("stored_at", at.0);
        self.db.commit(vec![put(self.doc_name(key), fields)]).await.map_err(cache_error)
    }
}
