//! Context assembly for an agent: map, chunks and memories within a budget, without duplicates.

use cadre_domain::ports::knowledge::{
    estimate_tokens, ContextChoice, ContextRequest, IndexScope, KnowledgeBase, MemoryKind,
    NewMemory,
};
use cadre_domain::Timestamp;

use crate::index::REPO;
use crate::support::Fixture;

#[tokio::test]
async fn context_fits_the_budget_has_no_overlaps_and_records_its_choices() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let note = NewMemory {
        kind: MemoryKind::Convention,
        title: "Configuration is parsed once".into(),
        body: "parse_config runs at start-up; never re-read the config file.".into(),
        tags: vec![],
        task: None,
        verdict: None,
        at: Timestamp(1),
    };
    let id = f.kb.remember(&f.key, &note).await.unwrap();

    let request = ContextRequest::new("make parse_config accept a verbose flag", 600);
    let ctx = f.kb.assemble_context(&f.key, &request).await.unwrap();
    assert!(ctx.tokens <= 600, "{}", ctx.tokens);
    assert_eq!(ctx.memories.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    assert!(ctx.map.is_some());
    assert_eq!(ctx.chunks[0].chunk.symbol.as_deref(), Some("parse_config"));
    for (i, a) in ctx.chunks.iter().enumerate() {
        for b in &ctx.chunks[i + 1..] {
            let overlap = a.chunk.path == b.chunk.path
                && a.chunk.start_line <= b.chunk.end_line
                && b.chunk.start_line <= a.chunk.end_line;
            assert!(!overlap && a.chunk.id != b.chunk.id, "{a:?} / {b:?}");
        }
    }
    let chosen_tokens: usize = ctx
        .choices
        .iter()
        .map(|c| match c {
            ContextChoice::Map { tokens, .. }
            | ContextChoice::Chunk { tokens, .. }
            | ContextChoice::Memory { tokens, .. } => *tokens,
        })
        .sum();
    assert_eq!(chosen_tokens, ctx.tokens);
    assert_eq!(ctx.choices.len(), ctx.chunks.len() + ctx.memories.len() + 1);
    let text = ctx.render();
    assert!(
        text.contains("## src/config.rs:1-5") && text.contains("Configuration is parsed once"),
        "{text}"
    );
    assert!(estimate_tokens(&text) <= 600 + 20, "render adds only section headers");
    let recorded = serde_json::to_string(&ctx.choices).unwrap();
    assert!(recorded.contains("\"item\":\"chunk\""), "{recorded}");
}

#[tokio::test]
async fn a_tiny_budget_chooses_less_but_never_more() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    for budget in [0, 10, 40, 120] {
        let ctx =
            f.kb.assemble_context(&f.key, &ContextRequest::new("verbose config server", budget))
                .await
                .unwrap();
        assert!(ctx.tokens <= budget, "{budget}: {}", ctx.tokens);
    }
}
