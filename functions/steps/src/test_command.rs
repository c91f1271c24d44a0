//! Finding the command that runs a repository's tests, from the files it has.

/// The test command for a repository with these files, or `None` when nothing is recognised.
/// `read` gives a file's text, to look inside manifests (e.g. a `test` script in `package.json`).
#[must_use]
pub fn detect(files: &[String], read: impl Fn(&str) -> Option<String>) -> Option<String> {
    let has = |name: &str| files.iter().any(|f| f == name);
    let any_file =
        |pred: &dyn Fn(&str) -> bool| files.iter().any(|f| pred(f.rsplit('/').next().unwrap_or(f)));
    if has("Cargo.toml") {
        return Some("cargo test".into());
    }
    if has("go.mod") {
        return Some("go test ./...".into());
    }
    if has("package.json") && read("package.json").is_some_and(|t| t.contains("\"test\"")) {
        return Some("npm test".into());
    }
    let pytest_configured = has("pytest.ini")
        || has("conftest.py")
        || read("pyproject.toml").is_some_and(|t| t.contains("[tool.pytest"))
        || read("setup.cfg").is_some_and(|t| t.contains("[tool:pytest]"))
        || read("tox.ini").is_some_and(|t| t.contains("[pytest]"));
    if pytest_configured {
        return Some("python3 -m pytest -q".into());
    }
    if any_file(&|name| {
        name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
    }) {
        return Some("python3 -m unittest discover -v".into());
    }
    if has("pom.xml") {
        return Some("mvn -q test".into());
    }
    if has("Makefile")
        && read("Makefile").is_some_and(|t| t.lines().any(|l| l.starts_with("test:")))
    {
        return Some("make test".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn recognises_common_layouts() {
        let none = |_: &str| None;
        assert_eq!(
            detect(&names(&["Cargo.toml", "src/lib.rs"]), none).as_deref(),
            Some("cargo test")
        );
        assert_eq!(
            detect(&names(&["calc.py", "test_calc.py"]), none).as_deref(),
            Some("python3 -m unittest discover -v")
        );
        assert_eq!(
            detect(&names(&["pyproject.toml", "x.py"]), |_| Some(
                "[tool.pytest.ini_options]".into()
            ))
            .as_deref(),
            Some("python3 -m pytest -q")
        );
        assert_eq!(detect(&names(&["package.json"]), |_| Some("{\"name\":1}".into())), None);
        assert_eq!(
            detect(&names(&["Makefile"]), |_| Some("all:\ntest:\n\tsh t.sh\n".into())).as_deref(),
            Some("make test")
        );
        assert_eq!(detect(&names(&["README.md"]), none), None);
    }
}
