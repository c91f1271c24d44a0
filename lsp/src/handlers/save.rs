//! `textDocument/didSave`: the saved file is re-indexed, alone, so retrieval sees what was just written.
//!
//! The notification only records the path; a task per repository root waits for the debounce interval
//! and re-indexes every file saved meanwhile in one [`Agents::reindex_files`] call, then goes again if
//! more saves arrived while it ran. The request loop never waits on the knowledge base, and a failure
//! is logged, never shown: a save must not pop up errors.
//!
//! [`Agents::reindex_files`]: crate::agents::Agents::reindex_files

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tower_lsp::lsp_types::Url;

use crate::state::{lock, relative, repo_root, State};

/// Records a save and makes sure a re-index of its repository is scheduled.
pub(crate) fn saved(state: &Arc<State>, uri: &Url) {
    let Ok(path) = uri.to_file_path() else { return };
    let Some(root) = repo_root(&path).or_else(|| state.root_for(Some(&path))) else {
        tracing::debug!(%uri, "a saved file outside any repository or workspace folder; not indexed");
        return;
    };
    if !path.starts_with(&root) {
        return;
    }
    let file = relative(&path, Some(&root));
    let first = {
        let mut saves = lock(&state.saves);
        let first = !saves.contains_key(&root);
        saves.entry(root.clone()).or_default().insert(file);
        first
    };
    if first {
        let state = state.clone();
        tokio::spawn(async move { reindex_loop(&state, root).await });
    }
}

/// Re-indexes the root's saved files after the debounce, until none are left.
async fn reindex_loop(state: &State, root: PathBuf) {
    loop {
        tokio::time::sleep(state.reindex_debounce).await;
        let files: Vec<String> = {
            let mut saves = lock(&state.saves);
            let Some(pending) = saves.get_mut(&root) else { return };
            if pending.is_empty() {
                // Nothing arrived while the last re-index ran: this task ends, the next save starts one.
                saves.remove(&root);
                return;
            }
            std::mem::take(pending).into_iter().collect()
        };
        reindex(state, &root, &files).await;
    }
}

async fn reindex(state: &State, root: &Path, files: &[String]) {
    match state.agents.reindex_files(root, files).await {
        Ok(report) => tracing::debug!(
            root = %root.display(),
            files = files.len(),
            indexed = report.files_indexed,
            elapsed_ms = report.elapsed_ms,
            "re-indexed saved files"
        ),
        Err(error) => tracing::info!(
            root = %root.display(),
            files = files.len(),
            %error,
            "saved files were not re-indexed"
        ),
    }
}
