//! A local server speaking the part of Cloud Storage's JSON API that `CloudStorage` uses: media upload
//! (`POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=…`) and media download
//! (`GET /storage/v1/b/{bucket}/o/{object}?alt=media`, the object name percent-encoded as one path
//! segment), with Google's JSON error body for a missing object.
//!
//! It does not cover what only a real bucket shows: resumable uploads (not used: artifacts are at most
//! a few MiB), generations and preconditions, IAM, retention and lifecycle rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

type Objects = Arc<Mutex<BTreeMap<(String, String), Vec<u8>>>>;

pub(crate) struct StorageServer {
    addr: std::net::SocketAddr,
    objects: Objects,
}

impl StorageServer {
    pub(crate) async fn start() -> StorageServer {
        let objects: Objects = Arc::default();
        let app = Router::new()
            .route("/upload/storage/v1/b/{bucket}/o", post(upload))
            .route("/storage/v1/b/{bucket}/o/{object}", get(download))
            .with_state(objects.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StorageServer { addr, objects }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn objects(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().map(|(_, name)| name.clone()).collect()
    }

    /// Flips a byte of every object, as a bucket edited behind Cadre's back would.
    pub(crate) fn tamper_all(&self) {
        for bytes in self.objects.lock().unwrap().values_mut() {
            bytes[0] ^= 0xff;
        }
    }
}

async fn upload(
    State(objects): State<Objects>,
    Path(bucket): Path<String>,
    uri: Uri,
    body: Bytes,
) -> impl IntoResponse {
    let query = query_of(&uri);
    if query.get("uploadType").map(String::as_str) != Some("media") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": "uploadType=media expected"}})),
        );
    }
    let Some(name) = query.get("name").cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": "name is required"}})),
        );
    };
    let size = body.len();
    objects.lock().unwrap().insert((bucket.clone(), name.clone()), body.to_vec());
    (
        StatusCode::OK,
        Json(
            json!({ "kind": "storage#object", "bucket": bucket, "name": name, "size": size.to_string() }),
        ),
    )
}

async fn download(
    State(objects): State<Objects>,
    Path((bucket, object)): Path<(String, String)>,
    uri: Uri,
) -> axum::response::Response {
    let query = query_of(&uri);
    if query.get("alt").map(String::as_str) != Some("media") {
        return (StatusCode::BAD_REQUEST, "alt=media expected").into_response();
    }
    match objects.lock().unwrap().get(&(bucket, object.clone())) {
        Some(bytes) => bytes.clone().into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "message": format!("No such object: {object}"), "errors": [{"reason": "notFound"}]}})),
        )
            .into_response(),
    }
}

/// The decoded query parameters (axum's `Query` extractor is not compiled in).
fn query_of(uri: &Uri) -> HashMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://local{uri}")).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}
