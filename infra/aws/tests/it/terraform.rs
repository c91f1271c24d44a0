//! `terraform/aws` checked by parsing its HCL (no provider schemas can be downloaded here, so
//! `terraform validate` cannot run): the root instantiates the team module once per team, and in the
//! module every pipeline step has a queue, a dead-letter queue wired as its redrive target, a function,
//! an event source mapping that reports partial batch failures, and a role whose policy names no `*`
//! action and no `*` resource; the team's state table has the keys and indexes `DynamoDbStore` uses, and
//! each role may make only the DynamoDB calls the store makes, on that table. (`terraform fmt -check` runs over all of `terraform/` in infra/gcp's
//! tests.)

use cadre_domain::StepKind;
use hcl::{Block, Body, Expression, ObjectKey};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every step of the pipeline. The `match` stops compiling when a step is added, so this list (and the
/// module, through the test below) must learn about it.
fn all_steps() -> Vec<&'static str> {
    [StepKind::Index, StepKind::Plan, StepKind::Generate, StepKind::Test, StepKind::Review]
        .map(|step| match step {
            StepKind::Index
            | StepKind::Plan
            | StepKind::Generate
            | StepKind::Test
            | StepKind::Review => step.as_str(),
        })
        .to_vec()
}

struct Module {
    resources: BTreeMap<(String, String), Body>,
    modules: BTreeMap<String, Body>,
    locals: BTreeMap<String, Expression>,
}

fn module(path: &str) -> Module {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/aws").join(path);
    let mut resources = BTreeMap::new();
    let mut modules = BTreeMap::new();
    let mut locals = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "tf") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let body =
            hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        for block in body.blocks() {
            match block.identifier() {
                "resource" => {
                    let [kind, name] = labels(block);
                    resources.insert((kind, name), block.body().clone());
                }
                "module" => {
                    let name = block.labels()[0].as_str().to_owned();
                    modules.insert(name, block.body().clone());
                }
                "locals" => {
                    for attribute in block.body().attributes() {
                        locals.insert(attribute.key().to_owned(), attribute.expr().clone());
                    }
                }
                _ => {}
            }
        }
    }
    assert!(files >= 3, "terraform/aws/{path} has {files} .tf files");
    Module { resources, modules, locals }
}

fn labels(block: &Block) -> [String; 2] {
    let labels: Vec<String> = block.labels().iter().map(|l| l.as_str().to_owned()).collect();
    labels.try_into().unwrap_or_else(|l: Vec<String>| panic!("labels {l:?}"))
}

impl Module {
    fn resource(&self, kind: &str, name: &str) -> &Body {
        let body = self
            .resources
            .get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("terraform/aws has no resource {kind}.{name}"));
        assert_eq!(
            attr(body, "for_each").to_string(),
            "local.steps",
            "{kind}.{name} must exist once per step (for_each = local.steps)"
        );
        body
    }
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("attribute {key} is missing"))
}

fn rendered(body: &Body, key: &str) -> String {
    attr(body, key).to_string()
}

/// The argument of `jsonencode(...)`, or the expression itself.
fn json_argument(expr: &Expression) -> &Expression {
    match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == "jsonencode" => &call.args[0],
        other => other,
    }
}

fn key_name(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Identifier(id) => id.as_str().to_owned(),
        ObjectKey::Expression(Expression::String(s)) => s.clone(),
        ObjectKey::Expression(e) => e.to_string(),
        other => panic!("an object key of a kind this test does not know: {other:?}"),
    }
}

/// Every value under an object key named `name`, anywhere in `expr`.
fn values_under<'a>(expr: &'a Expression, name: &str, out: &mut Vec<&'a Expression>) {
    match expr {
        Expression::Object(object) => {
            for (key, value) in object {
                if key_name(key) == name {
                    out.push(value);
                }
                values_under(value, name, out);
            }
        }
        Expression::Array(items) => items.iter().for_each(|e| values_under(e, name, out)),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| values_under(e, name, out)),
        Expression::Conditional(c) => {
            values_under(&c.true_expr, name, out);
            values_under(&c.false_expr, name, out);
        }
        _ => {}
    }
}

fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::String(s) => vec![s.clone()],
        Expression::Array(items) => items.iter().flat_map(strings).collect(),
        other => vec![other.to_string()],
    }
}

#[test]
fn the_root_deploys_the_team_module_once_per_team() {
    let root = module("");
    let team = root.modules.get("team").expect("terraform/aws has module \"team\"");
    assert_eq!(rendered(team, "source"), "\"./modules/cadre-team\"");
    assert_eq!(rendered(team, "for_each"), "var.teams");
}

#[test]
fn every_step_has_a_queue_dead_letter_queue_function_mapping_and_role() {
    let module = module("modules/cadre-team");
    let Expression::FuncCall(steps) = &module.locals["steps"] else {
        panic!("local.steps is toset([...])")
    };
    let mut declared = strings(&steps.args[0]);
    declared.sort();
    let mut want: Vec<String> = all_steps().into_iter().map(str::to_owned).collect();
    want.sort();
    assert_eq!(declared, want, "local.steps must list the pipeline's steps");
    let functions = module.locals["functions"].to_string();
    for step in &want {
        assert!(
            functions.contains(&format!("{step} ")),
            "local.functions has no settings for {step}"
        );
    }

    let dead = module.resource("aws_sqs_queue", "dead_letter");
    assert_eq!(rendered(dead, "fifo_queue"), "true");
    let queue = module.resource("aws_sqs_queue", "step");
    assert_eq!(rendered(queue, "fifo_queue"), "true", "steps' queues are FIFO: one task in order");
    let redrive = json_argument(attr(queue, "redrive_policy"));
    let mut target = Vec::new();
    values_under(redrive, "deadLetterTargetArn", &mut target);
    assert_eq!(target.len(), 1, "the redrive policy names a dead-letter queue");
    assert_eq!(target[0].to_string(), "aws_sqs_queue.dead_letter[each.key].arn");
    let mut max = Vec::new();
    values_under(redrive, "maxReceiveCount", &mut max);
    assert_eq!(max.len(), 1, "the redrive policy has a maxReceiveCount");

    let function = module.resource("aws_lambda_function", "step");
    assert_eq!(rendered(function, "role"), "aws_iam_role.step[each.key].arn");
    let environment =
        function.blocks().find(|b| b.identifier() == "environment").expect("environment");
    let variables = rendered(environment.body(), "variables");
    assert!(variables.contains("aws_sqs_queue.step[each.key].url"), "{variables}");
    assert!(variables.contains("CADRE_SQS_ROUTES"), "{variables}");

    let mapping = module.resource("aws_lambda_event_source_mapping", "step");
    assert_eq!(rendered(mapping, "event_source_arn"), "aws_sqs_queue.step[each.key].arn");
    assert_eq!(rendered(mapping, "function_name"), "aws_lambda_function.step[each.key].arn");
    assert_eq!(strings(attr(mapping, "function_response_types")), ["ReportBatchItemFailures"]);

    module.resource("aws_iam_role", "step");
    let policy = module.resource("aws_iam_role_policy", "step");
    assert_eq!(rendered(policy, "role"), "aws_iam_role.step[each.key].id");
    let document = json_argument(attr(policy, "policy"));
    let mut actions = Vec::new();
    values_under(document, "Action", &mut actions);
    let actions: Vec<String> = actions.into_iter().flat_map(strings).collect();
    assert!(actions.contains(&"sqs:ReceiveMessage".to_owned()), "{actions:?}");
    assert!(actions.contains(&"sqs:SendMessage".to_owned()), "{actions:?}");
    for action in &actions {
        assert!(!action.contains('*'), "least privilege: action {action:?} has a wildcard");
    }
    let mut resources = Vec::new();
    values_under(document, "Resource", &mut resources);
    assert_eq!(resources.len(), 5, "every statement names its resources");
    for resource in resources.into_iter().flat_map(strings) {
        assert_ne!(resource, "*", "least privilege: a statement on every resource");
        assert!(!resource.contains("/index/*"), "least privilege: name the indexes: {resource}");
    }
}

/// The one statement whose `Sid` is `sid`.
fn statement<'a>(document: &'a Expression, sid: &str) -> &'a hcl::Object<ObjectKey, Expression> {
    let mut found = Vec::new();
    values_under(document, "Statement", &mut found);
    let mut objects = Vec::new();
    for statements in found {
        collect_objects(statements, &mut objects);
    }
    objects
        .into_iter()
        .find(|o| o.iter().any(|(k, v)| key_name(k) == "Sid" && strings(v) == [sid]))
        .unwrap_or_else(|| panic!("the step policy has no statement {sid}"))
}

fn collect_objects<'a>(
    expr: &'a Expression,
    out: &mut Vec<&'a hcl::Object<ObjectKey, Expression>>,
) {
    match expr {
        Expression::Object(object) => out.push(object),
        Expression::Array(items) => items.iter().for_each(|e| collect_objects(e, out)),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| collect_objects(e, out)),
        Expression::Conditional(c) => {
            collect_objects(&c.true_expr, out);
            collect_objects(&c.false_expr, out);
        }
        _ => {}
    }
}

fn field<'a>(object: &'a hcl::Object<ObjectKey, Expression>, name: &str) -> &'a Expression {
    object
        .iter()
        .find(|(k, _)| key_name(k) == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {object:?}"))
}

#[test]
fn the_state_table_is_the_one_the_store_writes_and_each_role_may_only_use_it() {
    use cadre_aws::dynamodb::{
        CREATED_AT, INDEX_BY_CREATED, INDEX_BY_ID, KIND, PARTITION_KEY, SORT_KEY, TASK_ID,
        USAGE_AT, USAGE_BY_TIME, USAGE_KIND,
    };
    let module = module("modules/cadre-team");
    let table = module
        .resources
        .get(&("aws_dynamodb_table".to_owned(), "state".to_owned()))
        .expect("terraform/aws has aws_dynamodb_table.state, one per team");
    assert_eq!(rendered(table, "billing_mode"), "\"PAY_PER_REQUEST\"", "on-demand billing");
    assert_eq!(strings(attr(table, "hash_key")), [PARTITION_KEY]);
    assert_eq!(strings(attr(table, "range_key")), [SORT_KEY]);
    let attributes: BTreeMap<String, String> = table
        .blocks()
        .filter(|b| b.identifier() == "attribute")
        .map(|b| {
            (strings(attr(b.body(), "name"))[0].clone(), strings(attr(b.body(), "type"))[0].clone())
        })
        .collect();
    let want: BTreeMap<String, String> = [
        (PARTITION_KEY, "S"),
        (SORT_KEY, "S"),
        (KIND, "S"),
        (CREATED_AT, "N"),
        (TASK_ID, "S"),
        (USAGE_KIND, "S"),
        (USAGE_AT, "N"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(attributes, want, "the key attributes and their types");
    let indexes: BTreeMap<String, (String, String)> = table
        .blocks()
        .filter(|b| b.identifier() == "global_secondary_index")
        .map(|b| {
            let get = |key: &str| strings(attr(b.body(), key))[0].clone();
            (get("name"), (get("hash_key"), get("range_key")))
        })
        .collect();
    let want: BTreeMap<String, (String, String)> = [
        (INDEX_BY_CREATED, (KIND, CREATED_AT)),
        (INDEX_BY_ID, (KIND, TASK_ID)),
        (USAGE_BY_TIME, (USAGE_KIND, USAGE_AT)),
    ]
    .into_iter()
    .map(|(name, (hash, range))| (name.to_owned(), (hash.to_owned(), range.to_owned())))
    .collect();
    assert_eq!(indexes, want, "the indexes the store and the usage ledger query");

    let function = module.resource("aws_lambda_function", "step");
    let environment =
        function.blocks().find(|b| b.identifier() == "environment").expect("environment");
    let variables = rendered(environment.body(), "variables");
    assert!(
        variables.contains("CADRE_STATE") && variables.contains("aws_dynamodb_table.state.name"),
        "every function is told the table: {variables}"
    );

    let policy = module.resource("aws_iam_role_policy", "step");
    let document = json_argument(attr(policy, "policy"));
    let state = statement(document, "TaskState");
    let mut actions = strings(field(state, "Action"));
    actions.sort();
    assert_eq!(
        actions,
        [
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem"
        ],
        "only the calls the store, ledger and cache make (transactions are puts and updates)"
    );
    let resources = strings(field(state, "Resource"));
    assert_eq!(resources.len(), 4, "{resources:?}");
    assert_eq!(resources[0], "aws_dynamodb_table.state.arn");
    for (resource, index) in
        resources[1..].iter().zip([INDEX_BY_CREATED, INDEX_BY_ID, USAGE_BY_TIME])
    {
        assert!(
            resource.contains("aws_dynamodb_table.state.arn")
                && resource.trim_matches('"').ends_with(&format!("/index/{index}")),
            "{resource}"
        );
    }
}
