//! The strict edit format the model must answer `generate` in, and its parser and in-memory applier.
//!
//! ```text
//! path/to/file.py
//! <<<<<<< SEARCH
//! lines copied exactly from the file
//! =======
//! the lines that replace them
//! >>>>>>> REPLACE
//! ```
//!
//! An empty SEARCH section creates a file (which must not exist yet, or be empty). Blocks apply in
//! order, each to the result of the previous ones. Application is all-or-nothing: every block is
//! checked, and when any fails nothing is written and all the problems are reported back to the model.
//! Search/replace blocks were chosen over unified diffs because models copy lines far more reliably
//! than they count line numbers for hunk headers.

use std::collections::BTreeMap;

const SEARCH: &str = "<<<<<<< SEARCH";
const DIVIDER: &str = "=======";
const REPLACE: &str = ">>>>>>> REPLACE";

/// One parsed edit block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditBlock {
    /// Repository-relative path.
    pub path: String,
    /// Text to find (empty: create the file).
    pub search: String,
    /// Text to put in its place.
    pub replace: String,
}

/// A problem with the model's edits, phrased for the model to correct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The reply holds no edit block.
    #[error("the reply contains no edit blocks; answer with one or more SEARCH/REPLACE blocks")]
    NoBlocks,
    /// A block is not well formed.
    #[error("block {block}: {why}")]
    Malformed {
        /// 1-based block number.
        block: usize,
        /// What is wrong.
        why: String,
    },
    /// The SEARCH text is not in the file.
    #[error("block {block}: the SEARCH text was not found in `{path}`; copy the existing lines exactly, including indentation")]
    NotFound {
        /// 1-based block number.
        block: usize,
        /// The file.
        path: String,
    },
    /// The SEARCH text occurs more than once.
    #[error("block {block}: the SEARCH text occurs {count} times in `{path}`; include more surrounding lines so it is unique")]
    Ambiguous {
        /// 1-based block number.
        block: usize,
        /// The file.
        path: String,
        /// How often it occurs.
        count: usize,
    },
    /// The file does not exist and the SEARCH is not empty.
    #[error("block {block}: `{path}` does not exist; to create it use an empty SEARCH section")]
    MissingFile {
        /// 1-based block number.
        block: usize,
        /// The file.
        path: String,
    },
    /// An empty SEARCH targets a file that already has content.
    #[error("block {block}: `{path}` already exists and is not empty; an empty SEARCH only creates new files")]
    FileExists {
        /// 1-based block number.
        block: usize,
        /// The file.
        path: String,
    },
}

/// Parses every edit block in `reply`. Text outside blocks (explanations, code fences) is ignored.
///
/// # Errors
/// Returns every malformed block found, or [`EditError::NoBlocks`].
pub fn parse(reply: &str) -> Result<Vec<EditBlock>, Vec<EditError>> {
    let lines: Vec<&str> = reply.lines().collect();
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != SEARCH {
            i += 1;
            continue;
        }
        let number = blocks.len() + errors.len() + 1;
        let path = path_before(&lines, i);
        let Some(divider) = find_line(&lines, i + 1, DIVIDER) else {
            errors.push(EditError::Malformed {
                block: number,
                why: format!("`{SEARCH}` without a `{DIVIDER}` line"),
            });
            break;
        };
        let Some(end) = find_line(&lines, divider + 1, REPLACE) else {
            errors.push(EditError::Malformed {
                block: number,
                why: format!("`{DIVIDER}` without a `{REPLACE}` line"),
            });
            break;
        };
        if let Some(nested) = find_line(&lines[..divider], i + 1, SEARCH) {
            errors.push(EditError::Malformed {
                block: number,
                why: format!("a second `{SEARCH}` on line {} before `{DIVIDER}`", nested + 1),
            });
            i = nested;
            continue;
        }
        match path {
            Some(path) => blocks.push(EditBlock {
                path,
                search: join(&lines[i + 1..divider]),
                replace: join(&lines[divider + 1..end]),
            }),
            None => errors.push(EditError::Malformed {
                block: number,
                why: "the line before `<<<<<<< SEARCH` must be the file's path".into(),
            }),
        }
        i = end + 1;
    }
    if errors.is_empty() && blocks.is_empty() {
        errors.push(EditError::NoBlocks);
    }
    if errors.is_empty() {
        Ok(blocks)
    } else {
        Err(errors)
    }
}

/// The file's path on the line before a block, with decoration models like to add stripped
/// (code fences, backticks, bold, a `File:` prefix).
fn path_before(lines: &[&str], search_line: usize) -> Option<String> {
    let mut j = search_line;
    while j > 0 {
        j -= 1;
        let raw = lines[j].trim();
        if raw.is_empty() || raw.starts_with("```") {
            continue;
        }
        let cleaned =
            raw.trim_start_matches("File:").trim().trim_matches(|c| c == '`' || c == '*').trim();
        let plausible =
            !cleaned.is_empty() && !cleaned.contains(char::is_whitespace) && cleaned != REPLACE;
        return plausible.then(|| cleaned.trim_start_matches("./").to_owned());
    }
    None
}

fn find_line(lines: &[&str], from: usize, marker: &str) -> Option<usize> {
    (from..lines.len()).find(|&k| lines[k].trim_end() == marker)
}

fn join(lines: &[&str]) -> String {
    let mut s = String::new();
    for line in lines {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Applies blocks to file contents in memory. `files` maps each path to its current text (`None`: the
/// file does not exist); it must hold every path the blocks name. Returns the new contents of the
/// files that changed.
///
/// # Errors
/// Returns every block that does not apply; nothing is changed then.
pub fn apply(
    blocks: &[EditBlock],
    files: &BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, String>, Vec<EditError>> {
    let mut current: BTreeMap<String, Option<String>> = files.clone();
    let mut errors = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let number = index + 1;
        let text = current.get(&block.path).cloned().flatten();
        match (text, block.search.is_empty()) {
            (None, true) => {
                current.insert(block.path.clone(), Some(block.replace.clone()));
            }
            (Some(existing), true) if existing.trim().is_empty() => {
                current.insert(block.path.clone(), Some(block.replace.clone()));
            }
            (Some(_), true) => {
                errors.push(EditError::FileExists { block: number, path: block.path.clone() })
            }
            (None, false) => {
                errors.push(EditError::MissingFile { block: number, path: block.path.clone() })
            }
            (Some(existing), false) => match replace_once(&existing, &block.search, &block.replace)
            {
                Ok(updated) => {
                    current.insert(block.path.clone(), Some(updated));
                }
                Err(0) => {
                    errors.push(EditError::NotFound { block: number, path: block.path.clone() })
                }
                Err(count) => {
                    errors.push(EditError::Ambiguous {
                        block: number,
                        path: block.path.clone(),
                        count,
                    });
                }
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(current
        .into_iter()
        .filter_map(|(path, text)| {
            let text = text?;
            let changed = files.get(&path).cloned().flatten().as_deref() != Some(text.as_str());
            changed.then_some((path, text))
        })
        .collect())
}

/// Replaces the single occurrence of `search`; `Err(count)` when it occurs 0 or several times.
/// A file without a final newline still matches a SEARCH whose last line is the file's last line.
fn replace_once(text: &str, search: &str, replace: &str) -> Result<String, usize> {
    let count = text.matches(search).count();
    if count == 1 {
        return Ok(text.replacen(search, replace, 1));
    }
    if count == 0 && !text.ends_with('\n') {
        let padded = format!("{text}\n");
        if padded.matches(search).count() == 1 {
            return Ok(padded.replacen(search, replace, 1));
        }
    }
    Err(count)
}

/// Renders errors as one message for the model.
#[must_use]
pub fn describe(errors: &[EditError]) -> String {
    errors.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn files(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        entries.iter().map(|(p, t)| ((*p).to_owned(), t.map(str::to_owned))).collect()
    }

    #[test]
    fn parses_blocks_with_decorated_paths_and_fences() {
        let reply = "Here is the fix.\n\n**src/lib.py**\n```python\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n```\n\n`new/file.txt`\n<<<<<<< SEARCH\n=======\nhello\n>>>>>>> REPLACE\n";
        let blocks = parse(reply).unwrap();
        expect![[r#"
            [
                EditBlock {
                    path: "src/lib.py",
                    search: "def add(a, b):\n    return a - b\n",
                    replace: "def add(a, b):\n    return a + b\n",
                },
                EditBlock {
                    path: "new/file.txt",
                    search: "",
                    replace: "hello\n",
                },
            ]
        "#]]
        .assert_debug_eq(&blocks);
    }

    #[test]
    fn reports_malformed_and_missing_blocks() {
        assert_eq!(parse("no edits here").unwrap_err(), vec![EditError::NoBlocks]);
        let errors = parse("a.txt\n<<<<<<< SEARCH\nx\n=======\ny\n").unwrap_err();
        expect![[r#"- block 1: `=======` without a `>>>>>>> REPLACE` line"#]]
            .assert_eq(&describe(&errors));
        let errors = parse("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n").unwrap_err();
        expect![[r#"- block 1: the line before `<<<<<<< SEARCH` must be the file's path"#]]
            .assert_eq(&describe(&errors));
    }

    #[test]
    fn applies_in_order_and_all_or_nothing() {
        let before = files(&[("a.py", Some("x = 1\ny = 2\n")), ("b.py", None)]);
        let ok = parse(
            "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 10\n>>>>>>> REPLACE\na.py\n<<<<<<< SEARCH\nx = 10\ny = 2\n=======\nx = 10\ny = 20\n>>>>>>> REPLACE\nb.py\n<<<<<<< SEARCH\n=======\nz = 3\n>>>>>>> REPLACE\n",
        )
        .unwrap();
        let after = apply(&ok, &before).unwrap();
        assert_eq!(after.get("a.py").unwrap(), "x = 10\ny = 20\n");
        assert_eq!(after.get("b.py").unwrap(), "z = 3\n");

        let bad = parse(
            "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 5\n>>>>>>> REPLACE\na.py\n<<<<<<< SEARCH\nnope\n=======\n>>>>>>> REPLACE\nc.py\n<<<<<<< SEARCH\nq\n=======\n>>>>>>> REPLACE\n",
        )
        .unwrap();
        let mut with_c = before.clone();
        with_c.insert("c.py".into(), None);
        expect![[r#"
            - block 2: the SEARCH text was not found in `a.py`; copy the existing lines exactly, including indentation
            - block 3: `c.py` does not exist; to create it use an empty SEARCH section"#]]
        .assert_eq(&describe(&apply(&bad, &with_c).unwrap_err()));
    }

    #[test]
    fn ambiguous_search_is_refused_and_missing_final_newline_matches() {
        let before = files(&[("a.py", Some("pass\npass\n")), ("b.py", Some("end"))]);
        let blocks = parse("a.py\n<<<<<<< SEARCH\npass\n=======\nx\n>>>>>>> REPLACE\n").unwrap();
        assert!(matches!(
            apply(&blocks, &before).unwrap_err()[0],
            EditError::Ambiguous { count: 2, .. }
        ));
        let blocks = parse("b.py\n<<<<<<< SEARCH\nend\n=======\nfin\n>>>>>>> REPLACE\n").unwrap();
        assert_eq!(apply(&blocks, &before).unwrap().get("b.py").unwrap(), "fin\n");
    }
}
