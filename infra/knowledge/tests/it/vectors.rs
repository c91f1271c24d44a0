//! Vector and fused retrieval, with a deterministic test embedder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cadre_domain::ports::knowledge::{
    EmbedError, EmbedPurpose, Embedder, IndexScope, KnowledgeBase, RetrievalMode, SearchMode,
    SearchQuery, VectorStatus,
};
use cadre_domain::ports::vectors::{NearestQuery, Restrict, VectorRecord, VectorStore};
use cadre_knowledge::{EmbeddedKnowledge, EmbeddedVectorStore, REPOSITORY_NAMESPACE};

use crate::support::Fixture;

/// Bag of words hashed into 64 buckets, with synonyms folded together: enough to find what lexical
/// search cannot (a word the code never uses).
struct WordEmbedder {
    model: &'static str,
    calls: AtomicUsize,
    fail: bool,
}

impl WordEmbedder {
    fn new(model: &'static str) -> Arc<WordEmbedder> {
        Arc::new(WordEmbedder { model, calls: AtomicUsize::new(0), fail: false })
    }
}

#[async_trait::async_trait]
impl Embedder for WordEmbedder {
    fn model_id(&self) -> String {
        self.model.into()
    }
    fn dimensions(&self) -> usize {
        64
    }
    async fn embed(&self, texts: &[String], _: EmbedPurpose) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail {
            return Err(EmbedError::Unavailable("connection refused".into()));
        }
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 64];
                for w in t.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
                    let w = w.to_lowercase();
                    let w = match w.as_str() {
                        "automobile" | "vehicle" => "car".to_owned(),
                        _ => w,
                    };
                    let h = w
                        .bytes()
                        .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
                    v[h % 64] += 1.0;
                }
                v
            })
            .collect())
    }
}

const REPO: &str = r#"
//- /src/garage.rs
/// Parks a car in the garage.
pub fn park_car(car: Car) {
    garage().push(car);
}
//- /src/kitchen.rs
/// Boils water for tea.
pub fn boil_water() {
    kettle().on();
}
"#;

fn with_embedder(f: &Fixture, embedder: Arc<dyn Embedder>) -> EmbeddedKnowledge {
    EmbeddedKnowledge::open(&f.data).unwrap().with_embedder(embedder)
}

#[tokio::test]
async fn vectors_find_what_words_cannot_and_fusion_combines_both() {
    let f = Fixture::new(REPO);
    let embedder = WordEmbedder::new("words-v1");
    let kb = with_embedder(&f, embedder.clone());
    let report = kb.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    assert_eq!(report.vectors, VectorStatus::Embedded { chunks: report.totals.chunks });

    let mut q = SearchQuery::new("automobile", 5);
    q.mode = SearchMode::Lexical;
    assert!(kb.search(&f.key, &q).await.unwrap().hits.is_empty(), "no chunk says automobile");
    q.mode = SearchMode::Vector;
    let results = kb.search(&f.key, &q).await.unwrap();
    assert_eq!(results.mode, RetrievalMode::Vector);
    assert_eq!(results.hits[0].chunk.symbol.as_deref(), Some("park_car"));
    assert_eq!((results.hits[0].lexical_rank, results.hits[0].vector_rank), (None, Some(1)));

    let results = kb.search(&f.key, &SearchQuery::new("boil water", 5)).await.unwrap();
    assert_eq!(results.mode, RetrievalMode::Fused);
    assert_eq!(results.hits[0].chunk.symbol.as_deref(), Some("boil_water"));
    assert_eq!((results.hits[0].lexical_rank, results.hits[0].vector_rank), (Some(1), Some(1)));

    let again = kb.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    assert_eq!(again.vectors, VectorStatus::Embedded { chunks: 0 }, "nothing new to embed");
}

#[tokio::test]
async fn a_new_embedding_model_re_embeds_everything() {
    let f = Fixture::new(REPO);
    let first = with_embedder(&f, WordEmbedder::new("words-v1"));
    let report = first.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    let chunks = report.totals.chunks;
    drop(first);
    let second = with_embedder(&f, WordEmbedder::new("words-v2"));
    let report = second.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    assert_eq!(report.vectors, VectorStatus::Embedded { chunks });
}

#[tokio::test]
async fn a_failing_embedder_leaves_a_lexical_index_and_says_so() {
    let f = Fixture::new(REPO);
    let failing = Arc::new(WordEmbedder { model: "down", calls: AtomicUsize::new(0), fail: true });
    let kb = with_embedder(&f, failing);
    let report = kb.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    match &report.vectors {
        VectorStatus::Failed { error } => assert!(error.contains("connection refused"), "{error}"),
        other => panic!("{other:?}"),
    }
    let results = kb.search(&f.key, &SearchQuery::new("park car", 5)).await.unwrap();
    match &results.mode {
        RetrievalMode::LexicalOnly { reason } => {
            assert!(reason.contains("embedder failed"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(results.hits[0].chunk.symbol.as_deref(), Some("park_car"));
}

#[tokio::test]
async fn the_embedded_vector_store_keeps_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    cadre_testkit::contracts::vectors::vector_store_contract(|| {
        let path =
            dir.path().join(format!("store-{}.sqlite", next.fetch_add(1, Ordering::Relaxed)));
        async move { Arc::new(EmbeddedVectorStore::open(&path).unwrap()) as Arc<dyn VectorStore> }
    })
    .await;
}

#[tokio::test]
async fn the_vector_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    let record = VectorRecord {
        id: "r/1".into(),
        vector: vec![0.0, 2.0],
        restricts: vec![Restrict::new(REPOSITORY_NAMESPACE, ["r"])],
    };
    EmbeddedVectorStore::open(&path).unwrap().upsert(&[record]).await.unwrap();
    let store = EmbeddedVectorStore::open(&path).unwrap();
    let q = NearestQuery {
        vector: vec![0.0, 1.0],
        k: 1,
        restricts: vec![Restrict::new(REPOSITORY_NAMESPACE, ["r"])],
    };
    let got = store.nearest(&q).await.unwrap();
    assert_eq!(got.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["r/1"]);
}

/// A plugged-in store (as Vertex AI Vector Search would be) is what the knowledge base writes to and
/// searches; a deleted file's vectors leave it.
#[tokio::test]
async fn the_knowledge_base_goes_through_a_plugged_in_vector_store() {
    let f = Fixture::new(REPO);
    let store = Arc::new(EmbeddedVectorStore::open(&f.data.join("plugged.sqlite")).unwrap());
    let kb = with_embedder(&f, WordEmbedder::new("words-v1"))
        .with_vector_store(store.clone() as Arc<dyn VectorStore>);
    let report = kb.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    let chunks = usize::try_from(report.totals.chunks).unwrap();
    assert_eq!(store.len(), chunks);
    let q = NearestQuery {
        vector: vec![1.0; 64],
        k: 100,
        restricts: vec![Restrict::new(REPOSITORY_NAMESPACE, [f.key.as_str()])],
    };
    let got = store.nearest(&q).await.unwrap();
    assert_eq!(got.len(), chunks, "every record is restricted to the repository");
    assert!(got.iter().all(|n| n.id.starts_with(&format!("{}/", f.key))), "{got:?}");

    let mut query = SearchQuery::new("automobile", 5);
    query.mode = SearchMode::Vector;
    let results = kb.search(&f.key, &query).await.unwrap();
    assert_eq!(results.hits[0].chunk.symbol.as_deref(), Some("park_car"));

    std::fs::remove_file(f.root.join("src/garage.rs")).unwrap();
    let report = kb.index(&f.key, &f.root, IndexScope::Changed).await.unwrap();
    assert_eq!(
        store.len(),
        usize::try_from(report.totals.chunks).unwrap(),
        "stale vectors removed"
    );
    let results = kb.search(&f.key, &query).await.unwrap();
    assert!(results.hits.iter().all(|h| h.chunk.path != "src/garage.rs"), "{results:?}");
}
