//! The `review` step: parks the task for a person.
//!
//! Reads nothing beyond its message. Writes an `AwaitingReview` event. Publishes nothing: the next move is a
//! person's `cadre apply` or `cadre reject` (or, in the editor, accepting or discarding the edit).

use cadre_domain::event::Event;
use cadre_domain::step::{StepError, StepOutcome};
use cadre_domain::Task;

/// Parks round `round`'s passing patch for review.
///
/// # Errors
/// None today; the signature matches the other steps so that a model-assisted review can be added.
pub async fn review(task: &Task, round: u32) -> Result<StepOutcome, StepError> {
    tracing::info!(task = %task.id, round, "awaiting review");
    Ok(StepOutcome { events: vec![Event::AwaitingReview { round }], ..StepOutcome::default() })
}
