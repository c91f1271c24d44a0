//! Versioned prompt templates, stored as files beside the code and compiled in.
//!
//! The version is recorded with each step's transcript, so results can be compared across template changes.

/// A system prompt and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The template's name.
    pub name: &'static str,
    /// Bumped whenever the text changes meaningfully.
    pub version: u32,
    /// The text.
    pub text: &'static str,
}

/// The planner's system prompt.
pub const PLAN: Template =
    Template { name: "plan", version: 1, text: include_str!("../prompts/plan.md") };

/// The implementer's system prompt (defines the edit format).
pub const GENERATE: Template =
    Template { name: "generate", version: 1, text: include_str!("../prompts/generate.md") };

/// The tool-using harness's system prompt.
pub const AGENT: Template =
    Template { name: "agent", version: 1, text: include_str!("../prompts/agent.md") };

impl Template {
    /// `name@version`, as recorded in transcripts.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}
