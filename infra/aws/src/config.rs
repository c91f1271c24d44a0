//! What an [`SqsQueue`](crate::SqsQueue) needs to know: the queue it reads, where each step's messages
//! go, how long to long-poll, and how to find credentials. Parsed from text at the edge (`sqs://` URLs,
//! `step=URL` routes) so a typo fails at start with the fix, not at the first message.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// How an [`SqsQueue`](crate::SqsQueue) is set up.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    /// The queue this process receives from and settles on (e.g. one step's queue in Lambda).
    pub queue_url: QueueUrl,
    /// Where a published message goes, by the `step` field of its envelope; a message whose step has no
    /// route (or that is no envelope) goes to `queue_url`. One queue per step lets each step have its own
    /// Lambda function, memory and timeout.
    pub routes: BTreeMap<String, QueueUrl>,
    /// How long `receive` waits for a message on an empty queue (SQS long polling, at most 20 s).
    /// Long polls cost one request per wait instead of one per empty answer.
    pub wait: Duration,
    /// The AWS region; read from the queue's host (`sqs.REGION.amazonaws.com`) when absent, then from
    /// the environment (`AWS_REGION`), then `us-east-1`.
    pub region: Option<String>,
    /// Where credentials come from.
    pub credentials: Credentials,
}

impl SqsConfig {
    /// A configuration for `queue_url` with no routes, a 20 s long poll and the default credential chain.
    #[must_use]
    pub fn new(queue_url: QueueUrl) -> Self {
        SqsConfig {
            queue_url,
            routes: BTreeMap::new(),
            wait: MAX_WAIT,
            region: None,
            credentials: Credentials::Chain,
        }
    }

    /// The region to sign requests for, if it can be told without the environment.
    #[must_use]
    pub fn explicit_region(&self) -> Option<String> {
        self.region.clone().or_else(|| self.queue_url.region())
    }
}

/// Where request-signing credentials come from.
#[derive(Clone)]
pub enum Credentials {
    /// The AWS default chain: environment (`AWS_ACCESS_KEY_ID`, set by Lambda for the function's role),
    /// profile files, the ECS/Lambda container endpoint, web identity, EC2 instance metadata.
    Chain,
    /// Fixed keys, e.g. the dummy ones a local SQS server such as moto accepts.
    Static {
        /// The access key id.
        access_key_id: String,
        /// The secret key; never printed.
        secret_access_key: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Chain => f.write_str("Chain"),
            Credentials::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .finish(),
        }
    }
}

/// Why configuration text was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a queue URL.
    #[error("{text:?} is not an SQS queue URL ({why}); give it as sqs://HOST/ACCOUNT/NAME, or sqs://http://HOST:PORT/ACCOUNT/NAME for a local server")]
    BadQueueUrl {
        /// What was given.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Not a `step=URL` route.
    #[error("route {text:?} is not STEP=QUEUE_URL; give e.g. plan=https://sqs.us-east-1.amazonaws.com/123456789012/cadre-plan.fifo")]
    BadRoute {
        /// What was given.
        text: String,
    },
}

/// An SQS queue URL, e.g. `https://sqs.us-east-1.amazonaws.com/123456789012/cadre-plan.fifo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrl {
    url: String,
    origin_len: usize,
}

impl QueueUrl {
    /// Parses `sqs://HOST/ACCOUNT/NAME` (HTTPS), `sqs://http(s)://HOST/ACCOUNT/NAME`, or a plain
    /// `http(s)://` queue URL.
    ///
    /// # Errors
    /// Returns [`ConfigError::BadQueueUrl`] when the text has no host or no queue name.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = |why| ConfigError::BadQueueUrl { text: text.to_owned(), why };
        let trimmed = text.trim();
        let rest = trimmed.strip_prefix("sqs://").unwrap_or(trimmed);
        let url = if rest.starts_with("http://") || rest.starts_with("https://") {
            rest.to_owned()
        } else if trimmed.starts_with("sqs://") {
            format!("https://{rest}")
        } else {
            return Err(bad("it starts with neither sqs:// nor http(s)://"));
        };
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let origin_len = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
        if origin_len == scheme_end {
            return Err(bad("it has no host"));
        }
        let path = url[origin_len..].trim_matches('/');
        if path.is_empty() {
            return Err(bad("it has no queue name"));
        }
        Ok(QueueUrl { url, origin_len })
    }

    /// The whole URL, as SQS calls take it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`: the endpoint requests about this queue are sent to.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.url[..self.origin_len]
    }

    /// The queue's name (the last path segment).
    #[must_use]
    pub fn name(&self) -> &str {
        self.url.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
    }

    /// Whether it names a FIFO queue (SQS requires the `.fifo` suffix).
    #[must_use]
    pub fn is_fifo(&self) -> bool {
        self.name().ends_with(".fifo")
    }

    /// The region named by an AWS host, `sqs.REGION.amazonaws.com`.
    #[must_use]
    pub fn region(&self) -> Option<String> {
        let host = self.endpoint().split("://").nth(1)?;
        let region = host.strip_prefix("sqs.")?.split('.').next()?;
        (host.contains(".amazonaws.com") && !region.is_empty()).then(|| region.to_owned())
    }
}

impl fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Parses `STEP=QUEUE_URL` routes, e.g. from `CADRE_SQS_ROUTES=plan=…,generate=…`.
///
/// # Errors
/// Returns [`ConfigError`] for an entry without `=`, with an empty step, or with a bad URL.
pub fn parse_routes<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, QueueUrl>, ConfigError> {
    let mut routes = BTreeMap::new();
    for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
        let Some((step, url)) = entry.split_once('=') else {
            return Err(ConfigError::BadRoute { text: entry.to_owned() });
        };
        if step.trim().is_empty() {
            return Err(ConfigError::BadRoute { text: entry.to_owned() });
        }
        routes.insert(step.trim().to_owned(), QueueUrl::parse(url)?);
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let aws = QueueUrl::parse("sqs://sqs.eu-west-1.amazonaws.com/123456789012/cadre-plan.fifo")
            .unwrap();
        assert_eq!(
            aws.as_str(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/cadre-plan.fifo"
        );
        assert_eq!(aws.endpoint(), "https://sqs.eu-west-1.amazonaws.com");
        assert_eq!(aws.name(), "cadre-plan.fifo");
        assert!(aws.is_fifo());
        assert_eq!(aws.region().as_deref(), Some("eu-west-1"));

        let local = QueueUrl::parse("sqs://http://127.0.0.1:5111/123456789012/steps").unwrap();
        assert_eq!(local.endpoint(), "http://127.0.0.1:5111");
        assert!(!local.is_fifo());
        assert_eq!(local.region(), None);
        assert_eq!(QueueUrl::parse("http://h/1/q").unwrap().name(), "q");

        for bad in ["sqs://", "sqs://host", "sqs://host/", "ftp://x/y", "queue"] {
            assert!(QueueUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn parses_routes() {
        let routes = parse_routes(["plan=sqs://h/1/p.fifo", " test = http://h/1/t ", ""]).unwrap();
        assert_eq!(routes["plan"].as_str(), "https://h/1/p.fifo");
        assert_eq!(routes["test"].as_str(), "http://h/1/t");
        assert!(parse_routes(["plan"]).is_err());
        assert!(parse_routes(["=http://h/1/q"]).is_err());
    }

    #[test]
    fn static_credentials_are_redacted() {
        let c = Credentials::Static {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"), "{shown}");
    }
}
