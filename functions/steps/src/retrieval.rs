//! Context from the knowledge base for `plan` and `generate`: the repository map, the chunks that best
//! match the goal, and the team's memories, within a token budget.
//!
//! Retrieval is an aid: when the repository is not indexed or the knowledge base fails, the step goes on
//! with the files the goal or plan names (see [`crate::context`]), and the prompt does not pretend
//! otherwise. What was chosen is returned as a record for the task's artifacts, so retrieval can be
//! evaluated against what the step then did.

use cadre_domain::ports::knowledge::{AssembledContext, ContextRequest, KnowledgeBase};
use cadre_domain::Task;
use serde::Serialize;

/// Tokens of retrieved context a step asks for by default: room for a map and a dozen chunks, small
/// next to the files the step shows in full.
pub const DEFAULT_TOKENS: usize = 6_000;

/// Retrieved context, ready for a prompt.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The prompt text (memories, map, chunks).
    pub text: String,
    /// The JSON record of what was chosen and how (for the `context-…` artifact).
    pub record: Vec<u8>,
}

#[derive(Serialize)]
struct Record<'a> {
    query: &'a str,
    excluded_paths: &'a [String],
    #[serde(flatten)]
    context: &'a AssembledContext,
}

/// Retrieves context for `query` in `task`'s repository, leaving out chunks of `excluded_paths` (files
/// the step already shows in full). `None` when nothing could be retrieved; the reason is logged.
pub async fn retrieve(
    knowledge: &dyn KnowledgeBase,
    task: &Task,
    query: &str,
    token_budget: usize,
    excluded_paths: &[String],
) -> Option<Retrieved> {
    let repo = match knowledge.key_for(&task.repo) {
        Ok(repo) => repo,
        Err(error) => {
            tracing::warn!(%error, "no retrieval: the repository has no knowledge-base key");
            return None;
        }
    };
    let request = ContextRequest::new(query, token_budget);
    let mut context = match knowledge.assemble_context(&repo, &request).await {
        Ok(context) => context,
        Err(error) => {
            tracing::warn!(%error, "no retrieval: assembling context failed");
            return None;
        }
    };
    context.chunks.retain(|hit| !excluded_paths.contains(&hit.chunk.path));
    let record = serde_json::to_vec_pretty(&Record { query, excluded_paths, context: &context })
        .unwrap_or_default();
    let body = context.render();
    if body.trim().is_empty() {
        return None;
    }
    let mut text = String::from("# Retrieved context (from the repository index)\n");
    text.push_str(&body);
    Some(Retrieved { text, record })
}
