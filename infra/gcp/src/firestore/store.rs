//! [`FirestoreStore`]: the `StateStore` port on Firestore.
//!
//! Documents:
//! - `tasks/{task}`: `task` (the `Task` as JSON), `created_at`, and `last_seq` / `updated_at`, which
//!   every write to the task's log rewrites under an `updateTime` precondition: of two writers of one
//!   log, the second's commit fails and is run again from its reads.
//! - `tasks/{task}/events/{seq}`: `seq`, `at`, `event` (JSON); created with `exists: false`.
//! - `tasks/{task}/artifacts/{name}`: `bytes`, or, above the blob threshold, `object` (a content-addressed
//!   Cloud Storage object uploaded before the transaction) with `size` and `sha256`.
//! - `step_commits/{sha256(key)}`: `key`, `task_id`, `at`, `next` (the recorded envelopes as JSON),
//!   created with `exists: false` in the same atomic commit as the events it guards.
//!
//! A task's state is never stored: it is folded from the events read by the transaction that checks
//! it, as the SQLite store does.

use async_trait::async_trait;
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::{
    ArtifactName, Envelope, Event, EventRecord, IdempotencyKey, Task, TaskId, TaskState, Timestamp,
};
use serde_json::{json, Value};

use super::value::{int_value, reference};
use super::{
    create, filter, patch_if_unchanged, put, Decision, Doc, Fields, Firestore, FirestoreConfig,
    FsError,
};
use crate::storage::{sha256_hex, CloudStorage, StorageError};

/// Shortest prefix `resolve_prefix` accepts as naming one task (as the SQLite store).
const MIN_PREFIX: usize = 4;
/// Artifacts larger than this go to Cloud Storage when a bucket is configured: a Firestore document
/// holds at most 1 MiB, and the event and commit documents of the same transaction count too.
pub const DEFAULT_BLOB_THRESHOLD: usize = 256 * 1024;
/// How many matches `resolve_prefix` counts at most when a prefix is ambiguous.
const MAX_COUNTED: usize = 10_000;

/// Tasks, event logs, artifacts and step commits in a Firestore database.
#[derive(Debug, Clone)]
pub struct FirestoreStore {
    db: Firestore,
    blobs: Option<(CloudStorage, usize)>,
}

type Outcome<T> = Result<T, StoreError>;

impl FirestoreStore {
    /// A store in the database `config` names.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: &FirestoreConfig) -> Result<FirestoreStore, StoreError> {
        Ok(FirestoreStore { db: Firestore::new(config).map_err(store_error)?, blobs: None })
    }

    /// Keeps artifacts larger than `threshold` bytes in `storage` instead of in their document.
    #[must_use]
    pub fn with_blobs(mut self, storage: CloudStorage, threshold: usize) -> FirestoreStore {
        self.blobs = Some((storage, threshold));
        self
    }

    fn task_name(&self, id: &TaskId) -> String {
        self.db.name(&format!("tasks/{id}"))
    }

    fn event_name(&self, id: &TaskId, seq: u64) -> String {
        self.db.name(&format!("tasks/{id}/events/{seq:012}"))
    }

    fn artifact_name(&self, id: &TaskId, name: &ArtifactName) -> String {
        self.db.name(&format!("tasks/{id}/artifacts/{}", doc_id(name.as_str())))
    }

    fn commit_name(&self, key: &IdempotencyKey) -> String {
        self.db.name(&format!("step_commits/{}", sha256_hex(key.as_str().as_bytes())))
    }

    /// The task's events after `after`, in order.
    async fn load_log(&self, id: &TaskId, after: u64) -> Result<Vec<EventRecord>, FsError> {
        let mut query = json!({
            "from": [{ "collectionId": "events" }],
            "orderBy": [{ "field": { "fieldPath": "seq" }, "direction": "ASCENDING" }],
        });
        if after > 0 {
            query["where"] =
                filter("seq", "GREATER_THAN", int_value(i64::try_from(after).unwrap_or(i64::MAX)));
        }
        let docs = self.db.query(&format!("tasks/{id}"), query).await?;
        docs.iter().map(record).collect()
    }

    /// Writes that append `events` after `last_seq` and move the task document's counters on, if the
    /// task document is still the version `task_doc` read.
    fn append_writes(
        &self,
        task_doc: &Doc,
        id: &TaskId,
        last_seq: u64,
        events: &[Event],
        at: Timestamp,
    ) -> Vec<Value> {
        let mut writes = Vec::with_capacity(events.len() + 1);
        let mut seq = last_seq;
        for event in events {
            seq += 1;
            let fields = Fields::new()
                .uint("seq", seq)
                .int("at", at.0)
                .string("event", &serde_json::to_string(event).unwrap_or_default());
            writes.push(create(self.event_name(id, seq), fields));
        }
        writes.push(patch_if_unchanged(
            self.task_name(id),
            Fields::new().uint("last_seq", seq).int("updated_at", at.0),
            &task_doc.update_time,
        ));
        writes
    }

    async fn summary(&self, task: Task) -> Result<TaskSummary, FsError> {
        let log = self.load_log(&task.id, 0).await?;
        let state = TaskState::fold(&log);
        let updated_at = log.last().map_or(task.created_at, |r| r.at);
        Ok(TaskSummary { task, state, updated_at })
    }

    async fn exists(&self, id: &TaskId) -> Result<bool, FsError> {
        Ok(self.db.get(&[self.task_name(id)]).await?.into_iter().flatten().next().is_some())
    }

    /// Uploads the artifacts that are too large for a document, before the transaction that records
    /// them; returns each artifact's document fields.
    async fn artifact_fields(
        &self,
        id: &TaskId,
        artifacts: &[(ArtifactName, Vec<u8>)],
    ) -> Result<Vec<(ArtifactName, Fields)>, StoreError> {
        let mut out = Vec::with_capacity(artifacts.len());
        for (name, bytes) in artifacts {
            let fields =
                Fields::new().string("name", name.as_str()).uint("size", bytes.len() as u64);
            let fields = match &self.blobs {
                Some((storage, threshold)) if bytes.len() > *threshold => {
                    let object = CloudStorage::object_name(
                        &format!("tasks/{id}/artifacts/{}", doc_id(name.as_str())),
                        bytes,
                    );
                    storage.put(&object, bytes.clone()).await.map_err(blob_error)?;
                    fields.string("object", &object).string("sha256", &sha256_hex(bytes))
                }
                _ => fields.bytes("bytes", bytes),
            };
            out.push((name.clone(), fields));
        }
        Ok(out)
    }

    async fn commit_once(
        &self,
        commit: &StepCommit,
        artifacts: &[(ArtifactName, Fields)],
    ) -> Result<Decision<Outcome<CommitOutcome>>, FsError> {
        let id = &commit.task_id;
        let names = [self.task_name(id), self.commit_name(&commit.key)];
        let mut found = self.db.get(&names).await?.into_iter();
        let (task_doc, commit_doc) = (found.next().flatten(), found.next().flatten());
        let Some(task_doc) = task_doc else {
            return Ok(Decision::Done(Err(StoreError::TaskNotFound(id.clone()))));
        };
        if let Some(doc) = commit_doc {
            let next: Vec<Envelope> = doc.decode("next")?;
            tracing::debug!(task_id = %id, key = %commit.key, "step committed before; nothing written");
            return Ok(Decision::Done(Ok(CommitOutcome::AlreadyCommitted { next })));
        }
        let log = self.load_log(id, 0).await?;
        let state = TaskState::fold(&log);
        if state.is_terminal() {
            tracing::debug!(task_id = %id, key = %commit.key, state = state.name(), "task finished; nothing written");
            return Ok(Decision::Done(Ok(CommitOutcome::TaskFinished { state })));
        }
        let last_seq = log.last().map_or(0, |r| r.seq);
        let mut writes = self.append_writes(&task_doc, id, last_seq, &commit.events, commit.at);
        for (name, fields) in artifacts {
            writes.push(put(self.artifact_name(id, name), fields.clone()));
        }
        let next = serde_json::to_string(&commit.next).unwrap_or_default();
        writes.push(create(
            self.commit_name(&commit.key),
            Fields::new()
                .string("key", commit.key.as_str())
                .string("task_id", id.as_str())
                .int("at", commit.at.0)
                .string("next", &next),
        ));
        Ok(Decision::Commit(writes, Ok(CommitOutcome::Committed)))
    }
}

fn record(doc: &Doc) -> Result<EventRecord, FsError> {
    Ok(EventRecord {
        seq: doc.uint("seq")?,
        at: Timestamp(doc.int("at")?),
        event: doc.decode("event")?,
    })
}

/// An artifact name as a document id: `/` is not allowed in one, and `.`, `..` and `__x__` are reserved.
fn doc_id(name: &str) -> String {
    let escaped = name.replace('%', "%25").replace('/', "%2F");
    if escaped == "." || escaped == ".." || (escaped.starts_with("__") && escaped.ends_with("__")) {
        format!("%{escaped}")
    } else {
        escaped
    }
}

fn store_error(error: FsError) -> StoreError {
    match error {
        FsError::Corrupt(why) => StoreError::Corrupt(why),
        FsError::Unavailable(why) | FsError::Exists(why) => StoreError::Unavailable(why),
    }
}

fn blob_error(error: StorageError) -> StoreError {
    match error {
        StorageError::Unavailable(why) => StoreError::Unavailable(why),
        mismatch @ StorageError::Mismatch { .. } => StoreError::Corrupt(mismatch.to_string()),
    }
}

#[async_trait]
impl StateStore for FirestoreStore {
    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let json = serde_json::to_string(task)
            .map_err(|e| StoreError::Corrupt(format!("task {} cannot be encoded: {e}", task.id)))?;
        let created = Event::Created { task: task.clone() };
        let writes = vec![
            create(
                self.task_name(&task.id),
                Fields::new()
                    .string("task", &json)
                    .int("created_at", task.created_at.0)
                    .uint("last_seq", 1)
                    .int("updated_at", task.created_at.0),
            ),
            create(
                self.event_name(&task.id, 1),
                Fields::new()
                    .uint("seq", 1)
                    .int("at", task.created_at.0)
                    .string("event", &serde_json::to_string(&created).unwrap_or_default()),
            ),
        ];
        match self.db.commit(writes).await {
            Ok(()) => {
                tracing::debug!(task_id = %task.id, "created task");
                Ok(())
            }
            Err(FsError::Exists(_)) => Err(StoreError::TaskExists(task.id.clone())),
            Err(error) => Err(store_error(error)),
        }
    }

    async fn events(&self, task: &TaskId) -> Result<Vec<EventRecord>, StoreError> {
        self.events_after(task, 0).await
    }

    async fn events_after(
        &self,
        task: &TaskId,
        after_seq: u64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let log = self.load_log(task, after_seq).await.map_err(store_error)?;
        // Every task's log starts with `Created`, so an empty read is either "nothing new" or "no task".
        if log.is_empty() && !self.exists(task).await.map_err(store_error)? {
            return Err(StoreError::TaskNotFound(task.clone()));
        }
        Ok(log)
    }

    async fn append(
        &self,
        task: &TaskId,
        events: Vec<Event>,
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<(TaskState, bool), StoreError> {
        let events = &events;
        let outcome = self
            .db
            .transaction("append", || async move {
                let found = self.db.get(&[self.task_name(task)]).await?;
                let Some(task_doc) = found.into_iter().flatten().next() else {
                    return Ok(Decision::Done(Err(StoreError::TaskNotFound(task.clone()))));
                };
                let log = self.load_log(task, 0).await?;
                let state = TaskState::fold(&log);
                if let Some(allowed) = only_if {
                    if !allowed(state) {
                        tracing::debug!(task_id = %task, state = state.name(), "append refused by its condition");
                        return Ok(Decision::Done(Ok((state, false))));
                    }
                }
                let last_seq = log.last().map_or(0, |r| r.seq);
                let writes = self.append_writes(&task_doc, task, last_seq, events, at);
                let after = events.iter().fold(state, |s, e| s.apply(e));
                Ok(Decision::Commit(writes, Ok((after, true))))
            })
            .await
            .map_err(store_error)?;
        if let Ok((state, true)) = &outcome {
            tracing::debug!(task_id = %task, appended = events.len(), state = state.name(), "appended events");
        }
        outcome
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError> {
        let artifacts = self.artifact_fields(&commit.task_id, &commit.artifacts).await?;
        let (commit, artifacts) = (&commit, &artifacts);
        let outcome = self
            .db
            .transaction("commit_step", || self.commit_once(commit, artifacts))
            .await
            .map_err(store_error)?;
        if let Ok(CommitOutcome::Committed) = &outcome {
            tracing::debug!(task_id = %commit.task_id, key = %commit.key, events = commit.events.len(), artifacts = artifacts.len(), "step committed");
        }
        outcome
    }

    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError> {
        let found = self.db.get(&[self.commit_name(key)]).await.map_err(store_error)?;
        match found.into_iter().flatten().next() {
            Some(doc) => doc.decode("next").map(Some).map_err(store_error),
            None => Ok(None),
        }
    }

    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let names = [self.task_name(task), self.artifact_name(task, name)];
        let mut found = self.db.get(&names).await.map_err(store_error)?.into_iter();
        if found.next().flatten().is_none() {
            return Err(StoreError::TaskNotFound(task.clone()));
        }
        let Some(doc) = found.next().flatten() else {
            return Ok(None);
        };
        if !doc.has("object") {
            return doc.bytes("bytes").map(Some).map_err(store_error);
        }
        let object = doc.string("object").map_err(store_error)?;
        let Some((storage, _)) = &self.blobs else {
            return Err(StoreError::Corrupt(format!(
                "artifact {name} of task {task} is in Cloud Storage ({object}), but this store has no \
                 bucket configured; set CADRE_GCS_BUCKET"
            )));
        };
        match storage.get_checked(object).await.map_err(blob_error)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(StoreError::Corrupt(format!(
                "artifact {name} of task {task} points at the Cloud Storage object {object}, which is gone"
            ))),
        }
    }

    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError> {
        let found = self.db.get(&[self.task_name(task)]).await.map_err(store_error)?;
        let Some(doc) = found.into_iter().flatten().next() else {
            return Err(StoreError::TaskNotFound(task.clone()));
        };
        let task: Task = doc.decode("task").map_err(store_error)?;
        self.summary(task).await.map_err(store_error)
    }

    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = json!({
            "from": [{ "collectionId": "tasks" }],
            "orderBy": [
                { "field": { "fieldPath": "created_at" }, "direction": "DESCENDING" },
                { "field": { "fieldPath": "__name__" }, "direction": "DESCENDING" },
            ],
            "limit": i32::try_from(limit).unwrap_or(i32::MAX),
        });
        let docs = self.db.query("", query).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            let task: Task = doc.decode("task").map_err(store_error)?;
            out.push(self.summary(task).await.map_err(store_error)?);
        }
        Ok(out)
    }

    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError> {
        let wanted = prefix.trim().to_ascii_lowercase();
        if let Ok(id) = TaskId::parse(&wanted) {
            return if self.exists(&id).await.map_err(store_error)? {
                Ok(id)
            } else {
                Err(StoreError::TaskNotFound(id))
            };
        }
        // Task ids are hex and dashes; any other text names no task (and must not reach a path).
        if !wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::AmbiguousPrefix { prefix: prefix.to_owned(), matches: 0 });
        }
        let query = json!({
            "from": [{ "collectionId": "tasks" }],
            "select": { "fields": [{ "fieldPath": "__name__" }] },
            "where": { "compositeFilter": { "op": "AND", "filters": [
                filter("__name__", "GREATER_THAN_OR_EQUAL", reference(&self.db.name(&format!("tasks/{wanted}")))),
                // `~` sorts after every hex digit and `-`.
                filter("__name__", "LESS_THAN", reference(&self.db.name(&format!("tasks/{wanted}~")))),
            ] } },
            "orderBy": [{ "field": { "fieldPath": "__name__" }, "direction": "ASCENDING" }],
            "limit": MAX_COUNTED,
        });
        let docs = self.db.query("", query).await.map_err(store_error)?;
        match docs.as_slice() {
            [only] if wanted.chars().count() >= MIN_PREFIX => {
                TaskId::parse(only.id()).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "the task document `{}` has an invalid id: {e}",
                        only.name
                    ))
                })
            }
            _ => {
                Err(StoreError::AmbiguousPrefix { prefix: prefix.to_owned(), matches: docs.len() })
            }
        }
    }
}
