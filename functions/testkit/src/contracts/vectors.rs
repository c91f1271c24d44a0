//! Contract suite for the `VectorStore` port: each story checks a MUST sentence of the trait's docs, and
//! the same stories run against every adapter (the embedded store, and Vertex AI Vector Search against
//! a wire-format fake).
//!
//! `make` builds a fresh, empty store per story. Vectors here have [`CONTRACT_DIMENSIONS`] numbers; a
//! store whose dimensions are configured must be configured with that many.
//!
//! ```ignore
//! cadre_testkit::contracts::vectors::vector_store_contract(|| async {
//!     Arc::new(EmbeddedVectorStore::open(&fresh_path()).unwrap()) as Arc<dyn VectorStore>
//! })
//! .await;
//! ```

use std::future::Future;
use std::sync::Arc;

use cadre_domain::ports::vectors::{
    NearestQuery, Restrict, VectorRecord, VectorStore, VectorStoreError,
};

/// The length of every vector the suite stores.
pub const CONTRACT_DIMENSIONS: usize = 4;

/// Runs every story; `make` builds a fresh, empty store per story.
pub async fn vector_store_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn VectorStore>>,
{
    an_upserted_record_is_its_own_nearest(&*make().await).await;
    upsert_replaces_vector_and_restricts(&*make().await).await;
    removed_ids_are_never_returned(&*make().await).await;
    restricts_filter_every_neighbour(&*make().await).await;
    nearest_is_ordered_and_bounded(&*make().await).await;
    a_bad_batch_stores_nothing(&*make().await).await;
    query_vectors_are_checked(&*make().await).await;
}

fn record(id: &str, vector: [f32; CONTRACT_DIMENSIONS], repo: &str, team: &str) -> VectorRecord {
    VectorRecord {
        id: id.into(),
        vector: vector.to_vec(),
        restricts: vec![Restrict::new("repository", [repo]), Restrict::new("team", [team])],
    }
}

fn query(vector: [f32; CONTRACT_DIMENSIONS], k: usize, restricts: Vec<Restrict>) -> NearestQuery {
    NearestQuery { vector: vector.to_vec(), k, restricts }
}

fn ids(neighbors: &[cadre_domain::ports::vectors::Neighbor]) -> Vec<&str> {
    neighbors.iter().map(|n| n.id.as_str()).collect()
}

/// "After `Ok`, nearest with a record's own vector and restricts MUST return that record first."
async fn an_upserted_record_is_its_own_nearest(store: &dyn VectorStore) {
    let empty = store.nearest(&query([1.0, 0.0, 0.0, 0.0], 5, vec![])).await.unwrap();
    assert!(empty.is_empty(), "an empty store has no neighbours: {empty:?}");
    let records = [
        record("a", [1.0, 0.0, 0.0, 0.0], "r1", "core"),
        record("b", [0.0, 1.0, 0.0, 0.0], "r1", "core"),
        record("c", [0.0, 0.0, 1.0, 0.5], "r2", "web"),
    ];
    store.upsert(&records).await.unwrap();
    for r in &records {
        let q = NearestQuery { vector: r.vector.clone(), k: 3, restricts: r.restricts.clone() };
        let got = store.nearest(&q).await.unwrap();
        assert_eq!(got.first().map(|n| n.id.as_str()), Some(r.id.as_str()), "{got:?}");
        assert!((got[0].score - 1.0).abs() < 1e-4, "its own vector has cosine 1: {got:?}");
    }
    // Cosine compares directions: a longer vector in the same direction is as near.
    let got = store.nearest(&query([5.0, 0.0, 0.0, 0.0], 1, vec![])).await.unwrap();
    assert_eq!(ids(&got), ["a"]);
}

/// "Stores records, replacing (vector and restricts) any with the same id."
async fn upsert_replaces_vector_and_restricts(store: &dyn VectorStore) {
    store.upsert(&[record("a", [1.0, 0.0, 0.0, 0.0], "r1", "core")]).await.unwrap();
    store.upsert(&[record("a", [0.0, 1.0, 0.0, 0.0], "r2", "core")]).await.unwrap();
    let got = store.nearest(&query([0.0, 1.0, 0.0, 0.0], 5, vec![])).await.unwrap();
    assert_eq!(ids(&got), ["a"], "one record, not two");
    assert!((got[0].score - 1.0).abs() < 1e-4, "the new vector: {got:?}");
    let old_repo = vec![Restrict::new("repository", ["r1"])];
    let got = store.nearest(&query([0.0, 1.0, 0.0, 0.0], 5, old_repo)).await.unwrap();
    assert!(got.is_empty(), "the old restricts are gone: {got:?}");
}

/// "After `Ok`, nearest MUST NOT return a removed id"; unknown ids are ignored.
async fn removed_ids_are_never_returned(store: &dyn VectorStore) {
    store
        .upsert(&[
            record("a", [1.0, 0.0, 0.0, 0.0], "r1", "core"),
            record("b", [0.9, 0.1, 0.0, 0.0], "r1", "core"),
        ])
        .await
        .unwrap();
    store.remove(&["a".to_owned(), "never-stored".to_owned()]).await.unwrap();
    let got = store.nearest(&query([1.0, 0.0, 0.0, 0.0], 5, vec![])).await.unwrap();
    assert_eq!(ids(&got), ["b"]);
    store.remove(&["b".to_owned()]).await.unwrap();
    assert!(store.nearest(&query([1.0, 0.0, 0.0, 0.0], 5, vec![])).await.unwrap().is_empty());
}

/// "MUST NOT return a record failing a restrict": all namespaces must match, any value within one.
async fn restricts_filter_every_neighbour(store: &dyn VectorStore) {
    store
        .upsert(&[
            record("r1-core", [1.0, 0.0, 0.0, 0.0], "r1", "core"),
            record("r1-web", [1.0, 0.1, 0.0, 0.0], "r1", "web"),
            record("r2-core", [1.0, 0.2, 0.0, 0.0], "r2", "core"),
            VectorRecord { id: "bare".into(), vector: vec![1.0, 0.0, 0.0, 0.0], restricts: vec![] },
        ])
        .await
        .unwrap();
    let near = |restricts: Vec<Restrict>| query([1.0, 0.0, 0.0, 0.0], 10, restricts);
    let mut got = store.nearest(&near(vec![Restrict::new("repository", ["r1"])])).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&got), ["r1-core", "r1-web"]);
    let both = vec![Restrict::new("repository", ["r1", "r2"]), Restrict::new("team", ["core"])];
    let mut got = store.nearest(&near(both)).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&got), ["r1-core", "r2-core"]);
    let got = store.nearest(&near(vec![Restrict::new("repository", ["r9"])])).await.unwrap();
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(store.nearest(&near(vec![])).await.unwrap().len(), 4, "no restrict: everything");
}

/// "At most `query.k` records …, nearest first"; `k = 0` gives an empty list.
async fn nearest_is_ordered_and_bounded(store: &dyn VectorStore) {
    let records: Vec<VectorRecord> = (0..10u8)
        .map(|i| {
            let angle = f32::from(i) * 0.15;
            record(&format!("v{i}"), [angle.cos(), angle.sin(), 0.0, 0.0], "r1", "core")
        })
        .collect();
    store.upsert(&records).await.unwrap();
    let got = store.nearest(&query([1.0, 0.0, 0.0, 0.0], 3, vec![])).await.unwrap();
    assert_eq!(ids(&got), ["v0", "v1", "v2"]);
    assert!(got.windows(2).all(|w| w[0].score >= w[1].score), "{got:?}");
    assert!(got.iter().all(|n| (-1.0..=1.0001).contains(&n.score)), "cosines: {got:?}");
    assert!(store.nearest(&query([1.0, 0.0, 0.0, 0.0], 0, vec![])).await.unwrap().is_empty());
}

/// "MUST store all the records or none", with `DimensionMismatch` and `BadVector` named.
async fn a_bad_batch_stores_nothing(store: &dyn VectorStore) {
    store.upsert(&[record("a", [1.0, 0.0, 0.0, 0.0], "r1", "core")]).await.unwrap();
    let short = VectorRecord { id: "short".into(), vector: vec![1.0, 0.0], restricts: vec![] };
    let err =
        store.upsert(&[record("b", [0.0, 1.0, 0.0, 0.0], "r1", "core"), short]).await.unwrap_err();
    assert_eq!(
        err,
        VectorStoreError::DimensionMismatch {
            id: "short".into(),
            expected: CONTRACT_DIMENSIONS,
            got: 2
        }
    );
    for bad in [vec![0.0; CONTRACT_DIMENSIONS], vec![f32::NAN, 1.0, 0.0, 0.0], vec![]] {
        let rec = VectorRecord { id: "bad".into(), vector: bad, restricts: vec![] };
        let err = store.upsert(&[record("c", [0.0, 0.0, 1.0, 0.0], "r1", "core"), rec]).await;
        assert!(
            matches!(err, Err(VectorStoreError::BadVector { ref id, .. }) if id == "bad"),
            "{err:?}"
        );
    }
    let got = store.nearest(&query([0.0, 1.0, 1.0, 0.0], 10, vec![])).await.unwrap();
    assert_eq!(ids(&got), ["a"], "nothing of the refused batches was stored");
}

/// Queries of the wrong length are `DimensionMismatch` with id `query`; unusable ones `BadVector`.
async fn query_vectors_are_checked(store: &dyn VectorStore) {
    store.upsert(&[record("a", [1.0, 0.0, 0.0, 0.0], "r1", "core")]).await.unwrap();
    let err = store
        .nearest(&NearestQuery { vector: vec![1.0, 0.0], k: 1, restricts: vec![] })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        VectorStoreError::DimensionMismatch {
            id: "query".into(),
            expected: CONTRACT_DIMENSIONS,
            got: 2
        }
    );
    let err = store.nearest(&query([0.0; CONTRACT_DIMENSIONS], 1, vec![])).await;
    assert!(
        matches!(err, Err(VectorStoreError::BadVector { ref id, .. }) if id == "query"),
        "{err:?}"
    );
}
