//! [`GitLabForge`]: the forge port over GitLab's REST API v4 (gitlab.com or self-managed).

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

/// One GitLab project and how to reach it.
#[derive(Debug, Clone)]
pub struct GitLabConfig {
    /// The API's base URL, ending in `/api/v4` (`https://gitlab.com/api/v4`).
    pub api_url: String,
    /// The project's full path (`group/subgroup/project`).
    pub project: String,
    /// A token with the `api` scope (sent as `PRIVATE-TOKEN`) that may push.
    pub token: Secret,
    /// Where branches are pushed.
    pub remote: GitRemote,
}

impl GitLabConfig {
    /// `group/…/project` on gitlab.com.
    ///
    /// # Errors
    /// [`ConfigError::Repository`] when `project` is not a path of at least two parts.
    pub fn new(project: &str, token: Secret) -> Result<Self, ConfigError> {
        let project = project.trim().trim_matches('/');
        let parts: Vec<&str> = project.split('/').collect();
        let plain = |s: &&str| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if parts.len() < 2 || !parts.iter().all(plain) {
            return Err(ConfigError::Repository(project.to_owned()));
        }
        Ok(GitLabConfig {
            api_url: "https://gitlab.com/api/v4".to_owned(),
            project: project.to_owned(),
            token,
            remote: GitRemote::new(format!("https://gitlab.com/{project}.git"), "oauth2"),
        })
    }
}

/// The [`Forge`] port on GitLab (merge requests, notes, pipelines and jobs).
pub struct GitLabForge {
    config: GitLabConfig,
    api: Api,
}

impl GitLabForge {
    /// A forge for the configured project.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when the HTTP client cannot be built.
    pub fn new(config: GitLabConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let token = config.token.clone();
        let api =
            Api::new(Box::new(move |r| r.header("PRIVATE-TOKEN", token.expose())), clock, true)?;
        Ok(GitLabForge { config, api })
    }

    /// `{api}/projects/{url-encoded path}{path}`: GitLab takes the project's path as one segment.
    fn url(&self, path: &str) -> String {
        let c = &self.config;
        format!(
            "{}/projects/{}{path}",
            c.api_url.trim_end_matches('/'),
            c.project.replace('/', "%2F")
        )
    }
}

fn merge_request(what: &str, value: &Value, created: bool) -> Result<PullRequest, ForgeError> {
    let number =
        value.get("iid").and_then(Value::as_u64).ok_or_else(|| shape(what, "a merge request"))?;
    Ok(PullRequest { number, url: text(value, "/web_url"), created })
}

#[async_trait]
impl Forge for GitLabForge {
    async fn push_branch(&self, request: &PushRequest) -> Result<Pushed, ForgeError> {
        self.config.remote.push(&self.config.token, request).await
    }

    async fn open_or_update(&self, change: &ChangeRequest) -> Result<PullRequest, ForgeError> {
        let what = format!("the merge request from {}", change.branch);
        let open = self
            .api
            .json(
                &what,
                self.api
                    .request(Method::GET, &self.url("/merge_requests"))
                    .query(&[("source_branch", change.branch.as_str()), ("state", "opened")]),
            )
            .await?;
        let existing = open.as_array().ok_or_else(|| shape(&what, "a list"))?.first().cloned();
        if let Some(existing) = existing {
            let iid = existing
                .get("iid")
                .and_then(Value::as_u64)
                .ok_or_else(|| shape(&what, "a merge request"))?;
            let updated = self
                .api
                .json(
                    &what,
                    self.api
                        .request(Method::PUT, &self.url(&format!("/merge_requests/{iid}")))
                        .json(&json!({ "title": change.title, "description": change.body })),
                )
                .await?;
            return merge_request(&what, &updated, false);
        }
        let created = self
            .api
            .json(
                &what,
                self.api.request(Method::POST, &self.url("/merge_requests")).json(&json!({
                    "source_branch": change.branch,
                    "target_branch": change.target,
                    "title": change.title,
                    "description": change.body,
                })),
            )
            .await?;
        merge_request(&what, &created, true)
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let what = format!("a note on merge request !{number}");
        self.api
            .send(
                &what,
                self.api
                    .request(Method::POST, &self.url(&format!("/merge_requests/{number}/notes")))
                    .json(&json!({ "body": body })),
            )
            .await?;
        Ok(())
    }

    async fn review_comments(&self, number: u64) -> Result<Vec<ReviewComment>, ForgeError> {
        let what = format!("the notes of merge request !{number}");
        let notes = self
            .api
            .pages(
                &what,
                &self.url(&format!(
                    "/merge_requests/{number}/notes?sort=asc&order_by=created_at&per_page=100"
                )),
                None,
            )
            .await?;
        Ok(notes
            .iter()
            // System notes ("added 1 commit") are GitLab's, not a reviewer's.
            .filter(|n| !n.get("system").and_then(Value::as_bool).unwrap_or(false))
            .map(|n| ReviewComment {
                id: n.get("id").and_then(Value::as_u64).unwrap_or(0),
                author: text(n, "/author/username"),
                body: text(n, "/body"),
                path: Some(text(n, "/position/new_path")).filter(|p| !p.is_empty()),
                line: n
                    .pointer("/position/new_line")
                    .and_then(Value::as_u64)
                    .and_then(|l| u32::try_from(l).ok()),
            })
            .collect())
    }

    async fn checks(&self, number: u64) -> Result<Vec<CheckResult>, ForgeError> {
        let what = format!("the pipelines of merge request !{number}");
        // Newest first: the first pipeline ran on the request's current head.
        let pipelines = self
            .api
            .json(
                &what,
                self.api.request(
                    Method::GET,
                    &self.url(&format!("/merge_requests/{number}/pipelines")),
                ),
            )
            .await?;
        let Some(latest) = pipelines.as_array().ok_or_else(|| shape(&what, "a list"))?.first()
        else {
            return Ok(Vec::new());
        };
        let id =
            latest.get("id").and_then(Value::as_u64).ok_or_else(|| shape(&what, "a pipeline"))?;
        let jobs = self
            .api
            .pages(&what, &self.url(&format!("/pipelines/{id}/jobs?per_page=100")), None)
            .await?;
        Ok(jobs
            .iter()
            .map(|job| {
                let state = match text(job, "/status").as_str() {
                    "success" => CheckState::Passed,
                    "failed" => CheckState::Failed,
                    "canceled" | "skipped" | "manual" => CheckState::Skipped,
                    _ => CheckState::Pending,
                };
                CheckResult {
                    name: text(job, "/name"),
                    state,
                    job: job.get("id").and_then(Value::as_u64).map(|id| id.to_string()),
                    url: Some(text(job, "/web_url")).filter(|u| !u.is_empty()),
                }
            })
            .collect())
    }

    async fn job_log(&self, job: &str) -> Result<String, ForgeError> {
        let what = format!("the log of job {job}");
        if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ForgeError::NotFound { what });
        }
        let response = self
            .api
            .send(&what, self.api.request(Method::GET, &self.url(&format!("/jobs/{job}/trace"))))
            .await?;
        response.text().await.map_err(|e| ForgeError::Unavailable { what, detail: e.to_string() })
    }
}
