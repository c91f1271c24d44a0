//! [`FirestoreUsageLedger`]: the `UsageLedger` port on Firestore, one document per model call in
//! `usage_calls`, so every Cloud Run instance checks a task's budget against the same spend.
//!
//! Queries filter on one field server-side (the task, else the time range) and apply the other filters
//! while adding up: Firestore's automatic single-field indexes then serve every query, and no composite
//! index has to be declared per filter combination.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cadre_domain::ports::model::TokenUsage;
use cadre_domain::ports::usage::{
    utc_day, CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::{TaskId, Timestamp};
use reqwest::Method;
use serde_json::json;

use super::value::{int_value, string_value};
use super::{all_of, filter, Doc, Fields, Firestore, FirestoreConfig, FsError};

const COLLECTION: &str = "usage_calls";

/// Model calls in a Firestore database.
#[derive(Debug, Clone)]
pub struct FirestoreUsageLedger {
    db: Firestore,
}

impl FirestoreUsageLedger {
    /// A ledger in the database `config` names.
    ///
    /// # Errors
    /// [`UsageError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: &FirestoreConfig) -> Result<FirestoreUsageLedger, UsageError> {
        Ok(FirestoreUsageLedger { db: Firestore::new(config).map_err(usage_error)? })
    }

    /// The rows matching the server-side part of `filter`.
    async fn rows(&self, filter_by: &UsageFilter) -> Result<Vec<UsageRecord>, UsageError> {
        let mut filters = Vec::new();
        if let Some(task) = &filter_by.task {
            filters.push(filter("task", "EQUAL", string_value(task.as_str())));
        } else {
            if let Some(since) = filter_by.since {
                filters.push(filter("at", "GREATER_THAN_OR_EQUAL", int_value(since.0)));
            }
            if let Some(until) = filter_by.until {
                filters.push(filter("at", "LESS_THAN", int_value(until.0)));
            }
        }
        let mut query = json!({ "from": [{ "collectionId": COLLECTION }] });
        if let Some(condition) = all_of(filters) {
            query["where"] = condition;
        }
        let docs = self.db.query("", query).await.map_err(usage_error)?;
        docs.iter().map(|doc| decode(doc).map_err(usage_error)).collect()
    }
}

fn usage_error(error: FsError) -> UsageError {
    match error {
        FsError::Corrupt(why) => UsageError::Corrupt(why),
        FsError::Unavailable(why) | FsError::Exists(why) => UsageError::Unavailable(why),
    }
}

fn encode(record: &UsageRecord) -> Fields {
    Fields::new()
        .int("at", record.at.0)
        .string("model", &record.model)
        .opt_string("task", record.task.as_ref().map(TaskId::as_str))
        .string("step", &record.step)
        .opt_string("template", record.template.as_deref())
        .uint("input_tokens", record.tokens.input)
        .uint("output_tokens", record.tokens.output)
        .uint("cached_tokens", record.tokens.cached)
        .uint("thinking_tokens", record.tokens.thinking)
        .uint("latency_ms", record.latency_ms)
        .uint("cost_micros", record.cost_micros)
        .bool("cache_hit", record.cache_hit)
        .string("outcome", record.outcome.label())
        .uint("attempts", u64::from(record.attempts))
        .opt_string("team", record.team.as_deref())
}

fn decode(doc: &Doc) -> Result<UsageRecord, FsError> {
    let task = doc
        .opt_string("task")
        .map(|id| {
            TaskId::parse(id).map_err(|e| FsError::Corrupt(format!("document {}: {e}", doc.name)))
        })
        .transpose()?;
    Ok(UsageRecord {
        at: Timestamp(doc.int("at")?),
        model: doc.string("model")?.to_owned(),
        task,
        step: doc.string("step")?.to_owned(),
        template: doc.opt_string("template").map(str::to_owned),
        tokens: TokenUsage {
            input: doc.uint("input_tokens")?,
            output: doc.uint("output_tokens")?,
            cached: doc.uint("cached_tokens")?,
            thinking: doc.uint("thinking_tokens")?,
        },
        latency_ms: doc.uint("latency_ms")?,
        cost_micros: doc.uint("cost_micros")?,
        cache_hit: doc.bool("cache_hit")?,
        outcome: CallOutcome::from_label(doc.string("outcome")?),
        attempts: u32::try_from(doc.uint("attempts")?).unwrap_or(u32::MAX),
        team: doc.opt_string("team").map(str::to_owned),
    })
}

fn matches(record: &UsageRecord, filter: &UsageFilter) -> bool {
    filter.task.as_ref().is_none_or(|t| record.task.as_ref() == Some(t))
        && filter.step.as_ref().is_none_or(|s| &record.step == s)
        && filter.model.as_ref().is_none_or(|m| &record.model == m)
        && filter.since.is_none_or(|since| record.at >= since)
        && filter.until.is_none_or(|until| record.at < until)
        && filter.team.as_ref().is_none_or(|t| record.team.as_ref() == Some(t))
}

fn group_key(record: &UsageRecord, group: UsageGroup) -> Option<String> {
    match group {
        UsageGroup::Task => record.task.as_ref().map(|t| t.as_str().to_owned()),
        UsageGroup::Step => Some(record.step.clone()),
        UsageGroup::Day => Some(utc_day(record.at)),
        UsageGroup::Model => Some(record.model.clone()),
        UsageGroup::Team => record.team.clone(),
    }
}

#[async_trait]
impl UsageLedger for FirestoreUsageLedger {
    async fn record(&self, record: &UsageRecord) -> Result<(), UsageError> {
        // Firestore picks the document id; a row is one call and is never rewritten.
        let body = json!({ "fields": encode(record).into_json() });
        let path = format!("v1/{}", self.db.name(COLLECTION));
        self.db
            .api()
            .json(Method::POST, &path, Some(&body))
            .await
            .map_err(|e| UsageError::Unavailable(format!("the usage row was not stored: {e}")))?;
        Ok(())
    }

    async fn task_spend_micros(&self, task: &TaskId) -> Result<u64, UsageError> {
        let only_task = UsageFilter { task: Some(task.clone()), ..UsageFilter::default() };
        Ok(self.rows(&only_task).await?.iter().map(|r| r.cost_micros).sum())
    }

    async fn totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotal>, UsageError> {
        let mut groups: BTreeMap<Option<String>, UsageTotal> = BTreeMap::new();
        for record in self.rows(filter).await?.iter().filter(|r| matches(r, filter)) {
            let key = group_key(record, group);
            let total = groups
                .entry(key.clone())
                .or_insert_with(|| UsageTotal { key, ..UsageTotal::default() });
            total.calls += 1;
            total.failed += u64::from(record.outcome != CallOutcome::Ok);
            total.cache_hits += u64::from(record.cache_hit);
            total.tokens = total.tokens.plus(record.tokens);
            total.cost_micros += record.cost_micros;
            total.latency_ms += record.latency_ms;
        }
        // A BTreeMap orders `None` first, then keys as text: the order the port documents.
        Ok(groups.into_values().collect())
    }
}
