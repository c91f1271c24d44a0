//! The shared `StateStore` contract suite, run against the SQLite store.

use cadre_domain::ports::store::StateStore;
use cadre_store::SqliteStore;
use cadre_testkit::contracts::store::store_contract;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test]
async fn sqlite_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let stories = AtomicUsize::new(0);
    store_contract(|| {
        let n = stories.fetch_add(1, Ordering::SeqCst);
        let store = SqliteStore::open(&dir.path().join(format!("store-{n}.db"))).unwrap();
        async move { Arc::new(store) as Arc<dyn StateStore> }
    })
    .await;
    assert!(stories.load(Ordering::SeqCst) >= 10, "the suite made a store per story");
}
