//! Reading a task's artifacts, with a missing or corrupt one reported as [`StepError::MissingState`].

use cadre_domain::step::{ArtifactName, StepError};
use cadre_domain::{Ports, TaskId};
use serde::de::DeserializeOwned;

/// An artifact's bytes as text.
///
/// # Errors
/// [`StepError::MissingState`] when absent or not UTF-8; store failures.
pub(crate) async fn artifact_text(
    ports: &Ports,
    task: &TaskId,
    name: &ArtifactName,
) -> Result<String, StepError> {
    let bytes = ports.store.artifact(task, name).await?.ok_or_else(|| StepError::MissingState {
        what: format!("artifact `{name}` of task {task}"),
    })?;
    String::from_utf8(bytes)
        .map_err(|_| StepError::MissingState { what: format!("artifact `{name}` is not UTF-8") })
}

/// An artifact's bytes parsed as JSON.
///
/// # Errors
/// [`StepError::MissingState`] when absent or not the expected JSON; store failures.
pub(crate) async fn artifact_json<T: DeserializeOwned>(
    ports: &Ports,
    task: &TaskId,
    name: &ArtifactName,
) -> Result<T, StepError> {
    let text = artifact_text(ports, task, name).await?;
    serde_json::from_str(&text).map_err(|e| StepError::MissingState {
        what: format!("artifact `{name}` of task {task} is corrupt: {e}"),
    })
}
