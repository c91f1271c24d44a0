//! [`DynamoDbStore`]: the `StateStore` port on one DynamoDB table (layout in the module above).
//!
//! Every state change is one `TransactWriteItems` whose conditions fail if what it was decided from
//! changed: the task item's `last_seq` must still be the value read (so two writers of one log cannot
//! both append), new events and the commit record must not exist yet (`attribute_not_exists`). Of two
//! deliveries of one message, the second's transaction is cancelled, it reads again, finds the commit
//! record and answers `AlreadyCommitted`. A task's state is never stored: it is folded from its events,
//! read with strongly consistent reads, as the SQLite and Firestore stores do.
//!
//! Artifacts: up to [`INLINE_BYTES`] in their item; larger ones are split into chunk items of that size
//! written in the same transaction (DynamoDB's items hold at most 400 KB), with the count and SHA-256 in
//! the artifact item, checked on read. A commit whose items pass DynamoDB's 4 MB transaction limit is
//! refused with an error saying so. S3 is not used.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, Put, TransactWriteItem, Update};
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::{
    ArtifactName, Envelope, Event, EventRecord, IdempotencyKey, Task, TaskId, TaskState, Timestamp,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

use super::item::{self, Fields, Item, ItemBuilder};
use super::{
    DynamoDbConfig, Table, Written, CREATED_AT, INDEX_BY_CREATED, INDEX_BY_ID, KIND,
    MAX_ITEM_BYTES, PARTITION_KEY, SORT_KEY, TASK_ID,
};

/// Artifacts up to this size stay in their own item; larger ones are cut into chunks of this size.
/// Leaves room under DynamoDB's 400 KB for the key and the other attributes.
pub const INLINE_BYTES: usize = 350 * 1024;
/// Shortest prefix `resolve_prefix` accepts as naming one task (as the other stores).
const MIN_PREFIX: usize = 4;
/// How many matches `resolve_prefix` counts at most when a prefix is ambiguous.
const MAX_COUNTED: usize = 10_000;
/// How often a transaction cancelled by a concurrent writer is decided again before giving up.
const TRIES: u32 = 8;
/// The value of [`KIND`] on task items.
const TASK_KIND: &str = "task";
/// Artifact names longer than this are keyed by their hash (a sort key holds at most 1024 bytes).
const MAX_KEYED_NAME: usize = 512;

/// Tasks, event logs, artifacts and step commits in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    table: Table,
}

/// A task item as read: the version a transaction conditions on.
struct TaskItem {
    task: Task,
    last_seq: u64,
}

impl DynamoDbStore {
    /// A store on the table `config` names, checked to exist with the key schema this store writes.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the table cannot be described (absent, no permission, no
    /// network) or its keys are not `pk` and `sk`.
    pub async fn connect(config: &DynamoDbConfig) -> Result<DynamoDbStore, StoreError> {
        let table = Table::connect(config).await;
        let described = table
            .client
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| table.unavailable("DescribeTable", &e))?;
        let keys: BTreeMap<String, String> = described
            .table()
            .map(|t| t.key_schema())
            .unwrap_or_default()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect();
        let want = BTreeMap::from([
            (PARTITION_KEY.to_owned(), KeyType::Hash.as_str().to_owned()),
            (SORT_KEY.to_owned(), KeyType::Range.as_str().to_owned()),
        ]);
        if keys != want {
            return Err(StoreError::Unavailable(format!(
                "dynamodb table {} has the keys {keys:?}, not {want:?}; give Cadre a table made as terraform/aws makes it",
                table.name
            )));
        }
        tracing::debug!(table = %table.name, "dynamodb state table connected");
        Ok(DynamoDbStore { table })
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table.name
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(item::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.table.unavailable("GetItem", &e))?;
        Ok(out.item().cloned())
    }

    async fn task_item(&self, id: &TaskId) -> Result<Option<TaskItem>, StoreError> {
        let Some(found) = self.get(&task_pk(id), TASK_SK).await? else {
            return Ok(None);
        };
        let what = format!("the task item of {id}");
        let fields = Fields::new(&found, &what);
        Ok(Some(TaskItem { task: fields.json("task")?, last_seq: fields.u64("last_seq")? }))
    }

    /// The task's events after `after`, in order.
    async fn load_log(&self, id: &TaskId, after: u64) -> Result<Vec<EventRecord>, StoreError> {
        let query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#sk", SORT_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(task_pk(id)))
            .expression_attribute_values(
                ":from",
                AttributeValue::S(event_sk(after.saturating_add(1))),
            )
            .expression_attribute_values(":to", AttributeValue::S(event_sk(u64::MAX)))
            .consistent_read(true);
        let items = self.table.query_all(query, usize::MAX).await?;
        items
            .iter()
            .map(|found| {
                let what = format!("an event item of {id}");
                let fields = Fields::new(found, &what);
                Ok(EventRecord {
                    seq: fields.u64("seq")?,
                    at: Timestamp(fields.i64("at")?),
                    event: fields.json("event")?,
                })
            })
            .collect()
    }

    async fn summary(&self, task: Task) -> Result<TaskSummary, StoreError> {
        let log = self.load_log(&task.id, 0).await?;
        let state = TaskState::fold(&log);
        let updated_at = log.last().map_or(task.created_at, |r| r.at);
        Ok(TaskSummary { task, state, updated_at })
    }

    /// The writes that append `events` after `read.last_seq` and move the task item's counters on,
    /// if it is still at `read.last_seq`; with their size in bytes.
    fn append_writes(
        &self,
        id: &TaskId,
        read: &TaskItem,
        events: &[Event],
        at: Timestamp,
    ) -> Result<(Vec<TransactWriteItem>, usize), StoreError> {
        let mut writes = Vec::with_capacity(events.len() + 1);
        let mut bytes = 0;
        let mut seq = read.last_seq;
        for event in events {
            seq += 1;
            let json = serde_json::to_string(event).map_err(|e| {
                StoreError::Corrupt(format!("an event of task {id} cannot be encoded: {e}"))
            })?;
            let event_item = ItemBuilder::new(&task_pk(id), &event_sk(seq))
                .n("seq", seq)
                .n("at", at.0)
                .s("event", &json)
                .build();
            bytes += self.checked_size(&event_item, || format!("event {seq} of task {id}"))?;
            writes.push(self.put_new(event_item)?);
        }
        let update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(item::key(&task_pk(id), TASK_SK)))
            .update_expression("SET last_seq = :new, updated_at = :at")
            .condition_expression("last_seq = :read")
            .expression_attribute_values(":new", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":at", AttributeValue::N(at.0.to_string()))
            .expression_attribute_values(":read", AttributeValue::N(read.last_seq.to_string()))
            .build()
            .map_err(build_error)?;
        writes.push(TransactWriteItem::builder().update(update).build());
        Ok((writes, bytes + 64))
    }

    /// The writes that store `artifacts` (the last of several with one name wins), with their size.
    fn artifact_writes(
        &self,
        id: &TaskId,
        artifacts: &[(ArtifactName, Vec<u8>)],
    ) -> Result<(Vec<TransactWriteItem>, usize), StoreError> {
        let mut named: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (name, bytes) in artifacts {
            named.insert(name.as_str(), bytes);
        }
        let mut writes = Vec::new();
        let mut total = 0;
        for (name, bytes) in named {
            let head = ItemBuilder::new(&task_pk(id), &artifact_sk(name))
                .s("name", name)
                .n("size", bytes.len());
            let head = if bytes.len() <= INLINE_BYTES {
                head.b("bytes", bytes).build()
            } else {
                let chunks = bytes.chunks(INLINE_BYTES);
                let count = chunks.len();
                for (i, chunk) in chunks.enumerate() {
                    let chunk_item = ItemBuilder::new(&task_pk(id), &chunk_sk(name, i))
                        .b("bytes", chunk)
                        .build();
                    total +=
                        self.checked_size(&chunk_item, || format!("a chunk of artifact {name}"))?;
                    writes.push(self.put(chunk_item, None)?);
                }
                head.n("chunks", count).s("sha256", &hex(&Sha256::digest(bytes))).build()
            };
            total += self.checked_size(&head, || format!("artifact {name} of task {id}"))?;
            writes.push(self.put(head, None)?);
        }
        Ok((writes, total))
    }

    fn checked_size(&self, found: &Item, what: impl Fn() -> String) -> Result<usize, StoreError> {
        let size = item::size(found);
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::Corrupt(format!(
                "{} is {size} bytes as a DynamoDB item, over its limit of {MAX_ITEM_BYTES}; it cannot be stored on AWS yet",
                what()
            )));
        }
        Ok(size)
    }

    fn put(&self, new: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table.name)
            .set_item(Some(new))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A put that fails its transaction when the item exists.
    fn put_new(&self, new: Item) -> Result<TransactWriteItem, StoreError> {
        self.put(new, Some("attribute_not_exists(pk)"))
    }

    /// One try at a commit: read, decide, write conditionally. `None` when a concurrent writer
    /// cancelled the write, so the caller decides again from fresh reads.
    async fn commit_once(&self, commit: &StepCommit) -> Result<Option<CommitOutcome>, StoreError> {
        let id = &commit.task_id;
        let (read, recorded) = tokio::join!(self.task_item(id), self.committed_next(&commit.key));
        let Some(read) = read? else {
            return Err(StoreError::TaskNotFound(id.clone()));
        };
        if let Some(next) = recorded? {
            tracing::debug!(task_id = %id, key = %commit.key, "step committed before; nothing written");
            return Ok(Some(CommitOutcome::AlreadyCommitted { next }));
        }
        let log = self.load_log(id, 0).await?;
        let state = TaskState::fold(&log);
        if state.is_terminal() {
            tracing::debug!(task_id = %id, key = %commit.key, state = state.name(), "task finished; nothing written");
            return Ok(Some(CommitOutcome::TaskFinished { state }));
        }
        let (mut writes, mut bytes) = self.append_writes(id, &read, &commit.events, commit.at)?;
        let (artifacts, artifact_bytes) = self.artifact_writes(id, &commit.artifacts)?;
        writes.extend(artifacts);
        bytes += artifact_bytes;
        let next = serde_json::to_string(&commit.next).map_err(|e| {
            StoreError::Corrupt(format!(
                "the next messages of {} cannot be encoded: {e}",
                commit.key
            ))
        })?;
        let record = ItemBuilder::new(&commit_pk(&commit.key), COMMIT_SK)
            .s("key", commit.key.as_str())
            .s(TASK_ID, id.as_str())
            .n("at", commit.at.0)
            .s("next", &next)
            .build();
        bytes += self.checked_size(&record, || format!("the commit record of {}", commit.key))?;
        writes.push(self.put_new(record)?);
        match self.table.transact("a step commit", writes, bytes).await? {
            Written::Done => Ok(Some(CommitOutcome::Committed)),
            Written::Cancelled(codes) if Written::is_contention(&codes) => {
                tracing::debug!(task_id = %id, key = %commit.key, ?codes, "commit raced another writer; deciding again");
                Ok(None)
            }
            Written::Cancelled(codes) => Err(cancelled(&self.table.name, "a step commit", &codes)),
        }
    }

    async fn append_once(
        &self,
        id: &TaskId,
        events: &[Event],
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<Option<(TaskState, bool)>, StoreError> {
        let Some(read) = self.task_item(id).await? else {
            return Err(StoreError::TaskNotFound(id.clone()));
        };
        let log = self.load_log(id, 0).await?;
        let state = TaskState::fold(&log);
        if let Some(allowed) = only_if {
            if !allowed(state) {
                tracing::debug!(task_id = %id, state = state.name(), "append refused by its condition");
                return Ok(Some((state, false)));
            }
        }
        let (writes, bytes) = self.append_writes(id, &read, events, at)?;
        match self.table.transact("an append", writes, bytes).await? {
            Written::Done => Ok(Some((events.iter().fold(state, |s, e| s.apply(e)), true))),
            Written::Cancelled(codes) if Written::is_contention(&codes) => Ok(None),
            Written::Cancelled(codes) => Err(cancelled(&self.table.name, "an append", &codes)),
        }
    }

    async fn inline_or_chunks(
        &self,
        id: &TaskId,
        name: &ArtifactName,
        head: &Item,
    ) -> Result<Vec<u8>, StoreError> {
        let what = format!("artifact {name} of task {id}");
        let fields = Fields::new(head, &what);
        if !fields.has("chunks") {
            return Ok(fields.b("bytes")?.to_vec());
        }
        let count = usize::try_from(fields.u64("chunks")?).unwrap_or(usize::MAX);
        let query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#sk", SORT_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(task_pk(id)))
            .expression_attribute_values(":from", AttributeValue::S(chunk_sk(name.as_str(), 0)))
            .expression_attribute_values(
                ":to",
                AttributeValue::S(chunk_sk(name.as_str(), count.saturating_sub(1))),
            )
            .consistent_read(true);
        let chunks = self.table.query_all(query, count).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(fields.u64("size")?).unwrap_or(0));
        for chunk in &chunks {
            bytes.extend_from_slice(Fields::new(chunk, &what).b("bytes")?);
        }
        let sha = fields.s("sha256")?;
        if chunks.len() != count || hex(&Sha256::digest(&bytes)) != sha {
            return Err(StoreError::Corrupt(format!(
                "{what} should be {count} chunks with SHA-256 {sha}, but {} chunks of {} bytes were read",
                chunks.len(),
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

/// The sort key of a task item.
const TASK_SK: &str = "task";
/// The sort key of a commit record.
const COMMIT_SK: &str = "commit";

fn task_pk(id: &TaskId) -> String {
    format!("task#{id}")
}

fn event_sk(seq: u64) -> String {
    format!("event#{seq:020}")
}

fn artifact_sk(name: &str) -> String {
    format!("artifact#{}", keyed_name(name))
}

fn chunk_sk(name: &str, index: usize) -> String {
    format!("chunk#{}#{index:05}", keyed_name(name))
}

/// The name as it appears in a sort key: itself, or its hash when too long for one.
fn keyed_name(name: &str) -> String {
    if name.len() <= MAX_KEYED_NAME {
        name.to_owned()
    } else {
        format!("sha256:{}", hex(&Sha256::digest(name.as_bytes())))
    }
}

fn commit_pk(key: &IdempotencyKey) -> String {
    format!("commit#{}", hex(&Sha256::digest(key.as_str().as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("cannot build a dynamodb request: {error}"))
}

fn cancelled(table: &str, what: &str, codes: &[String]) -> StoreError {
    StoreError::Unavailable(format!(
        "dynamodb table {table}: {what} was cancelled ({}); try again later",
        codes.join(", ")
    ))
}

fn contended(table: &str, what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "dynamodb table {table}: {what} lost to concurrent writers {TRIES} times in a row; try again later"
    ))
}

/// A short, growing pause between tries of a contended transaction, so racing writers spread out.
async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt + 1))).await;
}

#[async_trait]
impl StateStore for DynamoDbStore {
    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let id = &task.id;
        let json = serde_json::to_string(task)
            .map_err(|e| StoreError::Corrupt(format!("task {id} cannot be encoded: {e}")))?;
        let created = serde_json::to_string(&Event::Created { task: task.clone() })
            .map_err(|e| StoreError::Corrupt(format!("task {id} cannot be encoded: {e}")))?;
        let task_item = ItemBuilder::new(&task_pk(id), TASK_SK)
            .s(KIND, TASK_KIND)
            .s(TASK_ID, id.as_str())
            .n(CREATED_AT, task.created_at.0)
            .s("task", &json)
            .n("last_seq", 1)
            .n("updated_at", task.created_at.0)
            .build();
        let first = ItemBuilder::new(&task_pk(id), &event_sk(1))
            .n("seq", 1)
            .n("at", task.created_at.0)
            .s("event", &created)
            .build();
        let bytes = self.checked_size(&task_item, || format!("task {id}"))?
            + self.checked_size(&first, || format!("the first event of task {id}"))?;
        let writes = vec![self.put_new(task_item)?, self.put_new(first)?];
        match self.table.transact("a task's creation", writes, bytes).await? {
            Written::Done => {
                tracing::debug!(task_id = %id, "created task");
                Ok(())
            }
            Written::Cancelled(codes)
                if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") =>
            {
                Err(StoreError::TaskExists(id.clone()))
            }
            Written::Cancelled(codes) => {
                Err(cancelled(&self.table.name, "a task's creation", &codes))
            }
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
        let log = self.load_log(task, after_seq).await?;
        // Every log starts with `Created`, so an empty read is either "nothing new" or "no task".
        if log.is_empty() && self.get(&task_pk(task), TASK_SK).await?.is_none() {
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
        for attempt in 0..TRIES {
            if let Some(outcome) = self.append_once(task, &events, at, only_if).await? {
                if outcome.1 {
                    tracing::debug!(task_id = %task, appended = events.len(), state = outcome.0.name(), "appended events");
                }
                return Ok(outcome);
            }
            pause(attempt).await;
        }
        Err(contended(&self.table.name, "an append"))
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError> {
        for attempt in 0..TRIES {
            if let Some(outcome) = self.commit_once(&commit).await? {
                if outcome == CommitOutcome::Committed {
                    tracing::debug!(task_id = %commit.task_id, key = %commit.key, events = commit.events.len(), artifacts = commit.artifacts.len(), "step committed");
                }
                return Ok(outcome);
            }
            pause(attempt).await;
        }
        Err(contended(&self.table.name, "a step commit"))
    }

    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError> {
        match self.get(&commit_pk(key), COMMIT_SK).await? {
            Some(found) => {
                let what = format!("the commit record of {key}");
                Fields::new(&found, &what).json("next").map(Some)
            }
            None => Ok(None),
        }
    }

    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (pk, sk) = (task_pk(task), artifact_sk(name.as_str()));
        let (task_item, head) = tokio::join!(self.get(&pk, TASK_SK), self.get(&pk, &sk));
        if task_item?.is_none() {
            return Err(StoreError::TaskNotFound(task.clone()));
        }
        match head? {
            Some(head) => self.inline_or_chunks(task, name, &head).await.map(Some),
            None => Ok(None),
        }
    }

    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError> {
        let Some(read) = self.task_item(task).await? else {
            return Err(StoreError::TaskNotFound(task.clone()));
        };
        self.summary(read.task).await
    }

    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .index_name(INDEX_BY_CREATED)
            .key_condition_expression("#kind = :task")
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_values(":task", AttributeValue::S(TASK_KIND.to_owned()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        let items = self.table.query_all(query, limit).await?;
        let mut out = Vec::with_capacity(items.len());
        for found in &items {
            let task: Task =
                Fields::new(found, "a task item of the by_created index").json("task")?;
            out.push(self.summary(task).await?);
        }
        Ok(out)
    }

    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError> {
        let wanted = prefix.trim().to_ascii_lowercase();
        if let Ok(id) = TaskId::parse(&wanted) {
            return match self.get(&task_pk(&id), TASK_SK).await? {
                Some(_) => Ok(id),
                None => Err(StoreError::TaskNotFound(id)),
            };
        }
        // Task ids are hex and dashes; any other text names no task.
        if wanted.is_empty() || !wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::AmbiguousPrefix { prefix: prefix.to_owned(), matches: 0 });
        }
        let query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .index_name(INDEX_BY_ID)
            .key_condition_expression("#kind = :task AND begins_with(#id, :prefix)")
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_names("#id", TASK_ID)
            .expression_attribute_values(":task", AttributeValue::S(TASK_KIND.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(wanted.clone()))
            .projection_expression("#id");
        let found = self.table.query_all(query, MAX_COUNTED).await?;
        match found.as_slice() {
            [only] if wanted.chars().count() >= MIN_PREFIX => {
                let text = Fields::new(only, "a task item of the by_id index").s(TASK_ID)?;
                TaskId::parse(text).map_err(|e| {
                    StoreError::Corrupt(format!("a task item has the invalid id {text:?}: {e}"))
                })
            }
            _ => {
                Err(StoreError::AmbiguousPrefix { prefix: prefix.to_owned(), matches: found.len() })
            }
        }
    }
}
