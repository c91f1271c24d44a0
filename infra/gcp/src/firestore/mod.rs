//! Firestore's REST API (`…/documents:commit`, `:batchGet`, `:runQuery`), as the store, the usage
//! ledger and the model cache use it.
//!
//! A state change is an optimistic transaction: read, decide, then one atomic `commit` whose
//! preconditions fail if anything read has changed meanwhile (the task document's `updateTime`, which
//! every writer of a log moves on; `exists: false` on the documents it creates). A commit that loses the
//! race is run again from its reads, a bounded number of times. Firestore's lock-based transactions
//! (`beginTransaction`) would give the same guarantee, but two of them that read the same document and
//! then both write it wait for each other until one's lock times out (seconds, on the emulator); the
//! preconditions never wait. The Terraform module sets the database to optimistic concurrency to match.

pub(crate) mod cache;
pub(crate) mod store;
pub(crate) mod usage;
mod value;

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::auth::GoogleAuth;
use crate::rest::{Api, ApiError};

pub(crate) use value::{Doc, Fields};

/// Where the real API answers.
const FIRESTORE_URL: &str = "https://firestore.googleapis.com";
/// How often a transaction that lost a race is run again before the caller is told the store is busy.
const MAX_TRANSACTION_RUNS: u32 = 8;

/// Which Firestore database, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirestoreConfig {
    /// `https://firestore.googleapis.com`, or `http://HOST:PORT` of an emulator.
    pub base_url: String,
    /// The Google Cloud project.
    pub project: String,
    /// The database id: `(default)`, or the team's own database.
    pub database: String,
    /// Credentials.
    pub auth: GoogleAuth,
}

impl FirestoreConfig {
    /// The real Firestore, authenticated through the metadata server.
    #[must_use]
    pub fn cloud(project: &str, database: &str) -> FirestoreConfig {
        FirestoreConfig {
            base_url: FIRESTORE_URL.to_owned(),
            project: project.to_owned(),
            database: database.to_owned(),
            auth: GoogleAuth::metadata_server(None),
        }
    }

    /// The emulator at `host` (`HOST:PORT`, as in `FIRESTORE_EMULATOR_HOST`), default database.
    #[must_use]
    pub fn emulator(host: &str, project: &str) -> FirestoreConfig {
        FirestoreConfig {
            base_url: format!("http://{}", host.trim_start_matches("http://")),
            project: project.to_owned(),
            database: "(default)".to_owned(),
            auth: GoogleAuth::Emulator,
        }
    }
}

/// Why a Firestore call failed, before it is mapped to a port's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The backend is unreachable, overloaded, refused us, or kept aborting the transaction.
    #[error("firestore unavailable: {0}")]
    Unavailable(String),
    /// A stored document cannot be decoded.
    #[error("{0}")]
    Corrupt(String),
    /// A document created with `exists: false` exists already (outside a transaction).
    #[error("document exists already: {0}")]
    Exists(String),
}

impl From<ApiError> for FsError {
    fn from(error: ApiError) -> Self {
        FsError::Unavailable(error.to_string())
    }
}

/// What one run of a transaction's reads decided.
pub(crate) enum Decision<T> {
    /// Write these and return `T` once they are committed.
    Commit(Vec<Value>, T),
    /// Write nothing and return `T`.
    Done(T),
}

/// A Firestore database's documents endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Firestore {
    api: Api,
    /// `projects/{p}/databases/{d}/documents`.
    root: String,
}

impl Firestore {
    pub(crate) fn new(config: &FirestoreConfig) -> Result<Firestore, FsError> {
        Ok(Firestore {
            api: Api::new(&config.base_url, &config.auth)?,
            root: format!("projects/{}/databases/{}/documents", config.project, config.database),
        })
    }

    /// The REST client, for calls this module does not wrap.
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// The full name of the document at `path` (`tasks/ID`, `tasks/ID/events/SEQ`).
    pub(crate) fn name(&self, path: &str) -> String {
        format!("{}/{path}", self.root)
    }

    /// Reads documents by full name, in order (`None` for a missing one).
    pub(crate) async fn get(&self, names: &[String]) -> Result<Vec<Option<Doc>>, FsError> {
        let body = json!({ "documents": names });
        let answer =
            self.api.json(Method::POST, &format!("v1/{}:batchGet", self.root), Some(&body)).await?;
        let mut found: Map<String, Value> = Map::new();
        for item in answer.as_array().into_iter().flatten() {
            if let Some(doc) = item.get("found") {
                let name = doc.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                found.insert(name, doc.clone());
            }
        }
        names.iter().map(|name| found.remove(name).map(Doc::from_json).transpose()).collect()
    }

    /// Runs a structured query under `parent` (a document path, or `""` for the root).
    pub(crate) async fn query(&self, parent: &str, query: Value) -> Result<Vec<Doc>, FsError> {
        let body = json!({ "structuredQuery": query });
        let path = if parent.is_empty() {
            format!("v1/{}:runQuery", self.root)
        } else {
            format!("v1/{}/{parent}:runQuery", self.root)
        };
        let answer = self.api.json(Method::POST, &path, Some(&body)).await?;
        answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("document"))
            .map(|doc| Doc::from_json(doc.clone()))
            .collect()
    }

    /// Commits `writes` atomically. A failed `exists: false` precondition is [`FsError::Exists`].
    pub(crate) async fn commit(&self, writes: Vec<Value>) -> Result<(), FsError> {
        match self.commit_raw(writes).await {
            Err(error)
                if matches!(error.status(), Some("ALREADY_EXISTS" | "FAILED_PRECONDITION")) =>
            {
                Err(FsError::Exists(error.to_string()))
            }
            other => other.map_err(FsError::from),
        }
    }

    async fn commit_raw(&self, writes: Vec<Value>) -> Result<(), ApiError> {
        let body = json!({ "writes": writes });
        self.api.json(Method::POST, &format!("v1/{}:commit", self.root), Some(&body)).await?;
        Ok(())
    }

    /// Runs `body` (its reads, then its decision) until its writes commit with their preconditions
    /// intact, at most [`MAX_TRANSACTION_RUNS`] times.
    pub(crate) async fn transaction<T, F, Fut>(&self, what: &str, mut body: F) -> Result<T, FsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Decision<T>, FsError>>,
    {
        let mut last = String::new();
        for run in 1..=MAX_TRANSACTION_RUNS {
            match body().await? {
                Decision::Done(value) => return Ok(value),
                Decision::Commit(writes, value) => match self.commit_raw(writes).await {
                    Ok(()) => return Ok(value),
                    Err(error) if is_lost_race(&error) => {
                        tracing::debug!(what, run, %error, "firestore commit lost a race; running it again");
                        last = error.to_string();
                        tokio::time::sleep(Duration::from_millis(2 << run.min(6))).await;
                    }
                    Err(error) => return Err(error.into()),
                },
            }
        }
        Err(FsError::Unavailable(format!(
            "{what} lost {MAX_TRANSACTION_RUNS} races in a row (last: {last}); try again"
        )))
    }
}

/// An abort, or a precondition that another writer broke first: the transaction may be run again.
fn is_lost_race(error: &ApiError) -> bool {
    matches!(error.status(), Some("ABORTED" | "ALREADY_EXISTS" | "FAILED_PRECONDITION"))
        || error.code() == Some(409)
}

/// A write that creates the document at `name` and fails if it exists.
pub(crate) fn create(name: String, fields: Fields) -> Value {
    json!({ "update": { "name": name, "fields": fields.into_json() }, "currentDocument": { "exists": false } })
}

/// A write that replaces the document at `name`, whether or not it exists.
pub(crate) fn put(name: String, fields: Fields) -> Value {
    json!({ "update": { "name": name, "fields": fields.into_json() } })
}

/// A write that sets only the given fields of the document at `name`, and only if it is still the
/// version read (`update_time`, as Firestore returned it).
pub(crate) fn patch_if_unchanged(name: String, fields: Fields, update_time: &str) -> Value {
    let mask: Vec<String> = fields.names();
    json!({
        "update": { "name": name, "fields": fields.into_json() },
        "updateMask": { "fieldPaths": mask },
        "currentDocument": { "updateTime": update_time },
    })
}

/// A query filter `field op value`.
pub(crate) fn filter(field: &str, op: &str, value: Value) -> Value {
    json!({ "fieldFilter": { "field": { "fieldPath": field }, "op": op, "value": value } })
}

/// Filters that must all hold; `None` for none.
pub(crate) fn all_of(filters: Vec<Value>) -> Option<Value> {
    match filters.len() {
        0 => None,
        1 => filters.into_iter().next(),
        _ => Some(json!({ "compositeFilter": { "op": "AND", "filters": filters } })),
    }
}
