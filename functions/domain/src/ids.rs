//! Identifiers. Each is a newtype with a fallible constructor so that a malformed id is rejected
//! where it enters (the CLI, a message) and never travels further ("parse, don't validate").

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} `{value}`: {why}")]
pub struct InvalidId {
    /// Which kind of id was expected.
    pub kind: &'static str,
    /// The refused text.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A task's id: a UUIDv7 (time-ordered, so listings sort by creation) in its hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// A fresh, time-ordered task id.
    #[must_use]
    pub fn generate() -> Self {
        TaskId(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a full task id.
    ///
    /// # Errors
    /// Returns [`InvalidId`] when `s` is not a UUID.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(s).map(|u| TaskId(u.hyphenated().to_string())).map_err(|_| {
            InvalidId {
                kind: "task id",
                value: s.to_owned(),
                why: "expected a UUID such as 0193…-…",
            }
        })
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 characters, enough to tell tasks apart in a listing.
    #[must_use]
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

impl TryFrom<String> for TaskId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TaskId::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an existing id.
            #[must_use]
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A message's unique id; queues use it to drop duplicate publishes.
    MessageId
);
text_id!(
    /// The id of the trace a task's messages belong to, carried across processes.
    TraceId
);
text_id!(
    /// The key under which a step's result is committed exactly once: `<task>/<step>/r<round>`.
    /// Two deliveries of one message carry the same key, so the second finds the work done.
    IdempotencyKey
);

impl MessageId {
    /// A fresh random message id.
    #[must_use]
    pub fn generate() -> Self {
        MessageId(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl TraceId {
    /// A fresh random trace id (32 hex digits, the W3C trace-context size).
    #[must_use]
    pub fn generate() -> Self {
        TraceId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The trace of a task: its id's 32 hex digits, so one task is one trace in every process and a
    /// re-published message joins the same trace without anything stored.
    #[must_use]
    pub fn for_task(task: &TaskId) -> Self {
        TraceId(task.as_str().replace('-', ""))
    }
}

/// A full git commit id (40 or 64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// Parses a full commit id.
    ///
    /// # Errors
    /// Returns [`InvalidId`] unless `s` is 40 or 64 hex digits.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let s = s.trim();
        let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(CommitId(s.to_ascii_lowercase()))
        } else {
            Err(InvalidId {
                kind: "commit id",
                value: s.to_owned(),
                why: "expected 40 or 64 hex digits",
            })
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommitId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        CommitId::parse(&s)
    }
}

impl From<CommitId> for String {
    fn from(id: CommitId) -> Self {
        id.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_round_trips_and_rejects_garbage() {
        let id = TaskId::generate();
        assert_eq!(TaskId::parse(id.as_str()).unwrap(), id);
        let err = TaskId::parse("nope").unwrap_err();
        assert_eq!(err.kind, "task id");
    }

    #[test]
    fn commit_id_needs_full_hex() {
        assert!(CommitId::parse(&"a".repeat(40)).is_ok());
        assert!(CommitId::parse("abc123").is_err());
        assert!(CommitId::parse(&"g".repeat(40)).is_err());
    }
}
