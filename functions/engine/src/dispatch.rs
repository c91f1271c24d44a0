//! Routes an envelope to its step. The match is exhaustive, so a new step cannot be forgotten here.

use cadre_domain::step::{StepError, StepOutcome};
use cadre_domain::{Envelope, Harness, Ports, StepPayload, Task, TraceId};

use crate::lane;

/// Runs the step `envelope` asks for.
pub(crate) async fn run_step(
    envelope: &Envelope,
    task: &Task,
    ports: &Ports,
) -> Result<StepOutcome, StepError> {
    let trace = &envelope.trace_id;
    match &envelope.payload {
        StepPayload::Candidate { candidate, of } => {
            // A candidate's step runs in its lane: the same step, over ports that keep its artifacts,
            // worktrees and sandbox cache apart from the other candidates'.
            let lane_ports = lane::ports(ports, *candidate, task.settings.candidates);
            let outcome = run_plain(of, task, trace, &lane_ports).await?;
            Ok(lane::outcome(outcome, *candidate))
        }
        plain => run_plain(plain, task, trace, ports).await,
    }
}

async fn run_plain(
    payload: &StepPayload,
    task: &Task,
    trace: &TraceId,
    ports: &Ports,
) -> Result<StepOutcome, StepError> {
    match *payload {
        StepPayload::Index => cadre_steps::index(task, trace, ports).await,
        StepPayload::Plan => cadre_steps::plan(task, trace, ports).await,
        StepPayload::Generate { round } => match task.settings.harness {
            Harness::EditBlocks => cadre_steps::generate(task, round, trace, ports).await,
            Harness::Tools => cadre_steps::agent::turn(task, round, 1, trace, ports).await,
        },
        StepPayload::Turn { round, turn } => {
            cadre_steps::agent::turn(task, round, turn, trace, ports).await
        }
        StepPayload::Test { round } => cadre_steps::test(task, round, trace, ports).await,
        StepPayload::Review { round } => cadre_steps::review(task, round).await,
        StepPayload::Candidate { .. } => Err(StepError::MissingState {
            what:
                "a candidate message inside a candidate message; the envelope check refuses these"
                    .into(),
        }),
    }
}
