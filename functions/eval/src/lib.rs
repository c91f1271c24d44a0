//! `cadre-eval`: the parts of `cadre eval` that do not run the pipeline. Suites (SWE-bench JSONL and
//! local task directories) become [`EvalTask`]s; [`prepare`] builds the repository an agent is given
//! and the scratch copy a check runs in; [`outcome`] reads how a Cadre task ended; [`results`] keeps
//! one line per task; [`summary`], [`compare`] and [`report`] turn results into figures, a comparison
//! and a self-contained HTML page.
//!
//! Key decision: the results file is the run's only source of truth. Each result is appended as one
//! line and synced before the next task is counted, a resumed run skips every task it holds and runs
//! the rest again, and a torn last line is dropped. A killed eval therefore loses only the tasks that
//! were in flight, and no task is ever counted twice.
//!
//! This crate must not run the pipeline, call a model or run untrusted code: the binary
//! (`functions/cadre/eval.rs`) does that through the ports, in the sandbox. Its only side effects are
//! git and the run directory's files. It must not read the clock: callers pass times in.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod compare;
mod error;
pub mod outcome;
pub mod prepare;
pub mod report;
pub mod results;
pub mod run;
pub mod stats;
pub mod suite;
pub mod summary;

pub use compare::Comparison;
pub use error::EvalError;
pub use outcome::Outcome;
pub use results::{ResultsFile, TaskResult, Trajectory};
pub use run::{Manifest, RunDir, RunLock};
pub use suite::{Check, EvalTask, RepoSource, Suite, SuiteFormat, SuiteOptions};
pub use summary::Summary;
