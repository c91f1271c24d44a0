//! The Gemini Batch API, for bulk work that can wait (indexing summaries, re-reviews of many files): many
//! [`ModelRequest`]s go out as one `:batchGenerateContent` job at the batch price, about half the
//! interactive one, and come back within hours.
//!
//! [`GeminiBatch::submit`] sends the requests inline, each tagged with its caller-chosen key in
//! `metadata.key`, and returns a [`BatchJob`]. [`BatchJob::wait`] polls the job's long-running operation
//! (`GET /v1beta/batches/{id}`) with doubling delays until it is done, failed, expired or cancelled, and
//! maps every inlined response back to its request by key (by position when the provider drops the
//! keys), in the order submitted. Each request's outcome is the port's: a reply, or the [`ModelError`]
//! its response or per-request error maps to, exactly as for an interactive call.
//!
//! Accounting: one [`UsageRecord`] per request whatever happens (success, per-request error, failed,
//! expired or cancelled job, a submit that never went through), with the tokens of its
//! `usageMetadata` priced at the batch price: the price table's price less
//! [`GeminiBatchConfig::discount_percent`], because `prices.json` has no batch column yet.
//!
//! A job that is abandoned (its [`BatchJob`] dropped before it finished, or [`BatchJob::cancel`]) is
//! cancelled at the provider (`POST /v1beta/batches/{id}:cancel`) so it stops costing, and its rows say
//! `cancelled`. A job still running at [`GeminiBatchConfig::max_wait`] is cancelled the same way.
//!
//! ```ignore
//! let batch = GeminiBatch::new(GeminiBatchConfig::new(api_key), ledger, clock)?;
//! let items = chunks.iter().map(|c| BatchItem::new(c.id.clone(), summary_request(c))).collect();
//! for result in batch.run(items).await? {
//!     store(result.key, result.result?);
//! }
//! ```

mod client;
mod job;
mod operation;
mod wire;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::model::{ModelError, ModelReply, ModelRequest, TokenUsage};
use cadre_domain::ports::usage::{CallOutcome, UsageLedger, UsageRecord};
use cadre_domain::{TaskId, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::api_key::ApiKey;
use crate::gateway::{is_retried, ModelPrice, PriceTable, RetryPolicy, TierPrice};
use crate::gemini::{DEFAULT_GEMINI_BASE_URL, DEFAULT_GEMINI_MODEL};
use crate::http::{self, DEFAULT_TIMEOUT};
use client::Http;
pub use job::BatchJob;
use operation::Operation;

/// Where and how to run batch jobs.
#[derive(Debug, Clone)]
pub struct GeminiBatchConfig {
    /// Scheme and host, without a path.
    pub base_url: String,
    /// The model id, e.g. `gemini-3-flash-preview`; also the price table key.
    pub model: String,
    /// Sent in the `x-goog-api-key` header.
    pub api_key: ApiKey,
    /// One HTTP call's timeout (submit, poll, cancel); a large inline submit takes a while to upload.
    pub timeout: Duration,
    /// The job's `displayName`.
    pub display_name: String,
    /// Retries of a submit answered 429 or 5xx (never of one that got no answer: it may have
    /// created the job).
    pub submit_retry: RetryPolicy,
    /// The wait before the first poll; each later wait doubles, up to `poll_max`.
    pub poll_first: Duration,
    /// The longest wait between polls.
    pub poll_max: Duration,
    /// Polls in a row that may fail with a retryable error before [`BatchError::Poll`].
    pub poll_failures: u32,
    /// How long [`BatchJob::wait`] waits before cancelling the job ([`BatchError::TimedOut`]).
    pub max_wait: Duration,
    /// How much cheaper batch tokens are than interactive ones, in percent of the table price.
    pub discount_percent: u64,
    /// Interactive token prices; batch rows are priced at these less the discount.
    pub prices: PriceTable,
}

impl GeminiBatchConfig {
    /// The public endpoint, the default model, polls from 10 s to 2 min, a 48 h wait (the Batch API's
    /// own expiry), 50% off the built-in prices.
    #[must_use]
    pub fn new(api_key: ApiKey) -> GeminiBatchConfig {
        GeminiBatchConfig {
            base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            model: DEFAULT_GEMINI_MODEL.to_owned(),
            api_key,
            timeout: DEFAULT_TIMEOUT,
            display_name: "cadre".to_owned(),
            submit_retry: RetryPolicy::default(),
            poll_first: Duration::from_secs(10),
            poll_max: Duration::from_secs(120),
            poll_failures: 5,
            max_wait: Duration::from_secs(48 * 3600),
            discount_percent: 50,
            prices: PriceTable::builtin(),
        }
    }
}

/// One request of a job and the key its result comes back under.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// Unique within the job, e.g. a chunk id.
    pub key: String,
    /// The request, as for an interactive call (its task, purpose and template go to its ledger row).
    pub request: ModelRequest,
}

impl BatchItem {
    /// An item.
    #[must_use]
    pub fn new(key: impl Into<String>, request: ModelRequest) -> BatchItem {
        BatchItem { key: key.into(), request }
    }
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    /// The item's key.
    pub key: String,
    /// The reply, or why this request failed (the other requests of the job are unaffected).
    pub result: Result<ModelReply, ModelError>,
}

/// Why a whole job gave no results.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// The items cannot be submitted as given; nothing was sent.
    #[error(
        "the batch is not valid: {0}; give at least one item, each with a unique non-empty key"
    )]
    Invalid(String),
    /// The provider did not accept the job.
    #[error("the batch job was not submitted: {0}")]
    Submit(ModelError),
    /// The provider ran the job and failed it.
    #[error("batch job {name} failed: {message}; resubmit it, or send the requests interactively")]
    Failed {
        /// The job, `batches/{id}`.
        name: String,
        /// The provider's message.
        message: String,
    },
    /// The provider dropped the job unfinished after its 48 hours.
    #[error(
        "batch job {name} expired before it finished; resubmit it, or split it into smaller jobs"
    )]
    Expired {
        /// The job.
        name: String,
    },
    /// The job was cancelled (by [`BatchJob::cancel`] or by someone else).
    #[error("batch job {name} was cancelled")]
    Cancelled {
        /// The job.
        name: String,
    },
    /// The job was still running at the configured wait; it was cancelled.
    #[error("batch job {name} was still running after {after_ms} ms, so it was cancelled; raise max_wait or submit smaller jobs")]
    TimedOut {
        /// The job.
        name: String,
        /// How long it had been waited for.
        after_ms: u64,
    },
    /// The job's state could not be read (a non-retryable error, or too many retryable ones in a
    /// row); it was cancelled so it does not run unobserved.
    #[error("cannot read the state of batch job {name}: {error}")]
    Poll {
        /// The job.
        name: String,
        /// The last poll's error.
        error: ModelError,
    },
    /// Cancelling the job failed; it may still run and cost.
    #[error(
        "cannot cancel batch job {name}: {error}; cancel it with `POST /v1beta/{name}:cancel`"
    )]
    Cancel {
        /// The job.
        name: String,
        /// What the provider said.
        error: ModelError,
    },
    /// The provider's answer is not the documented operation.
    #[error("batch job {name} answered in an undocumented shape: {reason}")]
    Malformed {
        /// The job, or `(not created)`.
        name: String,
        /// What was wrong.
        reason: String,
    },
}

impl BatchError {
    /// Whether submitting the same items again may work.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            BatchError::Submit(e) | BatchError::Poll { error: e, .. } => e.is_retryable(),
            BatchError::Failed { .. }
            | BatchError::Expired { .. }
            | BatchError::TimedOut { .. } => true,
            BatchError::Invalid(_)
            | BatchError::Cancelled { .. }
            | BatchError::Cancel { .. }
            | BatchError::Malformed { .. } => false,
        }
    }

    /// The outcome label of the rows of a job that ended in this error.
    fn row_kind(&self) -> String {
        match self {
            BatchError::Invalid(_) => "rejected".to_owned(),
            BatchError::Submit(e) | BatchError::Poll { error: e, .. } => e.kind().to_owned(),
            BatchError::Failed { .. } => "server_error".to_owned(),
            BatchError::Expired { .. } | BatchError::TimedOut { .. } => {
                "deadline_exceeded".to_owned()
            }
            BatchError::Cancelled { .. } | BatchError::Cancel { .. } => "cancelled".to_owned(),
            BatchError::Malformed { .. } => "malformed_reply".to_owned(),
        }
    }
}

/// A Batch API client for one model.
#[derive(Clone)]
pub struct GeminiBatch {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GeminiBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiBatch").field("model", &self.inner.model).finish_non_exhaustive()
    }
}

struct Inner {
    http: Http,
    model: String,
    /// `{base_url}/v1beta`, to which job names are appended.
    api: String,
    config: GeminiBatchConfig,
    /// The batch price (the table price less the discount), when the table has the model.
    price: Option<ModelPrice>,
    ledger: Arc<dyn UsageLedger>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("model", &self.model).finish_non_exhaustive()
    }
}

impl GeminiBatch {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the setting when the model id is empty, the discount is over
    /// 100%, a poll delay or the wait is zero, or the HTTP client cannot be built.
    pub fn new(
        config: GeminiBatchConfig,
        ledger: Arc<dyn UsageLedger>,
        clock: Arc<dyn Clock>,
    ) -> Result<GeminiBatch, ModelError> {
        let bad = |hint: String| Err(ModelError::NotConfigured { hint });
        let model = config.model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return bad(format!(
                "batch model id {:?} is not valid; name a model such as {DEFAULT_GEMINI_MODEL}",
                config.model
            ));
        }
        if config.discount_percent > 100 {
            return bad(format!(
                "the batch discount of {}% is over 100%; set discount_percent to 0..=100 (50 for the \
                 Gemini Batch API)",
                config.discount_percent
            ));
        }
        if config.poll_first.is_zero() || config.poll_max.is_zero() || config.max_wait.is_zero() {
            return bad(
                "the batch poll_first, poll_max and max_wait must all be above 0".to_owned()
            );
        }
        let price = config.prices.price(&model).map(|p| discounted(p, config.discount_percent));
        if price.is_none() {
            tracing::warn!(model = %model, "the batch model is not in the price table; its rows are \
                recorded at cost 0; add it to the price table");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", config.api_key.header_value("")?);
        let http = Http::new(config.timeout, headers)?;
        let api = format!("{}/v1beta", config.base_url.trim_end_matches('/'));
        Ok(GeminiBatch {
            inner: Arc::new(Inner { http, model, api, config, price, ledger, clock }),
        })
    }

    /// Submits `items` and waits for their results: [`GeminiBatch::submit`] then [`BatchJob::wait`].
    ///
    /// # Errors
    /// As those two.
    pub async fn run(&self, items: Vec<BatchItem>) -> Result<Vec<BatchResult>, BatchError> {
        self.submit(items).await?.wait().await
    }

    /// Submits `items` as one job, inline.
    ///
    /// # Errors
    /// [`BatchError::Invalid`] for no items or a duplicate or empty key (nothing is sent),
    /// [`BatchError::Submit`] when the provider refused or could not be reached (after retrying 429 and
    /// 5xx answers), [`BatchError::Malformed`] when its answer names no job. Each request's row says so.
    pub async fn submit(&self, items: Vec<BatchItem>) -> Result<BatchJob, BatchError> {
        let started = Instant::now();
        let at = self.inner.clock.now();
        let metas: Vec<ItemMeta> = items.iter().map(ItemMeta::new).collect();
        let refuse = |error: BatchError, attempts: u32| {
            let metas = &metas;
            async move {
                self.inner.record_all(metas, at, started, attempts, &error.row_kind()).await;
                Err(error)
            }
        };
        if let Some(problem) = invalid(&items) {
            return refuse(BatchError::Invalid(problem), 0).await;
        }
        let requests: Vec<Value> = items
            .iter()
            .map(|item| {
                json!({"request": wire::generate_request(&item.request), "metadata": {"key": item.key}})
            })
            .collect();
        let body = json!({"batch": {
            "displayName": self.inner.config.display_name,
            "inputConfig": {"requests": {"requests": requests}},
        }});
        let url = format!("{}/models/{}:batchGenerateContent", self.inner.api, self.inner.model);
        let operation = match self.inner.submit_with_retries(&url, &body).await {
            Ok(operation) => operation,
            Err(error) => return refuse(BatchError::Submit(error), 1).await,
        };
        let Some(name) = operation.job_name().map(str::to_owned) else {
            let reason = "the submit answer names no job (`name`)".to_owned();
            return refuse(BatchError::Malformed { name: "(not created)".to_owned(), reason }, 1)
                .await;
        };
        tracing::info!(job = %name, requests = metas.len(), model = %self.inner.model, "batch job submitted");
        Ok(BatchJob {
            inner: Arc::clone(&self.inner),
            name,
            items: metas,
            at,
            started,
            finished: false,
        })
    }
}

impl Inner {
    async fn submit_with_retries(&self, url: &str, body: &Value) -> Result<Operation, ModelError> {
        let retry = self.config.submit_retry;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.http.send(reqwest::Method::POST, url, Some(body)).await {
                Ok(bytes) => return http::parse_reply(&bytes),
                Err(error) => error,
            };
            // No answer at all may mean the job exists: a resubmit could run it twice.
            let answered =
                matches!(error, ModelError::RateLimited { .. } | ModelError::ServerError { .. });
            if !answered || !is_retried(&error) || attempts >= retry.max_attempts {
                return Err(error);
            }
            let delay = retry.delay(attempts, &error);
            tracing::warn!(attempt = attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error, "batch submit failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn poll(&self, name: &str) -> Result<Operation, ModelError> {
        let bytes =
            self.http.send(reqwest::Method::GET, &format!("{}/{name}", self.api), None).await?;
        http::parse_reply(&bytes)
    }

    async fn cancel(&self, name: &str) -> Result<(), ModelError> {
        let url = format!("{}/{name}:cancel", self.api);
        self.http.send(reqwest::Method::POST, &url, Some(&json!({}))).await.map(|_| ())
    }

    /// One row for every item, all with the outcome `kind` and no tokens.
    async fn record_all(
        &self,
        items: &[ItemMeta],
        at: Timestamp,
        started: Instant,
        attempts: u32,
        kind: &str,
    ) {
        let outcome = CallOutcome::Failed { kind: kind.to_owned() };
        for item in items {
            let row = self.row(item, at, started, attempts, TokenUsage::default(), outcome.clone());
            write_row(&*self.ledger, &row).await;
        }
    }

    fn row(
        &self,
        item: &ItemMeta,
        at: Timestamp,
        started: Instant,
        attempts: u32,
        tokens: TokenUsage,
        outcome: CallOutcome,
    ) -> UsageRecord {
        UsageRecord {
            at,
            model: self.model.clone(),
            task: item.task.clone(),
            step: item.step.clone(),
            template: item.template.clone(),
            tokens,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            cost_micros: self.price.map_or(0, |p| p.cost_micros(&tokens)),
            cache_hit: false,
            outcome,
            attempts,
            team: item.team.clone(),
        }
    }
}

/// What a row needs of a submitted request.
#[derive(Debug, Clone)]
struct ItemMeta {
    key: String,
    task: Option<TaskId>,
    step: String,
    template: Option<String>,
    team: Option<String>,
}

impl ItemMeta {
    fn new(item: &BatchItem) -> ItemMeta {
        ItemMeta {
            key: item.key.clone(),
            task: item.request.task.clone(),
            step: item.request.purpose.clone(),
            template: item.request.template.clone(),
            team: item.request.team.clone(),
        }
    }
}

/// Why `items` cannot be submitted, if they cannot.
fn invalid(items: &[BatchItem]) -> Option<String> {
    if items.is_empty() {
        return Some("it has no items".to_owned());
    }
    let mut keys = HashSet::new();
    for item in items {
        if item.key.is_empty() {
            return Some("an item has an empty key".to_owned());
        }
        if !keys.insert(item.key.as_str()) {
            return Some(format!("the key {:?} appears twice", item.key));
        }
    }
    None
}

/// The batch price: every tier's prices less `percent`, rounded up.
fn discounted(price: ModelPrice, percent: u64) -> ModelPrice {
    let keep = 100 - percent.min(100);
    let scale = |micros: u64| micros.saturating_mul(keep).div_ceil(100);
    let tier = |t: TierPrice| TierPrice {
        input: scale(t.input),
        output: scale(t.output),
        cached_input: scale(t.cached_input),
    };
    ModelPrice {
        base: tier(price.base),
        long_context: price.long_context.map(|(above, t)| (above, tier(t))),
    }
}

/// Writes one row; a ledger failure is logged with the row's numbers but changes no result.
async fn write_row(ledger: &dyn UsageLedger, record: &UsageRecord) {
    if let Err(e) = ledger.record(record).await {
        tracing::error!(error = %e, model = %record.model, step = %record.step,
            outcome = record.outcome.label(), input_tokens = record.tokens.input,
            cost_micros = record.cost_micros, "usage row of a batch request not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_price_is_the_table_price_less_the_discount_rounded_up() {
        let table = ModelPrice::per_million_usd(0.50, 3.00, 0.05);
        let half = discounted(table, 50);
        assert_eq!(
            half.base,
            TierPrice { input: 250_000, output: 1_500_000, cached_input: 25_000 }
        );
        assert_eq!(discounted(table, 0), table);
        let odd = discounted(ModelPrice::per_million_usd(0.000_001, 0.0, 0.0), 50);
        assert_eq!(odd.base.input, 1, "rounded up, never under-charged");
    }

    #[test]
    fn keys_must_be_unique_and_non_empty() {
        let item = |key: &str| BatchItem::new(key, ModelRequest::default());
        assert!(invalid(&[item("a"), item("b")]).is_none());
        assert!(invalid(&[]).unwrap().contains("no items"));
        assert!(invalid(&[item("a"), item("a")]).unwrap().contains("\"a\" appears twice"));
        assert!(invalid(&[item("")]).unwrap().contains("empty key"));
    }
}
