//! A conversation with the model within one step: ask, check the reply, send the problem back, ask again.
//!
//! Models sometimes answer with something unusable (JSON that does not parse, edits that do not apply).
//! Such a reply is never used as is: the step tells the model what was wrong and asks again, a bounded
//! number of times, and every turn is kept for the step's transcript artifact.

use cadre_domain::ports::model::{
    CachePolicy, ChatMessage, Model, ModelReply, ModelRequest, TokenUsage,
};
use cadre_domain::step::StepError;
use cadre_domain::Task;
use serde::Serialize;

use crate::prompt::Template;

/// One step's exchange with the model.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// The prompt template and its version.
    pub template: String,
    /// The model that answered.
    pub model: String,
    /// The request as last sent (its messages are the whole transcript).
    pub request: ModelRequest,
    /// Tokens used by all calls.
    pub usage: TokenUsage,
    /// How many calls were made.
    pub calls: u32,
}

impl Conversation {
    /// Starts a conversation for `task` with a system template and the first user message. The task
    /// and template go with every request, so the gateway charges the task's budget and records the
    /// template's version with each call.
    #[must_use]
    pub fn new(
        task: &Task,
        purpose: &str,
        template: Template,
        first: String,
        schema: Option<serde_json::Value>,
    ) -> Self {
        Conversation {
            template: template.id(),
            model: String::new(),
            request: ModelRequest {
                purpose: purpose.to_owned(),
                system: template.text.to_owned(),
                messages: vec![ChatMessage::user(first)],
                response_schema: schema,
                temperature: Some(0.0),
                max_output_tokens: None,
                task: Some(task.id.clone()),
                budget_micros: task.settings.budget_micros,
                team: task.settings.team.clone(),
                template: Some(template.id()),
                cache: CachePolicy::Use,
                ..Default::default()
            },
            usage: TokenUsage::default(),
            calls: 0,
        }
    }

    /// Asks the model and records its reply in the transcript.
    ///
    /// # Errors
    /// Returns the model's error; the turn is not recorded then.
    pub async fn ask(&mut self, model: &dyn Model) -> Result<ModelReply, StepError> {
        self.model = model.describe();
        let reply = model.complete(&self.request).await?;
        self.calls += 1;
        self.usage = self.usage.plus(reply.usage);
        self.request.messages.push(ChatMessage::model(reply.text.clone()));
        Ok(reply)
    }

    /// Sends a correction: what was wrong with the last reply.
    pub fn correct(&mut self, problem: &str) {
        self.request.messages.push(ChatMessage::user(format!(
            "Your last answer could not be used:\n{problem}\n\nAnswer again, in full, fixing these problems."
        )));
    }

    /// The transcript as JSON bytes for the step's artifact.
    #[must_use]
    pub fn to_artifact(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// How many times a step may ask again after an unusable reply.
pub const MAX_CORRECTIONS: u32 = 2;
