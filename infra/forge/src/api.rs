//! The REST plumbing both forges share: statuses mapped to [`ForgeError`], rate-limit headers
//! honoured, and `Link: <…>; rel="next"` pagination (GitHub and GitLab both send it).

use cadre_domain::ports::forge::ForgeError;
use cadre_domain::ports::Clock;
use cadre_domain::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::debug;

/// The wait assumed when a forge says "rate limited" without saying for how long.
const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// Most pages read from one list, so a forge that keeps answering `next` cannot loop us forever.
const MAX_PAGES: usize = 50;

/// How headers are added to every request (the forge's token and API headers).
pub(crate) type Decorate = Box<dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync>;

/// A REST client for one forge.
pub(crate) struct Api {
    client: reqwest::Client,
    decorate: Decorate,
    clock: Arc<dyn Clock>,
    /// Until when the forge said the rate limit is spent (`x-ratelimit-remaining: 0`): calls before
    /// then fail at once instead of spending a request on a certain refusal.
    blocked_until: Mutex<Option<Timestamp>>,
}

impl Api {
    /// `same_host_redirects_only`: for a token in a custom header (GitLab's `PRIVATE-TOKEN`), which
    /// reqwest does not strip on a redirect to another host as it strips `Authorization`.
    pub(crate) fn new(
        decorate: Decorate,
        clock: Arc<dyn Clock>,
        same_host_redirects_only: bool,
    ) -> Result<Self, crate::ConfigError> {
        let policy = if same_host_redirects_only {
            reqwest::redirect::Policy::custom(|attempt| {
                let same = attempt.previous().last().is_some_and(|prev| {
                    prev.host_str() == attempt.url().host_str()
                        && prev.port_or_known_default() == attempt.url().port_or_known_default()
                        && prev.scheme() == attempt.url().scheme()
                });
                if same && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            })
        } else {
            reqwest::redirect::Policy::limited(5)
        };
        let client = reqwest::Client::builder()
            .redirect(policy)
            .user_agent(concat!("cadre/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| crate::ConfigError::Client(e.to_string()))?;
        Ok(Api { client, decorate, clock, blocked_until: Mutex::new(None) })
    }

    /// A request with the forge's headers.
    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder {
        (self.decorate)(self.client.request(method, url))
    }

    /// Sends a request; a non-2xx answer becomes the matching [`ForgeError`].
    pub(crate) async fn send(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<Response, ForgeError> {
        let now = self.clock.now();
        let blocked = *self.blocked_until.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = blocked.filter(|until| until.0 > now.0) {
            return Err(ForgeError::RateLimited {
                retry_after: Duration::from_millis(until.millis_since(now)),
            });
        }
        let response = request.send().await.map_err(|e| ForgeError::Unavailable {
            what: what.to_owned(),
            detail: without_url(&e),
        })?;
        let status = response.status();
        debug!(what, status = status.as_u16(), "forge call");
        let limited = self.rate_limit(response.headers(), now);
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let detail = message(response).await;
        Err(classify(what, status, &headers, detail, limited, now))
    }

    /// Sends a request and reads a JSON answer.
    pub(crate) async fn json(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<Value, ForgeError> {
        let response = self.send(what, request).await?;
        response.json().await.map_err(|e| ForgeError::Unavailable {
            what: what.to_owned(),
            detail: format!("the answer is not JSON: {}", without_url(&e)),
        })
    }

    /// Every item of a paginated list, following `Link: rel="next"`; `key` names the array inside
    /// an object answer (GitHub's `check_runs`), `None` for a bare array.
    pub(crate) async fn pages(
        &self,
        what: &str,
        first: &str,
        key: Option<&str>,
    ) -> Result<Vec<Value>, ForgeError> {
        let mut items = Vec::new();
        let mut url = Some(first.to_owned());
        let mut pages = 0;
        while let Some(current) = url.take() {
            pages += 1;
            let response = self.send(what, self.request(Method::GET, &current)).await?;
            url = next_link(response.headers()).filter(|_| pages < MAX_PAGES);
            let value: Value = response.json().await.map_err(|e| ForgeError::Unavailable {
                what: what.to_owned(),
                detail: format!("the answer is not JSON: {}", without_url(&e)),
            })?;
            let list = match key {
                Some(key) => value.get(key).cloned(),
                None => Some(value),
            };
            match list {
                Some(Value::Array(page)) => items.extend(page),
                _ => return Err(shape(what, "a list")),
            }
        }
        Ok(items)
    }

    /// Remembers a spent limit; returns the wait the headers ask for, if any.
    fn rate_limit(&self, headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
        let wait = rate_limit_wait(headers, now)?;
        let until = now.plus_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        *self.blocked_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(until);
        Some(wait)
    }
}

/// The wait the rate-limit headers ask for: `Retry-After` seconds, or the time until the reset when
/// the remaining count is 0 (`x-ratelimit-*` on GitHub, `ratelimit-*` on GitLab).
fn rate_limit_wait(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let number =
        |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
    }
    let remaining = number("x-ratelimit-remaining").or_else(|| number("ratelimit-remaining"))?;
    if remaining > 0 {
        return None;
    }
    let reset = number("x-ratelimit-reset").or_else(|| number("ratelimit-reset"));
    Some(match reset {
        Some(epoch_secs) => {
            Duration::from_millis(u64::try_from(epoch_secs * 1000 - now.0).unwrap_or(0))
        }
        None => DEFAULT_RETRY,
    })
}

/// Maps a refused call to the port's error.
fn classify(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    detail: String,
    limited: Option<Duration>,
    now: Timestamp,
) -> ForgeError {
    let what = what.to_owned();
    match status.as_u16() {
        429 => ForgeError::RateLimited { retry_after: limited.unwrap_or(DEFAULT_RETRY) },
        // GitHub answers a spent (primary or secondary) limit with 403 and the limit headers.
        403 if limited.is_some() || rate_limit_wait(headers, now).is_some() => {
            ForgeError::RateLimited { retry_after: limited.unwrap_or(DEFAULT_RETRY) }
        }
        401 | 403 => ForgeError::Auth { what, detail },
        404 | 410 => ForgeError::NotFound { what },
        409 | 422 => ForgeError::Conflict { what, detail },
        _ => {
            ForgeError::Unavailable { what, detail: format!("HTTP {}: {detail}", status.as_u16()) }
        }
    }
}

/// The forge's own explanation (`message` on both forges), cut short; the body otherwise.
async fn message(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| match v.get("message").or_else(|| v.get("error")) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        })
        .unwrap_or(text);
    message.chars().take(300).collect::<String>().trim().to_owned()
}

/// The URL of `rel="next"` in a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// A transport error without its URL (which never holds a token here, but may be long).
fn without_url(e: &reqwest::Error) -> String {
    let e = e.to_string();
    e.split(" for url (").next().unwrap_or(&e).to_owned()
}

/// An answer that is not shaped as documented.
pub(crate) fn shape(what: &str, expected: &str) -> ForgeError {
    ForgeError::Unavailable {
        what: what.to_owned(),
        detail: format!("the answer is not {expected} as the API documents"),
    }
}

/// A string field of a JSON object, or empty.
pub(crate) fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_and_limits() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://x/a?page=1>; rel=\"prev\", <https://x/a?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/a?page=3"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("130"));
        assert_eq!(rate_limit_wait(&h, Timestamp(100_000)), Some(Duration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&h, Timestamp(100_000)), Some(Duration::from_secs(7)));
        let mut g = HeaderMap::new();
        g.insert("ratelimit-remaining", HeaderValue::from_static("5"));
        assert_eq!(rate_limit_wait(&g, Timestamp(0)), None);
    }
}
