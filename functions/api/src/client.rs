//! [`ApiClient`]: the task API over HTTP, for `cadre lsp --remote` and `cadre task --remote`.
//!
//! Every answer is read into the wire types; an error answer becomes the [`ApiError`] the server
//! sent (same status, same `{error, fix}`), and a connection failure a retryable
//! [`ApiError::Transport`]. The token goes only into the `Authorization` header.

use std::time::Duration;

use cadre_domain::{Plan, TestReport};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::ApiToken;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{
    Accept, CreateTask, Decision, EventsPage, PlanView, ProposalView, Reason, ReportView, Resume,
    TaskList, TaskView,
};

/// How long a request may take besides a long-poll's own wait.
const SLACK: Duration = Duration::from_secs(30);

/// A client of one deployment's task API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: ApiToken,
    http: reqwest::Client,
}

fn transport(error: impl std::fmt::Display, url: &str) -> ApiError {
    ApiError::Transport {
        error: format!("cannot reach the Cadre API at {url} ({error})"),
        fix: "check the URL given to --remote and that the deployment is up".into(),
    }
}

/// A task id or prefix as a path segment; anything else could change the route.
fn segment(id: &str) -> Result<&str, ApiError> {
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::bad_request(
            format!("`{id}` is not a task id"),
            "give a task id or its prefix, as `cadre status` prints it",
        ));
    }
    Ok(id)
}

impl ApiClient {
    /// A client of the API at `base_url` (`https://cadre.example.com`, no trailing path needed).
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] when the URL is not http(s).
    pub fn new(base_url: &str, token: ApiToken) -> Result<ApiClient, ApiError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::bad_request(
                format!("the API URL {base} is not http:// or https://"),
                "give the deployment's URL, e.g. https://cadre-api-xyz.a.run.app",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| transport(e, &base))?;
        Ok(ApiClient { base, token, http })
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str, wait: Duration) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(wait + SLACK)
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ApiError> {
        let response = request.send().await.map_err(|e| transport(e, &self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport(e, &self.base))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::Transport {
                error: format!(
                    "the Cadre API at {} answered what this client cannot read ({e})",
                    self.base
                ),
                fix: "use a cadre binary of the deployment's version".into(),
            });
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            fix: "check that --remote names a Cadre API".into(),
        });
        Err(ApiError::from_answer(status.as_u16(), body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.request(Method::GET, path, Duration::ZERO)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(self.request(Method::POST, path, Duration::ZERO).json(body)).await
    }

    /// Creates a task.
    ///
    /// # Errors
    /// The server's error (422 for an unusable goal or repository), or a transport failure.
    pub async fn create(&self, request: &CreateTask) -> Result<TaskView, ApiError> {
        self.post("/v1/tasks", request).await
    }

    /// The team's tasks, newest first.
    ///
    /// # Errors
    /// The server's error, or a transport failure.
    pub async fn list(&self, limit: usize) -> Result<TaskList, ApiError> {
        self.get(&format!("/v1/tasks?limit={limit}")).await
    }

    /// One task (by id or unique prefix), its state and cost.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown task, or a transport failure.
    pub async fn task(&self, id: &str) -> Result<TaskView, ApiError> {
        self.get(&format!("/v1/tasks/{}", segment(id)?)).await
    }

    /// Events after `after`; the server holds the request up to `wait` until there are some.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown task, or a transport failure.
    pub async fn events(
        &self,
        id: &str,
        after: u64,
        wait: Duration,
    ) -> Result<EventsPage, ApiError> {
        let path =
            format!("/v1/tasks/{}/events?after={after}&wait={}", segment(id)?, wait.as_secs());
        self.send(self.request(Method::GET, &path, wait)).await
    }

    /// The plan, once made.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown task, or a transport failure.
    pub async fn plan(&self, id: &str) -> Result<Option<Plan>, ApiError> {
        let view: PlanView = self.get(&format!("/v1/tasks/{}/plan", segment(id)?)).await?;
        Ok(view.plan)
    }

    /// A round's test report, once the tests ran.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown task, or a transport failure.
    pub async fn report(&self, id: &str, round: u32) -> Result<Option<TestReport>, ApiError> {
        let view: ReportView =
            self.get(&format!("/v1/tasks/{}/rounds/{round}/report", segment(id)?)).await?;
        Ok(view.report)
    }

    /// The change a task awaiting review proposes.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] when the task is not awaiting review, or a transport failure.
    pub async fn proposal(&self, id: &str) -> Result<ProposalView, ApiError> {
        self.get(&format!("/v1/tasks/{}/proposal", segment(id)?)).await
    }

    /// Records that round `round`'s change was applied by the caller.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] when that round is not awaiting review, or a transport failure.
    pub async fn accept(&self, id: &str, round: u32) -> Result<Decision, ApiError> {
        self.post(&format!("/v1/tasks/{}/accept", segment(id)?), &Accept { round }).await
    }

    /// Rejects the proposed change.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] when the task is not awaiting review, or a transport failure.
    pub async fn reject(&self, id: &str, reason: Option<String>) -> Result<Decision, ApiError> {
        self.post(&format!("/v1/tasks/{}/reject", segment(id)?), &Reason { reason }).await
    }

    /// Cancels a task that has not finished.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown task, or a transport failure.
    pub async fn cancel(&self, id: &str, reason: Option<String>) -> Result<Decision, ApiError> {
        self.post(&format!("/v1/tasks/{}/cancel", segment(id)?), &Reason { reason }).await
    }

    /// Re-publishes the step a task waits for, raising its budget first when `budget_usd` is given.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] for a task stopped at its budget without a new one, or a transport
    /// failure.
    pub async fn resume(&self, id: &str, budget_usd: Option<f64>) -> Result<Decision, ApiError> {
        self.post(&format!("/v1/tasks/{}/resume", segment(id)?), &Resume { budget_usd }).await
    }
}
