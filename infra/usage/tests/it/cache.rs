use cadre_domain::ports::model::{FinishReason, ModelReply, TokenUsage};
use cadre_domain::ports::model_cache::{CacheError, CacheKey, ModelCache};
use cadre_domain::Timestamp;
use cadre_usage::{SqliteModelCache, SqliteUsageLedger};

use crate::db_file;

fn reply(text: &str) -> ModelReply {
    ModelReply {
        text: text.to_owned(),
        usage: TokenUsage { input: 12, output: 3, cached: 0, thinking: 7 },
        finish: FinishReason::Other("FINISH_REASON_X".into()),
        model: "gemini-test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_key_never_stored_is_none() {
    let (_dir, path) = db_file();
    let cache = SqliteModelCache::open(&path).unwrap();
    assert_eq!(cache.get(&CacheKey::new("nothing")).await.unwrap(), None);
}

#[tokio::test]
async fn get_returns_what_put_stored_and_put_replaces() {
    let (_dir, path) = db_file();
    let cache = SqliteModelCache::open(&path).unwrap();
    let key = CacheKey::new("k1");
    cache.put(&key, &reply("first"), Timestamp(10)).await.unwrap();
    let got = cache.get(&key).await.unwrap().unwrap();
    assert_eq!((got.reply, got.stored_at), (reply("first"), Timestamp(10)));
    cache.put(&key, &reply("second"), Timestamp(20)).await.unwrap();
    let got = cache.get(&key).await.unwrap().unwrap();
    assert_eq!((got.reply, got.stored_at), (reply("second"), Timestamp(20)));
    assert_eq!(cache.get(&CacheKey::new("k2")).await.unwrap(), None);
}

#[tokio::test]
async fn entries_survive_reopening_beside_the_ledger() {
    let (_dir, path) = db_file();
    let key = CacheKey::new("k");
    SqliteModelCache::open(&path).unwrap().put(&key, &reply("kept"), Timestamp(1)).await.unwrap();
    let _ledger = SqliteUsageLedger::open(&path).unwrap();
    let reopened = SqliteModelCache::open(&path).unwrap();
    assert_eq!(reopened.get(&key).await.unwrap().unwrap().reply.text, "kept");
}

#[tokio::test]
async fn an_entry_that_does_not_decode_is_corrupt() {
    let (_dir, path) = db_file();
    let cache = SqliteModelCache::open(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("INSERT INTO model_cache_entries VALUES ('bad', 1, '{\"text\": 5}')", []).unwrap();
    let error = cache.get(&CacheKey::new("bad")).await.unwrap_err();
    assert!(matches!(&error, CacheError::Corrupt(m) if m.contains("bad")), "{error}");
    // A put over it repairs the entry.
    cache.put(&CacheKey::new("bad"), &reply("fixed"), Timestamp(2)).await.unwrap();
    assert_eq!(cache.get(&CacheKey::new("bad")).await.unwrap().unwrap().reply.text, "fixed");
}

#[tokio::test]
async fn prune_deletes_entries_stored_before_the_cut() {
    let (_dir, path) = db_file();
    let cache = SqliteModelCache::open(&path).unwrap();
    for (key, at) in [("old", 5), ("edge", 10), ("new", 15)] {
        cache.put(&CacheKey::new(key), &reply(key), Timestamp(at)).await.unwrap();
    }
    assert_eq!(cache.prune(Timestamp(10)).await.unwrap(), 1);
    assert_eq!(cache.get(&CacheKey::new("old")).await.unwrap(), None);
    assert!(cache.get(&CacheKey::new("edge")).await.unwrap().is_some());
}
