//! Repository-wide rules checked as a test (rust-analyzer's tidy): the direction of dependencies
//! between crates, and that the architecture document names every crate.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Workspace crates each crate may depend on (normal dependencies; dev-dependencies are free).
const ALLOWED: &[(&str, &[&str])] = &[
    ("functions/domain", &[]),
    ("functions/steps", &["cadre-domain"]),
    ("functions/engine", &["cadre-domain", "cadre-steps"]),
    ("functions/testkit", &["cadre-domain"]),
    ("functions/eval", &["cadre-domain"]),
    ("functions/api", &["cadre-domain", "cadre-engine"]),
    ("infra/model", &["cadre-domain"]),
    ("infra/queue", &["cadre-domain", "cadre-sqlite"]),
    ("infra/store", &["cadre-domain", "cadre-sqlite"]),
    ("infra/sandbox", &["cadre-domain"]),
    ("infra/vcs", &["cadre-domain"]),
    ("infra/forge", &["cadre-domain", "cadre-sqlite"]),
    ("infra/sqlite", &[]),
    ("infra/usage", &["cadre-domain", "cadre-sqlite"]),
    ("infra/knowledge", &["cadre-domain"]),
    ("infra/gcp", &["cadre-domain"]),
    ("infra/aws", &["cadre-domain"]),
    ("lsp", &["cadre-domain"]),
    ("acp", &["cadre-domain"]),
];

/// External crates the domain must never depend on: it does no I/O.
const DOMAIN_FORBIDDEN: &[&str] = &["tokio", "reqwest", "rusqlite", "tracing", "axum", "anyhow"];

fn normal_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some(name) =
                line.split(['=', '.', ' ']).next().filter(|n| !n.is_empty() && !n.starts_with('#'))
            {
                deps.push(name.to_owned());
            }
        }
    }
    deps
}

#[test]
fn crates_depend_only_inward() {
    let mut problems = Vec::new();
    for (dir, allowed) in ALLOWED {
        for dep in normal_dependencies(&root().join(dir).join("Cargo.toml")) {
            if dep.starts_with("cadre-") && !allowed.contains(&dep.as_str()) {
                problems.push(format!("{dir} depends on {dep}; allowed: {allowed:?}"));
            }
            if *dir == "functions/domain" && DOMAIN_FORBIDDEN.contains(&dep.as_str()) {
                problems.push(format!("cadre-domain depends on {dep}, but the domain does no I/O"));
            }
        }
    }
    assert!(problems.is_empty(), "dependency rules broken:\n{}", problems.join("\n"));
}

#[test]
fn every_workspace_crate_is_listed_and_documented() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for (dir, _) in ALLOWED {
        assert!(manifest.contains(&format!("\"{dir}\"")), "{dir} is not a workspace member");
        assert!(
            architecture.contains(&format!("`{dir}/`")),
            "ARCHITECTURE.md has no section for `{dir}/`"
        );
    }
}

#[test]
fn only_the_binary_uses_anyhow() {
    for (dir, _) in ALLOWED {
        let deps = normal_dependencies(&root().join(dir).join("Cargo.toml"));
        assert!(
            !deps.iter().any(|d| d == "anyhow"),
            "{dir} uses anyhow; libraries use thiserror enums"
        );
    }
}
