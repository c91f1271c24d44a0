//! Long-term memory: decisions, conventions and task outcomes per repository.

use cadre_domain::ports::knowledge::{
    KnowledgeBase, KnowledgeError, MemoryKind, MemoryQuery, NewMemory, RepoKey, SearchQuery,
    TaskVerdict,
};
use cadre_domain::{TaskId, Timestamp};

use crate::support::Fixture;

fn memory(kind: MemoryKind, title: &str, body: &str, at: i64) -> NewMemory {
    NewMemory {
        kind,
        title: title.into(),
        body: body.into(),
        tags: vec![],
        task: None,
        verdict: None,
        at: Timestamp(at),
    }
}

#[tokio::test]
async fn memories_are_stored_recalled_by_relevance_and_forgotten() {
    let f = Fixture::new("");
    let repo = RepoKey::new("memories-only");
    let decision = memory(
        MemoryKind::Decision,
        "Use SQLite for the queue",
        "One file, WAL mode, no server.",
        1,
    );
    let convention = memory(
        MemoryKind::Convention,
        "Error handling",
        "Libraries use thiserror enums; anyhow only in the binary.",
        2,
    );
    let mut outcome =
        memory(MemoryKind::TaskOutcome, "Add retry to the model client", "Changed infra/model.", 3);
    outcome.task = Some(TaskId::generate());
    outcome.verdict = Some(TaskVerdict::Accepted);
    outcome.tags = vec!["infra/model".into()];
    let d = f.kb.remember(&repo, &decision).await.unwrap();
    let c = f.kb.remember(&repo, &convention).await.unwrap();
    let o = f.kb.remember(&repo, &outcome).await.unwrap();

    let all = f.kb.recall(&repo, &MemoryQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.id).collect::<Vec<_>>(),
        [o, c, d],
        "newest first without a query"
    );
    assert_eq!(all[0].memory, outcome, "stored as given");

    let q = MemoryQuery {
        text: "how do we handle errors with thiserror".into(),
        kinds: vec![],
        limit: 5,
    };
    let found = f.kb.recall(&repo, &q).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [c]);
    assert!(found[0].score > 0.0);

    let q = MemoryQuery { text: String::new(), kinds: vec![MemoryKind::TaskOutcome], limit: 5 };
    assert_eq!(f.kb.recall(&repo, &q).await.unwrap().len(), 1);

    f.kb.forget(&repo, c).await.unwrap();
    let err = f.kb.forget(&repo, c).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::MemoryNotFound { id, .. } if id == c), "{err}");
    assert_eq!(f.kb.recall(&repo, &MemoryQuery::default()).await.unwrap().len(), 2);

    // Memories do not make a repository indexed.
    let err = f.kb.search(&repo, &SearchQuery::new("queue", 5)).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::NotIndexed { .. }));
}

#[tokio::test]
async fn a_repository_without_memories_recalls_nothing() {
    let f = Fixture::new("");
    let repo = RepoKey::new("nothing-here");
    assert!(f.kb.recall(&repo, &MemoryQuery::default()).await.unwrap().is_empty());
    assert!(matches!(f.kb.forget(&repo, 1).await, Err(KnowledgeError::MemoryNotFound { .. })));
}
