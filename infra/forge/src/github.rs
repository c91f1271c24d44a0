//! [`GitHubForge`]: the forge port over GitHub's REST API (`api.github.com` or GitHub Enterprise).

use async_trait::async_trait;
use cadre_domain::ports::forge::{
    ChangeRequest, CheckResult, CheckState, Forge, ForgeError, PullRequest, PushRequest, Pushed,
    ReviewComment,
};
use cadre_domain::ports::Clock;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::api::{shape, text, Api};
use crate::push::GitRemote;
use crate::secret::Secret;
use crate::ConfigError;

/// The REST API version Cadre is written against (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";

/// One GitHub repository and how to reach it.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// The API's base URL (`https://api.github.com`; `https://HOST/api/v3` on GitHub Enterprise).
    pub api_url: String,
    /// The repository's owner.
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// A token allowed to push and to write pull requests (`contents` and `pull_requests`).
    pub token: Secret,
    /// Where branches are pushed.
    pub remote: GitRemote,
}

impl GitHubConfig {
    /// `owner/name` on github.com.
    ///
    /// # Errors
    /// [`ConfigError::Repository`] when `repository` is not `owner/name`.
    pub fn new(repository: &str, token: Secret) -> Result<Self, ConfigError> {
        let (owner, repo) = repository
            .trim()
            .split_once('/')
            .filter(|(o, r)| plain(o) && plain(r))
            .ok_or_else(|| ConfigError::Repository(repository.to_owned()))?;
        Ok(GitHubConfig {
            api_url: "https://api.github.com".to_owned(),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token,
            remote: GitRemote::new(
                format!("https://github.com/{owner}/{repo}.git"),
                "x-access-token",
            ),
        })
    }
}

/// A name GitHub allows for an owner or repository, safe in a URL path as it is.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The [`Forge`] port on GitHub.
pub struct GitHubForge {
    config: GitHubConfig,
    api: Api,
}

impl GitHubForge {
    /// A forge for the configured repository.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when the HTTP client cannot be built.
    pub fn new(config: GitHubConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let token = config.token.clone();
        let api = Api::new(
            Box::new(move |r| {
                r.bearer_auth(token.expose())
                    .header("Accept", "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", API_VERSION)
            }),
            clock,
            // reqwest drops `Authorization` on a redirect to another host (the job logs' storage).
            false,
        )?;
        Ok(GitHubForge { config, api })
    }

    fn url(&self, path: &str) -> String {
        let c = &self.config;
        format!("{}/repos/{}/{}{path}", c.api_url.trim_end_matches('/'), c.owner, c.repo)
    }

    async fn head_sha(&self, number: u64) -> Result<String, ForgeError> {
        let what = format!("pull request #{number}");
        let pr = self
            .api
            .json(&what, self.api.request(Method::GET, &self.url(&format!("/pulls/{number}"))))
            .await?;
        let sha = text(&pr, "/head/sha");
        if sha.is_empty() {
            return Err(shape(&what, "a pull request with head.sha"));
        }
        Ok(sha)
    }
}

fn pull_request(what: &str, value: &Value, created: bool) -> Result<PullRequest, ForgeError> {
    let number =
        value.get("number").and_then(Value::as_u64).ok_or_else(|| shape(what, "a pull request"))?;
    Ok(PullRequest { number, url: text(value, "/html_url"), created })
}

#[async_trait]
impl Forge for GitHubForge {
    async fn push_branch(&self, request: &PushRequest) -> Result<Pushed, ForgeError> {
        self.config.remote.push(&self.config.token, request).await
    }

    async fn open_or_update(&self, change: &ChangeRequest) -> Result<PullRequest, ForgeError> {
        let what = format!("the pull request from {}", change.branch);
        let head = format!("{}:{}", self.config.owner, change.branch);
        let open = self
            .api
            .json(
                &what,
                self.api.request(Method::GET, &self.url("/pulls")).query(&[
                    ("head", head.as_str()),
                    ("state", "open"),
                    ("per_page", "100"),
                ]),
            )
            .await?;
        let existing = open.as_array().ok_or_else(|| shape(&what, "a list"))?.first().cloned();
        if let Some(existing) = existing {
            let number = existing
                .get("number")
                .and_then(Value::as_u64)
                .ok_or_else(|| shape(&what, "a pull request"))?;
            let updated = self
                .api
                .json(
                    &what,
                    self.api
                        .request(Method::PATCH, &self.url(&format!("/pulls/{number}")))
                        .json(&json!({ "title": change.title, "body": change.body })),
                )
                .await?;
            return pull_request(&what, &updated, false);
        }
        let created = self
            .api
            .json(
                &what,
                self.api.request(Method::POST, &self.url("/pulls")).json(&json!({
                    "title": change.title,
                    "head": change.branch,
                    "base": change.target,
                    "body": change.body,
                })),
            )
            .await?;
        pull_request(&what, &created, true)
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let what = format!("a comment on pull request #{number}");
        self.api
            .send(
                &what,
                self.api
                    .request(Method::POST, &self.url(&format!("/issues/{number}/comments")))
                    .json(&json!({ "body": body })),
            )
            .await?;
        Ok(())
    }

    async fn review_comments(&self, number: u64) -> Result<Vec<ReviewComment>, ForgeError> {
        let what = format!("the reviews of pull request #{number}");
        let comment = |v: &Value, path: bool| ReviewComment {
            id: v.get("id").and_then(Value::as_u64).unwrap_or(0),
            author: text(v, "/user/login"),
            body: text(v, "/body"),
            path: path.then(|| text(v, "/path")).filter(|p| !p.is_empty()),
            line: v
                .get("line")
                .or_else(|| v.get("original_line"))
                .and_then(Value::as_u64)
                .and_then(|l| u32::try_from(l).ok()),
        };
        let reviews = self
            .api
            .pages(&what, &self.url(&format!("/pulls/{number}/reviews?per_page=100")), None)
            .await?;
        let lines = self
            .api
            .pages(&what, &self.url(&format!("/pulls/{number}/comments?per_page=100")), None)
            .await?;
        let mut out: Vec<ReviewComment> = reviews
            .iter()
            .map(|r| comment(r, false))
            .filter(|c| !c.body.trim().is_empty())
            .collect();
        out.extend(lines.iter().map(|c| comment(c, true)));
        Ok(out)
    }

    async fn checks(&self, number: u64) -> Result<Vec<CheckResult>, ForgeError> {
        let sha = self.head_sha(number).await?;
        let what = format!("the checks of pull request #{number}");
        let runs = self
            .api
            .pages(
                &what,
                &self.url(&format!("/commits/{sha}/check-runs?per_page=100")),
                Some("check_runs"),
            )
            .await?;
        Ok(runs
            .iter()
            .map(|run| {
                let state = match (text(run, "/status").as_str(), text(run, "/conclusion").as_str())
                {
                    ("completed", "success") => CheckState::Passed,
                    (
                        "completed",
                        "failure" | "timed_out" | "action_required" | "startup_failure",
                    ) => CheckState::Failed,
                    ("completed", _) => CheckState::Skipped,
                    _ => CheckState::Pending,
                };
                CheckResult {
                    name: text(run, "/name"),
                    state,
                    job: run.get("id").and_then(Value::as_u64).map(|id| id.to_string()),
                    url: Some(text(run, "/html_url")).filter(|u| !u.is_empty()),
                }
            })
            .collect())
    }

    async fn job_log(&self, job: &str) -> Result<String, ForgeError> {
        let what = format!("the log of job {job}");
        if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ForgeError::NotFound { what });
        }
        // GitHub answers with a redirect to short-lived storage; reqwest follows it and drops the
        // `Authorization` header when the redirect leaves the API's host.
        let response = self
            .api
            .send(
                &what,
                self.api.request(Method::GET, &self.url(&format!("/actions/jobs/{job}/logs"))),
            )
            .await?;
        response.text().await.map_err(|e| ForgeError::Unavailable { what, detail: e.to_string() })
    }
}
