//! The repository map: ranked by use, within its token budget.

use cadre_domain::ports::knowledge::{estimate_tokens, IndexScope, KnowledgeBase, MapRequest};

use crate::support::Fixture;

const REPO: &str = r#"
//- /src/core.rs
pub fn shared_helper(x: u32) -> u32 {
    x + 1
}
//- /src/a.rs
pub fn first_user() -> u32 {
    crate::core::shared_helper(1)
}
//- /src/b.rs
pub fn second_user() -> u32 {
    crate::core::shared_helper(2) + crate::core::shared_helper(3)
}
//- /src/c.rs
pub fn third_user() -> u32 {
    crate::core::shared_helper(4)
}
//- /src/util.rs
pub fn focused_utility() -> u32 {
    7
}
//- /src/d.rs
pub fn focused_caller() -> u32 {
    crate::util::focused_utility()
}
"#;

#[tokio::test]
async fn the_most_used_file_comes_first_and_the_budget_holds() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let map =
        f.kb.repo_map(&f.key, &MapRequest { token_budget: 400, ..Default::default() })
            .await
            .unwrap();
    assert_eq!(map.files[0].path, "src/core.rs", "{}", map.text);
    assert_eq!(map.files[0].symbols[0].name, "shared_helper");
    assert!(
        map.text.starts_with("src/core.rs:\n     1: pub fn shared_helper(x: u32) -> u32\n"),
        "{}",
        map.text
    );
    assert_eq!(map.tokens, estimate_tokens(&map.text));
    assert!(map.tokens <= 400 && !map.truncated, "{map:?}");

    let small =
        f.kb.repo_map(&f.key, &MapRequest { token_budget: 20, ..Default::default() })
            .await
            .unwrap();
    assert!(small.tokens <= 20 && small.truncated, "{small:?}");
    assert_eq!(small.files.len(), 1);
    let none =
        f.kb.repo_map(&f.key, &MapRequest { token_budget: 0, ..Default::default() }).await.unwrap();
    assert!(none.files.is_empty() && none.tokens == 0);
}

#[tokio::test]
async fn focus_on_a_file_ranks_what_it_uses() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let request = MapRequest {
        token_budget: 400,
        focus_paths: vec!["src/d.rs".into()],
        focus_symbols: vec![],
    };
    let map = f.kb.repo_map(&f.key, &request).await.unwrap();
    assert_eq!(map.files[0].path, "src/util.rs", "{}", map.text);
    let request = MapRequest {
        token_budget: 400,
        focus_paths: vec![],
        focus_symbols: vec!["third_user".into()],
    };
    let map = f.kb.repo_map(&f.key, &request).await.unwrap();
    assert_eq!(map.files[0].path, "src/c.rs", "{}", map.text);
}

#[tokio::test]
async fn the_map_follows_changes_to_the_files() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let request = MapRequest { token_budget: 400, ..Default::default() };
    assert_eq!(f.kb.repo_map(&f.key, &request).await.unwrap().files[0].path, "src/core.rs");
    for user in ["a", "b", "c"] {
        f.write(
            &format!("src/{user}.rs"),
            "pub fn user() -> u32 {\n    crate::util::focused_utility()\n}\n",
        );
    }
    f.index(IndexScope::Changed).await;
    let map = f.kb.repo_map(&f.key, &request).await.unwrap();
    assert_eq!(map.files[0].path, "src/util.rs", "{}", map.text);
}
