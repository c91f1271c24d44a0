//! Fixture repositories written from one string, and the knowledge base over them.

use std::path::{Path, PathBuf};

use cadre_domain::ports::knowledge::{
    IndexReport, IndexScope, KnowledgeBase, RepoKey, SearchQuery,
};
use cadre_knowledge::EmbeddedKnowledge;

/// A temporary repository and a knowledge base in a sibling directory.
pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) kb: EmbeddedKnowledge,
    pub(crate) key: RepoKey,
}

/// Writes files given as `//- /path` sections (rust-analyzer's fixture format).
pub(crate) fn write_files(root: &Path, fixture: &str) {
    let mut path: Option<String> = None;
    let mut body = String::new();
    let flush = |path: &Option<String>, body: &mut String| {
        if let Some(p) = path {
            let file = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body.as_bytes()).unwrap();
        }
        body.clear();
    };
    for line in fixture.lines() {
        if let Some(p) = line.strip_prefix("//- ") {
            flush(&path, &mut body);
            path = Some(p.trim().to_owned());
        } else if path.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&path, &mut body);
}

impl Fixture {
    pub(crate) fn new(fixture: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        write_files(&root, fixture);
        let data = tmp.path().join("knowledge");
        let kb = EmbeddedKnowledge::open(&data).unwrap();
        let key = EmbeddedKnowledge::repo_key(&root).unwrap();
        Fixture { _tmp: tmp, root, data, kb, key }
    }

    pub(crate) async fn index(&self, scope: IndexScope) -> IndexReport {
        self.kb.index(&self.key, &self.root, scope).await.unwrap()
    }

    pub(crate) fn write(&self, path: &str, text: &str) {
        std::fs::write(self.root.join(path), text).unwrap();
    }

    /// `path:line symbol` of the hits of a lexical search.
    pub(crate) async fn hits(&self, query: &str) -> Vec<String> {
        let mut q = SearchQuery::new(query, 10);
        q.mode = cadre_domain::ports::knowledge::SearchMode::Lexical;
        let results = self.kb.search(&self.key, &q).await.unwrap();
        results
            .hits
            .iter()
            .map(|h| {
                let symbol = h.chunk.symbol.as_deref().unwrap_or("-");
                format!("{}:{} {symbol}", h.chunk.path, h.chunk.start_line)
            })
            .collect()
    }
}
