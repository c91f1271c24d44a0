//! The `plan` step.
//!
//! Reads: the task and a fresh checkout of its base commit. Asks the model for a [`Plan`] as structured
//! JSON, correcting it up to [`MAX_CORRECTIONS`] times, at the task's plan thinking level. Writes: the
//! `plan` artifact, its transcript and a `PlanReady` event. Publishes: `generate` round 1 — one message
//! per candidate for a best-of-N task, so each candidate's loop runs wherever its messages are taken
//! (on a cloud bus, in separate function instances).

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ports::model::FinishReason;
use cadre_domain::step::{ArtifactName, StepError, StepOutcome};
use cadre_domain::{Plan, Ports, StepKind, Task, TraceId};
use std::fmt::Write;
use std::path::Path;

use crate::context::{self, Budget};
use crate::conversation::{Conversation, MAX_CORRECTIONS};
use crate::prompt;
use crate::retrieval;

/// Runs the plan step for `task`.
///
/// # Errors
/// Model, workspace and store failures, and [`StepError::Unusable`] when the model never produced a valid plan.
pub async fn plan(task: &Task, trace: &TraceId, ports: &Ports) -> Result<StepOutcome, StepError> {
    let worktree = ports
        .workspace
        .checkout(Path::new(&task.repo), &task.base_commit, None, &format!("{}-plan", task.id))
        .await?;
    let result = plan_in(task, trace, ports, &worktree).await;
    if let Err(error) = ports.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the plan worktree");
    }
    result
}

async fn plan_in(
    task: &Task,
    trace: &TraceId,
    ports: &Ports,
    worktree: &cadre_domain::ports::workspace::Worktree,
) -> Result<StepOutcome, StepError> {
    let budget = Budget::default();
    let files = ports.workspace.list_files(worktree).await?;
    let wanted = context::mentioned_in(&task.goal, &files);
    let ctx = context::gather(ports.workspace.as_ref(), worktree, &wanted, true, budget).await?;
    let shown: Vec<String> = ctx.shown.iter().map(|(path, _)| path.clone()).collect();
    let retrieved = retrieval::retrieve(
        ports.knowledge.as_ref(),
        task,
        &task.goal,
        retrieval::DEFAULT_TOKENS,
        &shown,
    )
    .await;
    let mut first = format!("# Goal\n{}\n\n", task.goal);
    first.push_str(&ctx.render(budget));
    if let Some(retrieved) = &retrieved {
        first.push('\n');
        first.push_str(&retrieved.text);
    }
    let mut convo = Conversation::new(task, "plan", prompt::PLAN, first, Some(Plan::json_schema()));
    convo.request.thinking = Some(task.settings.thinking.plan);

    let mut attempt = 0;
    let plan = loop {
        let reply = convo.ask(ports.model.as_ref()).await?;
        let problem = match parse_plan(&reply.text) {
            Ok(plan) if reply.finish != FinishReason::MaxTokens => break plan,
            Ok(_) => {
                "the answer was cut off at the output token limit; answer more briefly".to_owned()
            }
            Err(problem) => problem,
        };
        attempt += 1;
        if attempt > MAX_CORRECTIONS {
            return Err(StepError::Unusable {
                reason: format!("the model gave no usable plan after {attempt} tries: {problem}"),
            });
        }
        tracing::warn!(attempt, %problem, "unusable plan, asking the model again");
        convo.correct(&problem);
    };

    let items = u32::try_from(plan.steps.len()).unwrap_or(u32::MAX);
    let plan_json = serde_json::to_vec_pretty(&plan).unwrap_or_default();
    let mut artifacts = vec![
        (ArtifactName::plan(), plan_json),
        (ArtifactName::transcript(StepKind::Plan, 0), convo.to_artifact()),
    ];
    if let Some(retrieved) = retrieved {
        artifacts.push((ArtifactName::context(StepKind::Plan, 0), retrieved.record));
    }
    Ok(StepOutcome {
        events: vec![Event::PlanReady { summary: plan.summary.clone(), items, usage: convo.usage }],
        artifacts,
        next: first_generates(task, trace),
    })
}

/// The messages that start generating: round 1, or round 1 of every candidate.
fn first_generates(task: &Task, trace: &TraceId) -> Vec<Envelope> {
    let generate = StepPayload::Generate { round: 1 };
    if task.settings.candidates <= 1 {
        return vec![Envelope::new(task.id.clone(), trace.clone(), generate)];
    }
    (1..=task.settings.candidates)
        .map(|k| {
            Envelope::new(task.id.clone(), trace.clone(), generate.clone().for_candidate(Some(k)))
        })
        .collect()
}

/// Parses and checks a plan reply, or says what is wrong with it in words for the model.
fn parse_plan(text: &str) -> Result<Plan, String> {
    let json = strip_fences(text);
    let plan: Plan = serde_json::from_str(json)
        .map_err(|e| format!("the answer is not valid plan JSON: {e}"))?;
    let mut problems = String::new();
    if plan.steps.is_empty() {
        problems.push_str("- the plan has no steps\n");
    }
    for (i, step) in plan.steps.iter().enumerate() {
        if step.description.trim().is_empty() {
            let _ = writeln!(problems, "- step {} has no description", i + 1);
        }
        for f in &step.files {
            if f.starts_with('/') || f.split('/').any(|c| c == "..") {
                let _ = writeln!(
                    problems,
                    "- step {} names `{f}`: paths must be repository-relative",
                    i + 1
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// The JSON inside a reply that wrapped it in a Markdown code fence despite the response schema.
fn strip_fences(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    let rest = rest.split_once('\n').map_or(rest, |(_, body)| body);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_best_of_n_plan_starts_one_loop_per_candidate() {
        let mut task = Task {
            id: cadre_domain::TaskId::generate(),
            repo: "/r".into(),
            goal: "g".into(),
            base_commit: cadre_domain::CommitId::parse(&"a".repeat(40)).unwrap(),
            settings: cadre_domain::TaskSettings::default(),
            created_at: cadre_domain::Timestamp(0),
        };
        let trace = TraceId::for_task(&task.id);
        let keys = |task: &Task| -> Vec<String> {
            first_generates(task, &trace)
                .iter()
                .map(|e| e.idempotency_key.as_str().rsplit('/').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(keys(&task), vec!["r1"]);
        task.settings.candidates = 3;
        assert_eq!(keys(&task), vec!["c1r1", "c2r1", "c3r1"]);
    }

    #[test]
    fn parses_fenced_json_and_explains_bad_plans() {
        let ok = "```json\n{\"summary\":\"s\",\"steps\":[{\"description\":\"d\",\"files\":[\"a.py\"]}],\"acceptance_criteria\":[]}\n```";
        assert_eq!(parse_plan(ok).unwrap().files(), vec!["a.py".to_owned()]);
        assert!(parse_plan("not json").unwrap_err().contains("not valid plan JSON"));
        let empty = "{\"summary\":\"s\",\"steps\":[],\"acceptance_criteria\":[]}";
        assert!(parse_plan(empty).unwrap_err().contains("no steps"));
        let escape = "{\"summary\":\"s\",\"steps\":[{\"description\":\"d\",\"files\":[\"../x\"]}],\"acceptance_criteria\":[]}";
        assert!(parse_plan(escape).unwrap_err().contains("repository-relative"));
    }
}
