//! Branch names: one branch per task, `cadre/<task-id-short>-<slug-of-goal>`.

use cadre_domain::TaskId;

/// Longest slug kept, so branch names stay readable in a forge's UI.
const SLUG_MAX: usize = 40;

/// The branch of a task: `cadre/<first 8 characters of the id>-<last 6>-<slug>`, the slug being the goal's
/// first words in lowercase ASCII letters and digits joined by `-` (at most 40 characters; `change`
/// when nothing is left). Always a valid git branch name.
#[must_use]
pub fn branch_name(task: &TaskId, goal: &str) -> String {
    let mut slug = String::new();
    for word in goal.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        let extra = if slug.is_empty() { word.len() } else { word.len() + 1 };
        if slug.len() + extra > SLUG_MAX {
            if slug.is_empty() {
                slug.push_str(&word[..SLUG_MAX]);
            }
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word);
    }
    if slug.is_empty() {
        slug.push_str("change");
    }
    // A UUIDv7's first 8 characters are its clock (they change about once a minute), so two tasks
    // started together would share them: the last 6, random, keep their branches apart.
    let id = task.as_str();
    let tail = id.get(id.len().saturating_sub(6)..).unwrap_or(id);
    format!("cadre/{}-{tail}-{slug}", task.short())
}

/// Whether `name` is a branch this crate would push to: refuses what git or a URL would misread.
pub(crate) fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = TaskId::parse("0193a1b2-0000-7000-8000-00000000c0de").unwrap();
        assert_eq!(
            branch_name(&id, "Fix the parser's crash on `\"\"`!"),
            "cadre/0193a1b2-00c0de-fix-the-parser-s-crash-on"
        );
        assert_eq!(branch_name(&id, "日本語"), "cadre/0193a1b2-00c0de-change");
        assert_eq!(
            branch_name(&id, &"a".repeat(100)),
            format!("cadre/0193a1b2-00c0de-{}", "a".repeat(40))
        );
        assert!(is_valid(&branch_name(&id, "bump serde in 40 repos")));
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a//b", "a@{1}", "/a", "a/"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
