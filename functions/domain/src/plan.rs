//! The plan the `plan` step asks the model for: ordered edits with acceptance criteria.

use serde::{Deserialize, Serialize};

/// An ordered plan of edits for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// One or two sentences on the approach.
    pub summary: String,
    /// The edits, in the order they should be made.
    pub steps: Vec<PlanItem>,
    /// Observable conditions that tell the change is done (e.g. "test_add passes").
    pub acceptance_criteria: Vec<String>,
}

/// One planned edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    /// What to change and why.
    pub description: String,
    /// Repository-relative paths the edit touches (read or written).
    #[serde(default)]
    pub files: Vec<String>,
}

impl Plan {
    /// The JSON schema sent to the model as its response schema, in the OpenAPI subset that both
    /// Gemini's `responseSchema` and OpenAI's `json_schema` accept.
    #[must_use]
    pub fn json_schema() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "description": {"type": "string"},
                            "files": {"type": "array", "items": {"type": "string"}}
                        },
                        "required": ["description", "files"]
                    }
                },
                "acceptance_criteria": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["summary", "steps", "acceptance_criteria"]
        })
    }

    /// Every file the plan names, deduplicated, in first-mention order.
    #[must_use]
    pub fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.steps.iter().flat_map(|s| s.files.iter()) {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}
