//! [`DynamoDbUsageLedger`]: the `UsageLedger` port on the state table, so every Lambda instance checks a
//! task's budget against the same spend.
//!
//! One item per model call, `pk = usage#task#TASK` (`usage#task#-` for calls without a task) and
//! `sk = AT#UUID`, holding the row as JSON. A task's spend is one strongly consistent `Query` of its
//! partition, so a recorded row counts at once. Totals not limited to a task (the team's daily budget,
//! `cadre usage`) read the sparse index [`USAGE_BY_TIME`] (`usage_kind`, `at`) over the time range and
//! apply the other filters while adding up; index reads are eventually consistent on AWS, so a row can
//! take a moment (typically under a second) to count there.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use cadre_domain::ports::store::StoreError;
use cadre_domain::ports::usage::{
    utc_day, CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::TaskId;
use std::collections::BTreeMap;

use super::item::{Fields, ItemBuilder};
use super::{DynamoDbConfig, Table, PARTITION_KEY, USAGE_AT, USAGE_BY_TIME, USAGE_KIND};

/// The value of [`USAGE_KIND`] on usage items.
const KIND_VALUE: &str = "usage";

/// Model calls in the state table.
#[derive(Debug, Clone)]
pub struct DynamoDbUsageLedger {
    table: Table,
}

impl DynamoDbUsageLedger {
    /// A ledger in the table `config` names (made as `terraform/aws` makes it).
    pub async fn connect(config: &DynamoDbConfig) -> DynamoDbUsageLedger {
        DynamoDbUsageLedger { table: Table::connect(config).await }
    }

    async fn task_rows(&self, task: Option<&TaskId>) -> Result<Vec<UsageRecord>, UsageError> {
        let query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(partition(task)))
            .consistent_read(true);
        let items = self.table.query_all(query, usize::MAX).await.map_err(usage_error)?;
        items.iter().map(|found| decode(&Fields::new(found, "a usage item"))).collect()
    }

    async fn rows(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, UsageError> {
        if let Some(task) = &filter.task {
            return self.task_rows(Some(task)).await;
        }
        let (condition, from, to) = match (filter.since, filter.until) {
            (Some(since), Some(until)) => {
                ("#kind = :usage AND #at BETWEEN :from AND :to", since.0, until.0.saturating_sub(1))
            }
            (Some(since), None) => ("#kind = :usage AND #at >= :from", since.0, 0),
            (None, Some(until)) => ("#kind = :usage AND #at < :to", 0, until.0),
            (None, None) => ("#kind = :usage", 0, 0),
        };
        if filter.since.zip(filter.until).is_some_and(|(since, until)| since >= until) {
            return Ok(Vec::new());
        }
        let mut query = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .index_name(USAGE_BY_TIME)
            .key_condition_expression(condition)
            .expression_attribute_names("#kind", USAGE_KIND)
            .expression_attribute_values(":usage", AttributeValue::S(KIND_VALUE.to_owned()));
        if condition.contains("#at") {
            query = query.expression_attribute_names("#at", USAGE_AT);
        }
        if condition.contains(":from") {
            query = query.expression_attribute_values(":from", AttributeValue::N(from.to_string()));
        }
        if condition.contains(":to") {
            query = query.expression_attribute_values(":to", AttributeValue::N(to.to_string()));
        }
        let items = self.table.query_all(query, usize::MAX).await.map_err(usage_error)?;
        items.iter().map(|found| decode(&Fields::new(found, "a usage item"))).collect()
    }
}

fn partition(task: Option<&TaskId>) -> String {
    format!("usage#task#{}", task.map_or("-", TaskId::as_str))
}

fn decode(fields: &Fields<'_>) -> Result<UsageRecord, UsageError> {
    fields.json("row").map_err(usage_error)
}

fn usage_error(error: StoreError) -> UsageError {
    match error {
        StoreError::Corrupt(why) => UsageError::Corrupt(why),
        other => UsageError::Unavailable(other.to_string()),
    }
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
impl UsageLedger for DynamoDbUsageLedger {
    async fn record(&self, record: &UsageRecord) -> Result<(), UsageError> {
        let row = serde_json::to_string(record)
            .map_err(|e| UsageError::Corrupt(format!("a usage row cannot be encoded: {e}")))?;
        // A row is one call and is never rewritten: a fresh id keeps two calls of one instant apart.
        let sk = format!("{:020}#{}", record.at.0.max(0), uuid::Uuid::new_v4());
        let new = ItemBuilder::new(&partition(record.task.as_ref()), &sk)
            .s(USAGE_KIND, KIND_VALUE)
            .n(USAGE_AT, record.at.0)
            .s("row", &row)
            .build();
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(new))
            .send()
            .await
            .map_err(|e| {
                UsageError::Unavailable(format!(
                    "the usage row was not stored: {}",
                    self.table.unavailable("PutItem", &e)
                ))
            })?;
        Ok(())
    }

    async fn task_spend_micros(&self, task: &TaskId) -> Result<u64, UsageError> {
        Ok(self.task_rows(Some(task)).await?.iter().map(|r| r.cost_micros).sum())
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
