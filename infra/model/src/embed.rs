//! Embeddings for the knowledge base, guarded like model calls.
//!
//! An [`EmbeddingProvider`] sends one request of texts and returns their vectors: the Gemini API
//! (`:batchEmbedContents`, [`GeminiEmbeddings`]), Vertex AI (`:predict`, [`VertexEmbeddings`], with a
//! pluggable [`AccessTokenSource`]) or an OpenAI-compatible server (`/v1/embeddings`: Ollama, vLLM,
//! llama.cpp; [`OpenAiEmbeddings`]). [`EmbedGateway`] puts a provider behind a rate limit (requests and
//! tokens per window), retries of throttling, 5xx and transport errors with full-jitter backoff (never
//! sooner than the provider asked), a circuit breaker and a call deadline, and is the knowledge base's
//! [`Embedder`].
//!
//! Texts are split into requests of at most the provider's batch size (100 for the Gemini API). Each
//! request leaves one [`UsageRecord`] with step `embed`, whatever its outcome: the input tokens the
//! provider counted (or about 4 characters a token when it reports none), the cost from the
//! [`PriceTable`], the attempts and the latency.
//!
//! Key decision: providers speak [`ModelError`], so the HTTP status mapping, the retry policy and the
//! breaker verdicts are the model calls' own; the gateway translates to [`EmbedError`] once, at the
//! [`Embedder`] seam, as its `# Errors` section requires (throttling is `RateLimited`, anything a retry
//! may cure is `Unavailable`, a wrong number of vectors or of dimensions is `Malformed`, never retried).
//!
//! ```ignore
//! let provider = GeminiEmbeddings::new(GeminiEmbeddingsConfig::new(api_key, 768))?;
//! let embedder = EmbedGateway::new(Arc::new(provider), EmbedGatewayConfig::default(), ledger, clock)?;
//! let vectors = embedder.embed(&texts, EmbedPurpose::Document).await?;
//! ```

mod gemini;
mod openai;
mod row;
mod vertex;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::knowledge::{EmbedError, EmbedPurpose, Embedder};
use cadre_domain::ports::model::ModelError;
use cadre_domain::ports::usage::{UsageLedger, UsageRecord};
use tokio::time::Instant;

pub use gemini::{GeminiEmbeddings, GeminiEmbeddingsConfig, DEFAULT_GEMINI_EMBEDDING_MODEL};
pub use openai::{OpenAiEmbeddings, OpenAiEmbeddingsConfig};
pub use vertex::{AccessTokenSource, VertexEmbeddings, VertexEmbeddingsConfig};

use crate::gateway::breaker::{CircuitBreaker, Verdict};
use crate::gateway::limiter::{millis, RateLimiter};
use crate::gateway::{BreakerConfig, ModelPrice, PriceTable, RateLimit, RetryPolicy};
use row::PendingRow;

/// The default deadline of one embedding request, waits and retries included.
pub const DEFAULT_EMBED_DEADLINE: Duration = Duration::from_secs(120);

/// How many characters make one token, for estimates before (or without) the provider's count.
const CHARS_PER_TOKEN: usize = 4;

/// The vectors of one request, in the order of its texts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddingBatch {
    /// One vector per text.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, when the provider reported them.
    pub input_tokens: Option<u64>,
}

/// One embedding endpoint: one HTTP request per call, no retries, errors mapped to [`ModelError`] as the
/// [`Model`](cadre_domain::ports::model::Model) port's `# Errors` section describes for HTTP outcomes.
#[async_trait]
pub trait EmbeddingProvider: Send + Sync {
    /// The model id, used for prices, ledger rows and [`Embedder::model_id`].
    fn model(&self) -> &str;

    /// The length of every vector it returns (and asks for, where the API takes a size).
    fn dimensions(&self) -> usize;

    /// The most texts one request may carry.
    fn max_batch(&self) -> usize;

    /// A short description for logs and breaker errors, e.g. `gemini-embed:gemini-embedding-001`.
    fn describe(&self) -> String;

    /// Embeds `texts` (at most [`EmbeddingProvider::max_batch`]) in one request.
    ///
    /// # Errors
    /// [`ModelError::RateLimited`] for a 429 / `RESOURCE_EXHAUSTED`, [`ModelError::ServerError`] for a
    /// 5xx, [`ModelError::Rejected`] for another 4xx, [`ModelError::Unreachable`] when no answer came, and
    /// [`ModelError::MalformedReply`] for a body that is not the documented format.
    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<EmbeddingBatch, ModelError>;
}

/// One deployment's guards for one embedding model.
#[derive(Debug, Clone)]
pub struct EmbedGatewayConfig {
    /// Requests per window, or no limit.
    pub requests: Option<RateLimit>,
    /// Input tokens per window, or no limit.
    pub tokens: Option<RateLimit>,
    /// Retries of throttling, 5xx and transport errors.
    pub retry: RetryPolicy,
    /// When the provider is considered down.
    pub breaker: BreakerConfig,
    /// The deadline of one request, waits and retries included.
    pub deadline: Duration,
    /// Token prices; the provider's model id is looked up in it.
    pub prices: PriceTable,
    /// The step recorded in ledger rows.
    pub step: String,
}

impl Default for EmbedGatewayConfig {
    /// No limits, the default retry, breaker and deadline, the built-in prices, step `embed`.
    fn default() -> EmbedGatewayConfig {
        EmbedGatewayConfig {
            requests: None,
            tokens: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            deadline: DEFAULT_EMBED_DEADLINE,
            prices: PriceTable::builtin(),
            step: "embed".to_owned(),
        }
    }
}

/// An [`EmbeddingProvider`] behind limits, retries, a breaker and accounting: the [`Embedder`].
pub struct EmbedGateway {
    provider: Arc<dyn EmbeddingProvider>,
    describe: String,
    config: EmbedGatewayConfig,
    price: Option<ModelPrice>,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    ledger: Arc<dyn UsageLedger>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for EmbedGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbedGateway").field("provider", &self.describe).finish_non_exhaustive()
    }
}

impl EmbedGateway {
    /// Puts `provider` behind the guards of `config`, recording into `ledger` at `clock`'s time.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the setting when the configuration is not usable (zero
    /// attempts, a zero deadline, a zero breaker threshold, a rate limit whose burst is not below its
    /// limit, a provider with no dimensions or a zero batch size).
    pub fn new(
        provider: Arc<dyn EmbeddingProvider>,
        config: EmbedGatewayConfig,
        ledger: Arc<dyn UsageLedger>,
        clock: Arc<dyn Clock>,
    ) -> Result<EmbedGateway, ModelError> {
        let bad = |hint: String| Err(ModelError::NotConfigured { hint });
        let describe = provider.describe();
        if config.retry.max_attempts == 0 {
            return bad(
                "the embedding retry.max_attempts is 0; set it to 1 or more (1 = no retry)"
                    .to_owned(),
            );
        }
        if config.deadline.is_zero() || config.breaker.failure_threshold == 0 {
            return bad(
                "the embedding deadline or breaker.failure_threshold is 0; set both above 0"
                    .to_owned(),
            );
        }
        if provider.dimensions() == 0 || provider.max_batch() == 0 {
            return bad(format!(
                "embedding provider {describe} has {} dimensions and a batch size of {}; \
                 configure both above 0",
                provider.dimensions(),
                provider.max_batch()
            ));
        }
        for (what, limit) in [("requests", &config.requests), ("tokens", &config.tokens)] {
            if let Some(limit) = limit {
                if limit.window.is_zero() || limit.burst == 0 || limit.burst >= limit.limit {
                    return bad(format!(
                        "the embedding {what} rate limit {} per {:?} with burst {} is not valid; \
                         it needs a non-zero window and 0 < burst < limit",
                        limit.limit, limit.window, limit.burst
                    ));
                }
            }
        }
        let price = config.prices.price(provider.model());
        if price.is_none() {
            tracing::warn!(
                model = provider.model(),
                "the embedding model is not in the price table; \
                its calls are recorded at cost 0; add it to the price table"
            );
        }
        Ok(EmbedGateway {
            limiter: RateLimiter::new(config.requests, config.tokens),
            breaker: CircuitBreaker::new(describe.clone(), config.breaker),
            provider,
            describe,
            config,
            price,
            ledger,
            clock,
        })
    }

    /// One provider request for `texts`, guarded and accounted, its shape checked.
    async fn request(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let started = Instant::now();
        let mut row = PendingRow::new(
            Arc::clone(&self.ledger),
            self.clock.now(),
            self.provider.model(),
            &self.config.step,
            started,
        );
        let result = self
            .attempts(texts, purpose, started, &mut row.record)
            .await
            .and_then(|batch| check_shape(batch.vectors, texts.len(), self.provider.dimensions()));
        row.finish(&result, self.price).await;
        result
    }

    /// The retry loop: breaker, limiter, one provider request within the deadline, then retry or stop.
    async fn attempts(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
        started: Instant,
        record: &mut UsageRecord,
    ) -> Result<EmbeddingBatch, ModelError> {
        let deadline = started + self.config.deadline;
        let estimate = estimate_tokens(texts);
        loop {
            self.breaker.check()?;
            self.limiter.acquire(estimate, deadline, started).await?;
            let permit = match self.breaker.permit() {
                Ok(permit) => permit,
                Err(open) => {
                    self.limiter.settle(estimate, 0);
                    return Err(open);
                }
            };
            record.attempts += 1;
            let result =
                tokio::time::timeout_at(deadline, self.provider.embed_batch(texts, purpose))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ModelError::DeadlineExceeded { after_ms: millis(started.elapsed()) })
                    });
            let error = match result {
                Ok(batch) => {
                    permit.report(Verdict::Up);
                    let used = batch.input_tokens.unwrap_or(estimate);
                    self.limiter.settle(estimate, used);
                    record.tokens.input += used;
                    return Ok(batch);
                }
                Err(error) => error,
            };
            self.limiter.settle(estimate, 0);
            let retry_in = self.config.retry.next_delay(&error, record.attempts, deadline);
            permit.report(Verdict::of(&error, retry_in.is_some()));
            let Some(delay) = retry_in else { return Err(error) };
            tracing::warn!(provider = %self.describe, attempt = record.attempts,
                delay_ms = millis(delay), error = %error, "embedding call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl Embedder for EmbedGateway {
    fn model_id(&self) -> String {
        self.provider.model().to_owned()
    }

    fn dimensions(&self) -> usize {
        self.provider.dimensions()
    }

    async fn embed(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.provider.max_batch()) {
            vectors.extend(self.request(chunk, purpose).await.map_err(embed_error)?);
        }
        Ok(vectors)
    }
}

/// About 4 characters a token, at least one token a text.
fn estimate_tokens(texts: &[String]) -> u64 {
    texts
        .iter()
        .map(|t| u64::try_from(t.len().div_ceil(CHARS_PER_TOKEN).max(1)).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add)
}

/// Exactly one vector of `dimensions` numbers per text, or [`ModelError::MalformedReply`] naming both
/// numbers.
fn check_shape(
    vectors: Vec<Vec<f32>>,
    texts: usize,
    dimensions: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    if vectors.len() != texts {
        return Err(ModelError::MalformedReply {
            reason: format!("the embedding reply has {} vectors for {texts} texts", vectors.len()),
        });
    }
    if let Some((i, v)) = vectors.iter().enumerate().find(|(_, v)| v.len() != dimensions) {
        return Err(ModelError::MalformedReply {
            reason: format!(
                "vector {i} of the embedding reply has {} dimensions, expected {dimensions}; \
                 set the embedder's dimensions to the model's output size",
                v.len()
            ),
        });
    }
    Ok(vectors)
}

/// The [`Embedder`] port's error for a provider or gateway failure: throttling stays `RateLimited`,
/// anything a retry may cure is `Unavailable`, a reply of the wrong shape `Malformed`, the rest `Refused`.
#[must_use]
pub fn embed_error(error: ModelError) -> EmbedError {
    match error {
        ModelError::RateLimited { retry_after_ms } => EmbedError::RateLimited { retry_after_ms },
        ModelError::MalformedReply { reason } => EmbedError::Malformed(reason),
        e @ (ModelError::MalformedToolCall { .. } | ModelError::SchemaMismatch { .. }) => {
            EmbedError::Malformed(e.to_string())
        }
        e if e.is_retryable() => EmbedError::Unavailable(e.to_string()),
        e => EmbedError::Refused(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_retryability_across_the_seam() {
        let retryable = [
            ModelError::RateLimited { retry_after_ms: Some(5) },
            ModelError::ServerError { status: 503, message: "busy".into() },
            ModelError::Unreachable { endpoint: "e".into(), reason: "reset".into() },
            ModelError::DeadlineExceeded { after_ms: 1 },
            ModelError::CircuitOpen { provider: "p".into(), retry_in_ms: 1 },
        ];
        for e in retryable {
            assert!(embed_error(e.clone()).is_retryable(), "{e:?}");
        }
        assert_eq!(
            embed_error(ModelError::RateLimited { retry_after_ms: Some(5) }),
            EmbedError::RateLimited { retry_after_ms: Some(5) }
        );
        let refused = embed_error(ModelError::Rejected { status: 400, message: "bad".into() });
        assert!(matches!(refused, EmbedError::Refused(_)), "{refused:?}");
        let malformed = embed_error(ModelError::MalformedReply { reason: "no vectors".into() });
        assert_eq!(malformed, EmbedError::Malformed("no vectors".into()));
    }

    #[test]
    fn shapes_are_checked() {
        assert!(check_shape(vec![vec![0.0; 3]; 2], 2, 3).is_ok());
        let count = check_shape(vec![vec![0.0; 3]], 2, 3).unwrap_err().to_string();
        assert!(count.contains("1 vectors for 2 texts"), "{count}");
        let dims = check_shape(vec![vec![0.0; 3], vec![0.0; 4]], 2, 3).unwrap_err().to_string();
        assert!(dims.contains("vector 1") && dims.contains("4 dimensions, expected 3"), "{dims}");
    }

    #[test]
    fn token_estimates_count_every_text() {
        assert_eq!(estimate_tokens(&["abcd".into(), "abcde".into(), String::new()]), 1 + 2 + 1);
    }
}
