//! `VertexVectorIndex` against a local server speaking Vector Search's REST format:
//! `…/indexes/{id}:upsertDatapoints` and `:removeDatapoints` (streaming updates) and
//! `…/indexEndpoints/{id}:findNeighbors` with `restricts` (namespace + allowList) and `neighborCount`,
//! answering nearest first by dot-product distance, as an index built with `DOT_PRODUCT_DISTANCE` does.
//!
//! What only a real project shows: approximate (tree-AH) recall, the delay before a streamed update is
//! searchable, numeric restricts and crowding, quotas, and the public endpoint's own domain.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cadre_gcp::{Datapoint, GoogleAuth, Restrict, VectorError, VertexConfig, VertexVectorIndex};
use serde_json::{json, Value};

type Points = Arc<Mutex<BTreeMap<String, (Vec<f64>, Vec<(String, Vec<String>)>)>>>;

async fn index_call(
    State(points): State<Points>,
    Path((_project, _region, call)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut points = points.lock().unwrap();
    match call.as_str() {
        "42:upsertDatapoints" => {
            for p in body["datapoints"].as_array().unwrap() {
                let vector = p["featureVector"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let restricts = restricts_of(&p["restricts"]);
                points.insert(p["datapointId"].as_str().unwrap().to_owned(), (vector, restricts));
            }
            (StatusCode::OK, Json(json!({})))
        }
        "42:removeDatapoints" => {
            for id in body["datapointIds"].as_array().unwrap() {
                points.remove(id.as_str().unwrap());
            }
            (StatusCode::OK, Json(json!({})))
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"code": 404, "message": format!("Index `{call}` not found."), "status": "NOT_FOUND"}}),
            ),
        ),
    }
}

fn restricts_of(value: &Value) -> Vec<(String, Vec<String>)> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let allow = r["allowList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            (r["namespace"].as_str().unwrap().to_owned(), allow)
        })
        .collect()
}

async fn find_neighbors(State(points): State<Points>, Json(body): Json<Value>) -> Json<Value> {
    assert_eq!(body["deployedIndexId"], "cadre_core_code");
    let query = &body["queries"][0];
    let vector: Vec<f64> = query["datapoint"]["featureVector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let wanted = restricts_of(&query["datapoint"]["restricts"]);
    let k = query["neighborCount"].as_u64().unwrap() as usize;
    let points = points.lock().unwrap();
    let mut hits: Vec<(String, f64)> = points
        .iter()
        .filter(|(_, (_, have))| {
            wanted.iter().all(|(ns, allow)| {
                have.iter()
                    .any(|(hns, values)| hns == ns && values.iter().any(|v| allow.contains(v)))
            })
        })
        // Vector Search reports dot-product distance as the negated product: smaller is nearer.
        .map(|(id, (v, _))| (id.clone(), -v.iter().zip(&vector).map(|(a, b)| a * b).sum::<f64>()))
        .collect();
    hits.sort_by(|a, b| a.1.total_cmp(&b.1));
    hits.truncate(k);
    let neighbors: Vec<Value> = hits
        .iter()
        .map(|(id, d)| json!({"datapoint": {"datapointId": id}, "distance": d}))
        .collect();
    Json(json!({ "nearestNeighbors": [{ "id": "query", "neighbors": neighbors }] }))
}

fn index_config(url: &str, index: &str) -> VertexConfig {
    VertexConfig {
        base_url: url.to_owned(),
        query_url: url.to_owned(),
        project: "p".into(),
        region: "europe-west1".into(),
        index: index.into(),
        endpoint: "7".into(),
        deployed_index: "cadre_core_code".into(),
        auth: GoogleAuth::Emulator,
    }
}

async fn vertex() -> (VertexVectorIndex, Points) {
    vertex_of("42").await
}

async fn vertex_of(index: &str) -> (VertexVectorIndex, Points) {
    let points: Points = Arc::default();
    let app = Router::new()
        .route("/v1/projects/{project}/locations/{region}/indexes/{call}", post(index_call))
        .route("/v1/projects/p/locations/europe-west1/indexEndpoints/{call}", post(find_neighbors))
        .with_state(points.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (VertexVectorIndex::new(index_config(&url, index)).unwrap(), points)
}

fn point(id: &str, vector: [f32; 3], repo: &str, team: &str) -> Datapoint {
    Datapoint {
        id: id.into(),
        vector: vector.to_vec(),
        restricts: vec![Restrict::repo(repo), Restrict::team(team)],
    }
}

#[tokio::test]
async fn neighbors_are_found_within_one_repository_and_team_and_removals_stick() {
    let (index, stored) = vertex().await;
    index
        .upsert(&[
            point("a/1", [1.0, 0.0, 0.0], "repo-a", "core"),
            point("a/2", [0.6, 0.8, 0.0], "repo-a", "core"),
            point("b/1", [1.0, 0.0, 0.0], "repo-b", "core"),
            point("a/3", [1.0, 0.0, 0.0], "repo-a", "web"),
        ])
        .await
        .unwrap();
    assert_eq!(stored.lock().unwrap().len(), 4);
    let only_a = [Restrict::repo("repo-a"), Restrict::team("core")];
    let found = index.find_neighbors(&[1.0, 0.1, 0.0], 5, &only_a).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a/1", "a/2"], "other repositories and teams are never returned");
    assert!(found[0].distance < found[1].distance, "nearest first");
    assert_eq!(index.find_neighbors(&[1.0, 0.1, 0.0], 1, &only_a).await.unwrap().len(), 1);

    index.remove(&["a/1".to_owned()]).await.unwrap();
    let ids: Vec<String> = index
        .find_neighbors(&[1.0, 0.1, 0.0], 5, &only_a)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, ["a/2"]);
    // Re-upserting an id replaces it.
    index.upsert(&[point("a/2", [0.0, 0.0, 1.0], "repo-a", "core")]).await.unwrap();
    assert_eq!(stored.lock().unwrap()["a/2"].0, [0.0, 0.0, 1.0]);
}

#[tokio::test]
async fn a_missing_index_is_refused_and_an_unreachable_one_is_unavailable() {
    let (index, _) = vertex_of("404").await;
    let error = index.upsert(&[point("x", [1.0, 0.0, 0.0], "r", "t")]).await.unwrap_err();
    assert!(matches!(error, VectorError::Refused(_)) && !error.is_retryable(), "{error}");
    assert!(error.to_string().contains("not found"), "{error}");

    let mut config = index_config("http://127.0.0.1:9", "42");
    config.query_url = "http://127.0.0.1:9".into();
    let unreachable = VertexVectorIndex::new(config).unwrap();
    let error = unreachable.find_neighbors(&[1.0], 1, &[]).await.unwrap_err();
    assert!(matches!(error, VectorError::Unavailable(_)) && error.is_retryable(), "{error}");
}

#[tokio::test]
async fn the_vector_store_port_holds_on_vector_search() {
    use cadre_domain::ports::vectors::VectorStore;
    use cadre_testkit::contracts::vectors::{vector_store_contract, CONTRACT_DIMENSIONS};
    vector_store_contract(|| async {
        let (index, _points) = vertex().await;
        Arc::new(cadre_gcp::VertexVectorStore::new(index, CONTRACT_DIMENSIONS))
            as Arc<dyn VectorStore>
    })
    .await;
}

#[tokio::test]
async fn a_missing_index_is_refused_through_the_port() {
    use cadre_domain::ports::vectors::{VectorRecord, VectorStore, VectorStoreError};
    let (index, _points) = vertex_of("missing").await;
    let store = cadre_gcp::VertexVectorStore::new(index, 2);
    let record = VectorRecord { id: "a".into(), vector: vec![1.0, 0.0], restricts: vec![] };
    let error = store.upsert(&[record]).await.unwrap_err();
    assert!(matches!(error, VectorStoreError::Refused(_)), "{error:?}");
    assert!(!error.is_retryable());
}
