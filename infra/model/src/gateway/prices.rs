//! Token prices per model, read from a table file (`infra/model/prices.json` is built in), and the cost
//! of a call in integer micro-dollars.
//!
//! Prices change more often than code, so they are data: a deployment can pass its own table. Internally
//! every price is micro-dollars per million tokens, so a call's cost is one integer multiply-add and one
//! division, rounded up (an estimate never under-charges).

use std::collections::HashMap;

use cadre_domain::ports::model::{ModelError, TokenUsage};
use serde::Deserialize;

use super::limiter::TokenEstimate;

/// The table shipped with Cadre.
const BUILTIN: &str = include_str!("../../prices.json");

/// Prices of one tier, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierPrice {
    /// Prompt tokens not served from a cache.
    pub input: u64,
    /// Generated tokens, thinking included.
    pub output: u64,
    /// Prompt tokens served from a context cache.
    pub cached_input: u64,
}

/// What one model costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    /// The price up to the long-context threshold (or always, without one).
    pub base: TierPrice,
    /// `(threshold, tier)`: the whole call is priced at `tier` when its prompt exceeds `threshold` tokens.
    pub long_context: Option<(u64, TierPrice)>,
}

impl ModelPrice {
    /// A single-tier price from USD per million tokens (input, output, cached input).
    #[must_use]
    pub fn per_million_usd(input: f64, output: f64, cached_input: f64) -> ModelPrice {
        ModelPrice {
            base: TierPrice {
                input: usd_to_micros(input).unwrap_or(0),
                output: usd_to_micros(output).unwrap_or(0),
                cached_input: usd_to_micros(cached_input).unwrap_or(0),
            },
            long_context: None,
        }
    }

    /// The cost of `usage` in micro-dollars: uncached input, cached input, and output plus thinking
    /// (billed as output), rounded up.
    #[must_use]
    pub fn cost_micros(&self, usage: &TokenUsage) -> u64 {
        let tier = self.tier(usage.input);
        let cached = usage.cached.min(usage.input);
        let per_million = u128::from(usage.input - cached) * u128::from(tier.input)
            + u128::from(cached) * u128::from(tier.cached_input)
            + (u128::from(usage.output) + u128::from(usage.thinking)) * u128::from(tier.output);
        u64::try_from(per_million.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    /// The most a call of this estimated size can cost: all input uncached, all output used.
    #[must_use]
    pub fn worst_case_micros(&self, estimate: TokenEstimate) -> u64 {
        self.cost_micros(&TokenUsage {
            input: estimate.input,
            output: estimate.output,
            cached: 0,
            thinking: 0,
        })
    }

    fn tier(&self, input_tokens: u64) -> TierPrice {
        match self.long_context {
            Some((threshold, tier)) if input_tokens > threshold => tier,
            _ => self.base,
        }
    }
}

/// What explicit context caching (`cachedContents`) costs for one model, beyond the cached-input price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextCachePrice {
    /// Storage, in micro-dollars per million tokens per hour.
    pub storage_per_hour: u64,
    /// The smallest cache the provider accepts, in tokens.
    pub min_tokens: u64,
}

/// Prices by model id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    context_caches: HashMap<String, ContextCachePrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    #[allow(dead_code)] // Documentation for people reading the file.
    about: String,
    models: HashMap<String, PriceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    input: f64,
    output: f64,
    cached_input: f64,
    long_context: Option<LongContextFile>,
    context_cache: Option<ContextCacheFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextCacheFile {
    /// USD per million tokens per hour.
    storage_per_hour: f64,
    min_tokens: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongContextFile {
    above_input_tokens: u64,
    input: f64,
    output: f64,
    cached_input: f64,
}

impl PriceTable {
    /// The table built into Cadre (`infra/model/prices.json`).
    #[must_use]
    pub fn builtin() -> PriceTable {
        PriceTable::from_json(BUILTIN).unwrap_or_else(|e| {
            // A unit test parses the built-in table, so this cannot happen in a tested build.
            tracing::error!(error = %e, "the built-in price table does not parse; every call is priced 0");
            PriceTable::default()
        })
    }

    /// Parses a table with the shape of `infra/model/prices.json`: USD per million tokens per model.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the problem when the text is not such a table or a price is
    /// negative or absurd (over 1,000,000 USD per million tokens).
    pub fn from_json(text: &str) -> Result<PriceTable, ModelError> {
        let bad = |why: String| {
            ModelError::NotConfigured {
            hint: format!(
                "the price table is not valid: {why}; \
                 expected {{\"models\": {{\"<model-id>\": {{\"input\", \"output\", \"cached_input\"}}}}}} \
                 in USD per 1M tokens, as in infra/model/prices.json"
            ),
        }
        };
        let file: TableFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut models = HashMap::new();
        let mut context_caches = HashMap::new();
        for (model, price) in file.models {
            let usd = |what: &str, value: f64| {
                usd_to_micros(value).ok_or_else(|| bad(format!("{model}: {what} is {value}")))
            };
            let base = TierPrice {
                input: usd("input", price.input)?,
                output: usd("output", price.output)?,
                cached_input: usd("cached_input", price.cached_input)?,
            };
            let long_context = match price.long_context {
                Some(long) => Some((
                    long.above_input_tokens,
                    TierPrice {
                        input: usd("long_context.input", long.input)?,
                        output: usd("long_context.output", long.output)?,
                        cached_input: usd("long_context.cached_input", long.cached_input)?,
                    },
                )),
                None => None,
            };
            if let Some(cache) = price.context_cache {
                let storage_per_hour =
                    usd("context_cache.storage_per_hour", cache.storage_per_hour)?;
                context_caches.insert(
                    model.clone(),
                    ContextCachePrice { storage_per_hour, min_tokens: cache.min_tokens },
                );
            }
            models.insert(model, ModelPrice { base, long_context });
        }
        Ok(PriceTable { models, context_caches })
    }

    /// Adds or replaces one model's price.
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> PriceTable {
        self.models.insert(model.into(), price);
        self
    }

    /// The price of `model` (a leading `models/` is ignored), if the table has it.
    #[must_use]
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        self.models.get(model).copied()
    }

    /// What context caching costs for `model`, if the table says (without it, caching stays off).
    #[must_use]
    pub fn context_cache(&self, model: &str) -> Option<ContextCachePrice> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        self.context_caches.get(model).copied()
    }

    /// Adds or replaces one model's context-cache price.
    #[must_use]
    pub fn with_context_cache(
        mut self,
        model: impl Into<String>,
        price: ContextCachePrice,
    ) -> PriceTable {
        self.context_caches.insert(model.into(), price);
        self
    }
}

/// USD per million tokens to micro-dollars per million tokens, rounded to the nearest micro-dollar.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn usd_to_micros(usd: f64) -> Option<u64> {
    // The range check keeps the cast exact and non-negative.
    (usd.is_finite() && (0.0..=1_000_000.0).contains(&usd)).then(|| (usd * 1e6).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_parses_and_prices_gemini_3_flash() {
        let table = PriceTable::from_json(BUILTIN).unwrap();
        let flash = table.price("models/gemini-3-flash-preview").unwrap();
        assert_eq!(
            flash.base,
            TierPrice { input: 500_000, output: 3_000_000, cached_input: 50_000 }
        );
        assert_eq!(table, PriceTable::builtin());
        assert_eq!(table.price("no-such-model"), None);
        assert_eq!(
            table.context_cache("gemini-3-flash-preview"),
            Some(ContextCachePrice { storage_per_hour: 1_000_000, min_tokens: 1024 })
        );
    }

    #[test]
    fn cost_counts_cached_input_and_thinking_as_output_and_rounds_up() {
        let price = ModelPrice::per_million_usd(0.50, 3.00, 0.05);
        // 1000 input of which 400 cached, 100 output, 200 thinking:
        // 600 × 0.5 + 400 × 0.05 + 300 × 3 = 300 + 20 + 900 = 1220 micro-dollars.
        let usage = TokenUsage { input: 1000, output: 100, cached: 400, thinking: 200 };
        assert_eq!(price.cost_micros(&usage), 1_220);
        // One input token costs half a micro-dollar: rounded up to 1.
        assert_eq!(price.cost_micros(&TokenUsage { input: 1, ..TokenUsage::default() }), 1);
        assert_eq!(price.cost_micros(&TokenUsage::default()), 0);
        assert_eq!(price.worst_case_micros(TokenEstimate { input: 2000, output: 1000 }), 4_000);
    }

    #[test]
    fn long_context_prices_the_whole_call() {
        let table = PriceTable::builtin();
        let pro = table.price("gemini-2.5-pro").unwrap();
        let short = TokenUsage { input: 200_000, output: 1_000, ..TokenUsage::default() };
        assert_eq!(pro.cost_micros(&short), 250_000 + 10_000);
        let long = TokenUsage { input: 200_001, output: 1_000, ..TokenUsage::default() };
        assert_eq!(pro.cost_micros(&long), 500_003 + 15_000);
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let negative = r#"{"models": {"m": {"input": -1, "output": 1, "cached_input": 0}}}"#;
        let error = PriceTable::from_json(negative).unwrap_err().to_string();
        assert!(error.contains("m: input is -1"), "{error}");
        let typo = r#"{"models": {"m": {"input": 1, "ouput": 1, "cached_input": 0}}}"#;
        assert!(PriceTable::from_json(typo).is_err());
    }
}
