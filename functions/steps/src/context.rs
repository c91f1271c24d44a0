//! What a step shows the model about the repository: the file list and the text of the relevant files,
//! within a byte budget.
//!
//! This is the simple context of the walking skeleton (files named by the goal or the plan, or the whole
//! repository when it is small); retrieval from the knowledge base replaces the choice of files later.

use cadre_domain::ports::workspace::{Workspace, WorkspaceError, Worktree};
use std::fmt::Write;

/// Byte budgets for the context.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Most entries of the file list shown.
    pub max_listed_files: usize,
    /// Most bytes of one file's text.
    pub max_file_bytes: usize,
    /// Most bytes of all files' text together.
    pub max_total_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_listed_files: 400, max_file_bytes: 48 * 1024, max_total_bytes: 160 * 1024 }
    }
}

/// The chosen context.
#[derive(Debug, Clone, Default)]
pub struct RepoContext {
    /// Every file in the worktree.
    pub all_files: Vec<String>,
    /// (path, text) of the files shown in full.
    pub shown: Vec<(String, String)>,
    /// Files that were wanted but left out, with why.
    pub omitted: Vec<(String, &'static str)>,
}

/// Reads `wanted` files (in order) into a context, then, if `fill_small_repo` and budget remains, the other
/// files of a small repository.
///
/// # Errors
/// Fails when the worktree cannot be listed or read.
pub async fn gather(
    workspace: &dyn Workspace,
    worktree: &Worktree,
    wanted: &[String],
    fill_small_repo: bool,
    budget: Budget,
) -> Result<RepoContext, WorkspaceError> {
    let all_files = workspace.list_files(worktree).await?;
    let mut ctx = RepoContext { all_files, ..RepoContext::default() };
    let mut total = 0usize;
    let mut candidates: Vec<String> =
        wanted.iter().filter(|w| ctx.all_files.contains(w)).cloned().collect();
    if fill_small_repo {
        for f in &ctx.all_files {
            if !candidates.contains(f) {
                candidates.push(f.clone());
            }
        }
    }
    for path in candidates {
        let Some(text) = workspace.read_file(worktree, &path).await? else {
            ctx.omitted.push((path, "not UTF-8 text"));
            continue;
        };
        if text.len() > budget.max_file_bytes {
            ctx.omitted.push((path, "larger than the per-file budget"));
            continue;
        }
        if total + text.len() > budget.max_total_bytes {
            ctx.omitted.push((path, "over the context budget"));
            continue;
        }
        total += text.len();
        ctx.shown.push((path, text));
    }
    Ok(ctx)
}

/// Paths in `all_files` that the goal mentions by path or by file name.
#[must_use]
pub fn mentioned_in(goal: &str, all_files: &[String]) -> Vec<String> {
    all_files
        .iter()
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            goal.contains(path.as_str()) || (name.len() > 3 && goal.contains(name))
        })
        .cloned()
        .collect()
}

impl RepoContext {
    /// Renders the context as prompt text.
    #[must_use]
    pub fn render(&self, budget: Budget) -> String {
        let mut out = String::from("## Repository files\n");
        for path in self.all_files.iter().take(budget.max_listed_files) {
            let _ = writeln!(out, "{path}");
        }
        if self.all_files.len() > budget.max_listed_files {
            let _ = writeln!(out, "… and {} more", self.all_files.len() - budget.max_listed_files);
        }
        for (path, text) in &self.shown {
            let _ = write!(out, "\n## File: {path}\n```\n{text}");
            if !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("```\n");
        }
        for (path, why) in &self.omitted {
            let _ = writeln!(out, "\n(not shown: {path}, {why})");
        }
        out
    }
}
