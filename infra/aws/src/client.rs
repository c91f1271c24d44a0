//! Building the SQS client and reading its errors.
//!
//! The client is the SDK's, with an HTTPS stack chosen for compile time: hyper 1 and rustls on `ring`
//! (both already built for the rest of the workspace) instead of the SDK's default `aws-lc-rs`, which
//! compiles a C library. SDK error types stop here: callers get a [`Failure`].

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

use crate::config::Credentials;

/// The region used when neither the configuration, the queue's host nor the environment names one.
const FALLBACK_REGION: &str = "us-east-1";

/// Where and how to reach SQS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `scheme://host[:port]`, e.g. `https://sqs.us-east-1.amazonaws.com` or `http://127.0.0.1:5111`.
    pub url: String,
    /// The region to sign for; from the environment (`AWS_REGION`) or `us-east-1` when absent.
    pub region: Option<String>,
    /// Where credentials come from.
    pub credentials: Credentials,
}

/// The SDK's shared configuration for `endpoint`: region, credentials and the HTTPS client. Every
/// service client of this crate is built from it, so they all make the same compile-time choices.
pub(crate) async fn sdk_config(
    url: Option<&str>,
    region: Option<&str>,
    credentials: &Credentials,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(url) = url {
        loader = loader.endpoint_url(url);
    }
    let region = region.map(|r| Region::new(r.to_owned()));
    if let Some(region) = region {
        loader = loader.region(region);
    }
    if let Credentials::Static { access_key_id, secret_access_key } = credentials {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "cadre-static",
        ));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return sdk.into_builder().region(Region::new(FALLBACK_REGION)).build();
    }
    sdk
}

/// An SQS client for `endpoint`.
pub(crate) async fn build(endpoint: &Endpoint) -> aws_sdk_sqs::Client {
    let sdk =
        sdk_config(Some(&endpoint.url), endpoint.region.as_deref(), &endpoint.credentials).await;
    aws_sdk_sqs::Client::new(&sdk)
}

/// What a failed SQS call means for the port.
#[derive(Debug)]
pub(crate) enum Failure {
    /// SQS refused the receipt handle: the message was settled or redelivered.
    Stale,
    /// Anything else: the rendered error with its causes.
    Other(String),
}

/// Classifies an SDK error.
pub(crate) fn classify<E, R>(error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = error.code() {
        if stale_code(code, error.message().unwrap_or_default()) {
            return Failure::Stale;
        }
    }
    Failure::Other(render(error))
}

/// Whether an SQS error code (from a call or a batch entry) says the receipt is not current.
pub(crate) fn stale_code(code: &str, message: &str) -> bool {
    code.ends_with("ReceiptHandleIsInvalid")
        || code.ends_with("MessageNotInflight")
        || (code.ends_with("InvalidParameterValue")
            && message.to_ascii_lowercase().contains("receipt handle"))
}

/// Renders an SDK error for messages: the service's code and message when it answered with one (the
/// full context would include the raw HTTP response), else the error with its causes.
pub(crate) fn render<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (error.code(), error.message()) {
        (Some(code), message) => format!("{code}: {}", message.unwrap_or("(no message)")),
        _ => DisplayErrorContext(error).to_string(),
    }
}
