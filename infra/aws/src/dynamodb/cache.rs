//! [`DynamoDbModelCache`]: the `ModelCache` port on the state table, so every Lambda instance answers a
//! repeated request from the same cache. One item per key: `pk = cache#SHA256(KEY)`, `sk = cache`.

use async_trait::async_trait;
use cadre_domain::ports::model::ModelReply;
use cadre_domain::ports::model_cache::{CacheError, CacheKey, CachedReply, ModelCache};
use cadre_domain::ports::store::StoreError;
use cadre_domain::Timestamp;
use sha2::{Digest, Sha256};

use super::item::{self, Fields, ItemBuilder};
use super::{DynamoDbConfig, Table, MAX_ITEM_BYTES};

const SORT: &str = "cache";

/// Model replies in the state table.
#[derive(Debug, Clone)]
pub struct DynamoDbModelCache {
    table: Table,
}

impl DynamoDbModelCache {
    /// A cache in the table `config` names.
    pub async fn connect(config: &DynamoDbConfig) -> DynamoDbModelCache {
        DynamoDbModelCache { table: Table::connect(config).await }
    }
}

/// The key is the gateway's digest; hashing it again bounds its length in a partition key.
fn partition(key: &CacheKey) -> String {
    let digest = Sha256::digest(key.as_str().as_bytes());
    format!("cache#{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn cache_error(error: StoreError) -> CacheError {
    match error {
        StoreError::Corrupt(why) => CacheError::Corrupt(why),
        other => CacheError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl ModelCache for DynamoDbModelCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, CacheError> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(item::key(&partition(key), SORT)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| cache_error(self.table.unavailable("GetItem", &e)))?;
        let Some(found) = out.item() else {
            return Ok(None);
        };
        let what = format!("the cache item of {key}");
        let fields = Fields::new(found, &what);
        let reply: ModelReply = fields.json("reply").map_err(cache_error)?;
        let stored_at = Timestamp(fields.i64("stored_at").map_err(cache_error)?);
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
        let new = ItemBuilder::new(&partition(key), SORT)
            .s("key", key.as_str())
            .s("reply", &json)
            .n("stored_at", at.0)
            .build();
        let size = item::size(&new);
        if size > MAX_ITEM_BYTES {
            return Err(CacheError::Unavailable(format!(
                "the reply for key {key} is {size} bytes as a DynamoDB item, over its limit of {MAX_ITEM_BYTES}; it is not cached"
            )));
        }
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(new))
            .send()
            .await
            .map_err(|e| cache_error(self.table.unavailable("PutItem", &e)))?;
        Ok(())
    }
}
