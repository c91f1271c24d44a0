//! The message envelope that chains the stateless steps.
//!
//! Everything a step needs travels in the envelope or sits in the store under the task's id, so any
//! worker, in any process or cloud, can take any message.

use crate::ids::{IdempotencyKey, MessageId, TaskId, TraceId};
use serde::{Deserialize, Serialize};

/// The envelope format this build writes and reads. A message with another version is dead-lettered
/// with a reason rather than guessed at.
pub const SCHEMA_VERSION: u32 = 1;

/// The steps of the pipeline. The enum is closed on purpose: adding a step makes the compiler list
/// every `match` that must learn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Bring the knowledge base up to date with the task's base commit.
    Index,
    /// Ask the model for an ordered plan.
    Plan,
    /// Ask the model for edits and apply them to an isolated worktree.
    Generate,
    /// Run the repository's tests on the candidate change.
    Test,
    /// Park the task for a person's decision.
    Review,
}

impl StepKind {
    /// The step's name as used in logs, keys and the CLI.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Index => "index",
            StepKind::Plan => "plan",
            StepKind::Generate => "generate",
            StepKind::Test => "test",
            StepKind::Review => "review",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step-specific part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepPayload {
    /// Index the repository at the task's base commit (incrementally), so plan and generate can
    /// retrieve context.
    Index,
    /// Plan the task.
    Plan,
    /// Generate round `round` (1-based). From round 2 on, the previous round's failing report is in
    /// the store and is fed back to the model.
    Generate {
        /// The generate/test round.
        round: u32,
    },
    /// Turn `turn` (2 or more) of generate round `round` in the tool-using harness: one model turn and
    /// the tools it calls. Turn 1 is the round's `Generate` message; each turn's result is committed
    /// before the next turn's message is published, so a crash repeats at most the turn in flight.
    Turn {
        /// The generate/test round.
        round: u32,
        /// The turn within the round, from 2.
        turn: u32,
    },
    /// Test the patch produced by generate round `round`.
    Test {
        /// The round whose patch is tested.
        round: u32,
    },
    /// Park the passing patch of round `round` for review.
    Review {
        /// The round whose patch is proposed.
        round: u32,
    },
    /// A `generate`, `turn` or `test` message of candidate `candidate` (from 1) of a best-of-N task.
    /// Each candidate is its own generate→test loop with its own artifacts, worktrees, sandbox cache
    /// and rounds; its key and message id carry `c<candidate>`, so the loops never collide.
    Candidate {
        /// The candidate, from 1 to the task's `candidates`.
        candidate: u32,
        /// What the candidate's loop is asked to do: `generate`, `turn` or `test`.
        of: Box<StepPayload>,
    },
}

impl StepPayload {
    /// Which step this payload is for.
    #[must_use]
    pub fn kind(&self) -> StepKind {
        match self {
            StepPayload::Index => StepKind::Index,
            StepPayload::Plan => StepKind::Plan,
            StepPayload::Generate { .. } | StepPayload::Turn { .. } => StepKind::Generate,
            StepPayload::Test { .. } => StepKind::Test,
            StepPayload::Review { .. } => StepKind::Review,
            StepPayload::Candidate { of, .. } => of.kind(),
        }
    }

    /// The candidate this payload belongs to, for a best-of-N task's loop messages.
    #[must_use]
    pub fn candidate(&self) -> Option<u32> {
        match self {
            StepPayload::Candidate { candidate, .. } => Some(*candidate),
            _ => None,
        }
    }

    /// The payload a candidate's message carries inside it (the payload itself for any other).
    #[must_use]
    pub fn inner(&self) -> &StepPayload {
        match self {
            StepPayload::Candidate { of, .. } => of,
            other => other,
        }
    }

    /// `payload` as a message of candidate `candidate`, or as it is for `None`.
    #[must_use]
    pub fn for_candidate(self, candidate: Option<u32>) -> StepPayload {
        match candidate {
            Some(candidate) => StepPayload::Candidate { candidate, of: Box::new(self) },
            None => self,
        }
    }

    /// The round the payload belongs to (plan is round 0).
    #[must_use]
    pub fn round(&self) -> u32 {
        match self {
            StepPayload::Index | StepPayload::Plan => 0,
            StepPayload::Generate { round }
            | StepPayload::Turn { round, .. }
            | StepPayload::Test { round }
            | StepPayload::Review { round } => *round,
            StepPayload::Candidate { of, .. } => of.round(),
        }
    }

    /// Where in the task the payload is, for idempotency keys and message ids: `r<round>`, and
    /// `r<round>t<turn>` for a harness turn, so every turn is committed once under its own key, and
    /// `c<candidate>r<round>…` for a candidate's.
    #[must_use]
    pub fn position(&self) -> String {
        match self {
            StepPayload::Turn { round, turn } => format!("r{round}t{turn}"),
            StepPayload::Candidate { candidate, of } => format!("c{candidate}{}", of.position()),
            other => format!("r{}", other.round()),
        }
    }
}

/// One message between steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per publish; queues drop a second publish of the same id.
    pub message_id: MessageId,
    /// The task the message advances.
    pub task_id: TaskId,
    /// The step to run (redundant with `payload`, kept flat so routers need not parse the payload).
    pub step: StepKind,
    /// Delivery attempt, filled from the queue's delivery count when received (1-based).
    pub attempt: u32,
    /// The key under which the step's result is committed once.
    pub idempotency_key: IdempotencyKey,
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Trace shared by every message of the task.
    pub trace_id: TraceId,
    /// What the step is asked to do.
    pub payload: StepPayload,
}

/// Why bytes taken off a queue are not a usable envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the envelope's shape.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// Written by a newer or older Cadre.
    #[error("unsupported envelope schema version {found} (this build reads {SCHEMA_VERSION}); run a worker of the matching version")]
    UnsupportedVersion {
        /// The version in the message.
        found: u32,
    },
    /// A candidate's payload wraps something other than `generate`, `turn` or `test`.
    #[error("a candidate message may carry only generate, turn or test, not `{0}`")]
    BadCandidate(StepKind),
    /// `step` and `payload` disagree.
    #[error("envelope says step `{step}` but carries a `{payload}` payload")]
    StepMismatch {
        /// The flat step field.
        step: StepKind,
        /// The payload's step.
        payload: StepKind,
    },
}

impl Envelope {
    /// A new first-attempt message for `payload`, keyed so that redelivery is recognised.
    #[must_use]
    pub fn new(task_id: TaskId, trace_id: TraceId, payload: StepPayload) -> Self {
        let step = payload.kind();
        let position = payload.position();
        let idempotency_key = IdempotencyKey::new(format!("{task_id}/{step}/{position}"));
        // The message id is derived from the idempotency key, so a step that is re-run after a crash
        // publishes its next message under the same id and the queue drops the duplicate.
        let message_id = MessageId::new(format!("{}/{step}/{position}", task_id.as_str()));
        Envelope {
            message_id,
            task_id,
            step,
            attempt: 1,
            idempotency_key,
            schema_version: SCHEMA_VERSION,
            trace_id,
            payload,
        }
    }

    /// Serializes the envelope for a queue.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses bytes taken off a queue.
    ///
    /// # Errors
    /// Returns [`EnvelopeError`] when the bytes are not an envelope of this schema version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: u32,
        }
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if version.schema_version != SCHEMA_VERSION {
            return Err(EnvelopeError::UnsupportedVersion { found: version.schema_version });
        }
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if let StepPayload::Candidate { of, .. } = &env.payload {
            if !matches!(
                **of,
                StepPayload::Generate { .. } | StepPayload::Turn { .. } | StepPayload::Test { .. }
            ) {
                return Err(EnvelopeError::BadCandidate(of.kind()));
            }
        }
        if env.step != env.payload.kind() {
            return Err(EnvelopeError::StepMismatch {
                step: env.step,
                payload: env.payload.kind(),
            });
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let env =
            Envelope::new(TaskId::generate(), TraceId::generate(), StepPayload::Test { round: 2 });
        assert_eq!(Envelope::from_bytes(&env.to_bytes()).unwrap(), env);
        assert!(env.idempotency_key.as_str().ends_with("/test/r2"));
    }

    #[test]
    fn a_candidates_key_and_id_carry_its_index_and_the_plain_path_is_unchanged() {
        let task = TaskId::generate();
        let turn = StepPayload::Turn { round: 2, turn: 3 }.for_candidate(Some(2));
        let env = Envelope::new(task.clone(), TraceId::generate(), turn);
        assert!(
            env.idempotency_key.as_str().ends_with("/generate/c2r2t3"),
            "{}",
            env.idempotency_key
        );
        assert!(env.message_id.as_str().ends_with("/generate/c2r2t3"));
        assert_eq!(
            (env.step, env.payload.round(), env.payload.candidate()),
            (StepKind::Generate, 2, Some(2))
        );
        assert_eq!(Envelope::from_bytes(&env.to_bytes()).unwrap(), env);

        let plain = Envelope::new(
            task,
            TraceId::generate(),
            StepPayload::Test { round: 1 }.for_candidate(None),
        );
        let json = String::from_utf8(plain.to_bytes()).unwrap();
        assert!(json.contains(r#""payload":{"step":"test","round":1}"#), "{json}");

        let mut nested = serde_json::to_value(&env).unwrap();
        nested["payload"]["of"] = serde_json::json!({"step": "plan"});
        nested["step"] = "plan".into();
        let bytes = serde_json::to_vec(&nested).unwrap();
        assert!(matches!(
            Envelope::from_bytes(&bytes),
            Err(EnvelopeError::BadCandidate(StepKind::Plan))
        ));
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        assert!(matches!(Envelope::from_bytes(b"{nope"), Err(EnvelopeError::Malformed(_))));
        let mut v = serde_json::to_value(Envelope::new(
            TaskId::generate(),
            TraceId::generate(),
            StepPayload::Plan,
        ))
        .unwrap();
        v["schema_version"] = 99.into();
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            Envelope::from_bytes(&bytes),
            Err(EnvelopeError::UnsupportedVersion { found: 99 })
        ));
    }
}
