//! A secrets scan over a unified diff's added lines: credentials a patch would commit.
//!
//! Fixed-format tokens are matched exactly (AWS access key ids, private key blocks, GitHub,
//! GitLab and Slack tokens, Slack webhooks, Google API keys); free-form `password = "…"` /
//! `secret: …` assignments count only when the value has high entropy and is not an obvious
//! placeholder (`changeme`, `<your-token>`, `${ENV}`, `os.environ[…]`, AWS's documented
//! `AKIAIOSFODNN7EXAMPLE`, …). Only added lines are read: a patch that removes a secret is not
//! blamed for it. A finding never repeats the secret: it shows four characters and a length.

use super::{Finding, Severity};

/// Scans the `+` lines of `diff`; locations are the new file's path and line.
#[must_use]
pub fn scan_diff(diff: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut file: Option<String> = None;
    let mut line_no: u32 = 0;
    for line in diff.lines() {
        if let Some(path) = line.strip_prefix("+++ ") {
            let path = path.split('\t').next().unwrap_or(path).trim();
            file =
                (path != "/dev/null").then(|| path.strip_prefix("b/").unwrap_or(path).to_owned());
        } else if line.starts_with("--- ") || line.starts_with("diff ") {
            continue;
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            // `@@ -a,b +c,d @@`: the next new line is c.
            line_no = hunk
                .split_whitespace()
                .find_map(|w| w.strip_prefix('+'))
                .and_then(|w| w.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        } else if let Some(added) = line.strip_prefix('+') {
            for (rule, what, secret) in scan_line(added) {
                findings.push(Finding {
                    tool: "secrets".to_owned(),
                    severity: Severity::Error,
                    file: file.clone(),
                    line: Some(line_no),
                    rule: rule.to_owned(),
                    message: format!(
                        "possible {what} added ({}); remove it, rotate it, and read it from the \
                         environment or a secret store instead",
                        redact(secret)
                    ),
                });
            }
            line_no += 1;
        } else if line.starts_with(' ') || line.is_empty() {
            line_no += 1;
        }
    }
    findings
}

/// The secrets on one line: (rule, what it is, the matched text).
fn scan_line(line: &str) -> Vec<(&'static str, &'static str, &str)> {
    let mut found = Vec::new();
    let upper = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let token = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    for prefix in
        ["AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"]
    {
        for t in tokens(line, prefix, upper, 16, 16) {
            if !t.contains("EXAMPLE") {
                found.push(("aws-access-key-id", "AWS access key id", t));
            }
        }
    }
    if let Some(at) = line.find("-----BEGIN ") {
        let rest = &line[at..];
        if rest.contains("PRIVATE KEY") && rest[11..].contains("-----") {
            found.push(("private-key", "private key block", rest));
        }
    }
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        for t in tokens(line, prefix, alnum, 36, 255) {
            found.push(("github-token", "GitHub token", t));
        }
    }
    for t in tokens(line, "github_pat_", |b| alnum(b) || b == b'_', 60, 255) {
        found.push(("github-token", "GitHub fine-grained token", t));
    }
    for t in tokens(line, "glpat-", token, 20, 255) {
        found.push(("gitlab-token", "GitLab personal access token", t));
    }
    for prefix in ["xoxb-", "xoxa-", "xoxp-", "xoxo-", "xoxr-", "xoxs-", "xapp-"] {
        for t in tokens(line, prefix, |b| alnum(b) || b == b'-', 10, 255) {
            found.push(("slack-token", "Slack token", t));
        }
    }
    for t in tokens(line, "https://hooks.slack.com/services/", |b| alnum(b) || b == b'/', 20, 255) {
        found.push(("slack-webhook", "Slack webhook URL", t));
    }
    for t in tokens(line, "AIza", token, 35, 35) {
        found.push(("google-api-key", "Google API key", t));
    }
    if found.is_empty() {
        if let Some(value) = generic_assignment(line) {
            found.push(("generic-secret", "hard-coded secret", value));
        }
    }
    found
}

/// Every `prefix` + `min..=max` characters of `class` in `line`, standing alone (no word
/// character right before or after). Returned with the prefix.
fn tokens<'a>(
    line: &'a str,
    prefix: &str,
    class: impl Fn(u8) -> bool,
    min: usize,
    max: usize,
) -> Vec<&'a str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(prefix).map(|i| i + from) {
        from = at + prefix.len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let body = bytes[from..].iter().take_while(|&&b| class(b)).count();
        if (min..=max).contains(&body) {
            out.push(&line[at..from + body]);
        }
        from += body;
    }
    out
}

/// Names whose value is a secret, matched at the end of an identifier (`DB_PASSWORD`,
/// `clientSecret`, `"api-key"`).
const SECRET_NAMES: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "clientsecret",
    "authtoken",
    "credentials",
];

/// Values that are obviously not real secrets.
const PLACEHOLDERS: [&str; 24] = [
    "example",
    "changeme",
    "change_me",
    "placeholder",
    "dummy",
    "sample",
    "your",
    "xxxx",
    "****",
    "redacted",
    "todo",
    "fixme",
    "fake",
    "test",
    "secret",
    "password",
    "<",
    ">",
    "${",
    "{{",
    "$(",
    "%(",
    "...",
    "replace",
];

/// The value of `name = "value"` / `name: value` / `name := "value"` when `name` is a secret's
/// name and the value looks like a real secret: long enough, high entropy, not a placeholder, not
/// a variable or a call.
fn generic_assignment(line: &str) -> Option<&str> {
    let at = line.find(['=', ':'])?;
    let (left, right) = (&line[..at], &line[at + 1..]);
    let name: String = left
        .trim_end()
        .trim_end_matches(['"', '\''])
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .next()?
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if !SECRET_NAMES.iter().any(|s| name.ends_with(s)) {
        return None;
    }
    let right = right.trim_start_matches('=').trim();
    let quoted = right.starts_with(['"', '\'', '`']);
    let value = if quoted {
        let quote = right.chars().next()?;
        let inner = &right[1..];
        &inner[..inner.find(quote)?]
    } else {
        right.split([' ', ',', ';', '#']).next()?
    };
    let lower = value.to_ascii_lowercase();
    let is_reference = !quoted
        && (value.chars().all(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
            || value.contains('(')
            || value.starts_with('$'));
    let is_placeholder = PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || value.chars().all(|c| value.starts_with(c))
        || lower.contains("env");
    if value.len() < 8 || is_reference || is_placeholder || entropy(value) < 3.0 {
        return None;
    }
    Some(value)
}

/// Shannon entropy of `text` in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in text.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = text.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `AKIA… (20 chars)`: enough to find it, not enough to use it.
fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}… ({} chars)", secret.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    /// A real-shaped patch (`git diff` output) adding one secret of each kind, plus placeholders
    /// and lookups that must not be reported. The secrets are random strings of the right shape.
    const DIFF: &str = r#"diff --git a/config/settings.py b/config/settings.py
index 3b18e51..a9c0f2d 100644
--- a/config/settings.py
+++ b/config/settings.py
@@ -10,6 +10,16 @@ DEBUG = False
 ALLOWED_HOSTS = ["*"]
-OLD_PASSWORD = "Zx81!qPw7#mLk2Rv"
+AWS_ACCESS_KEY_ID = "AKIAZ7VQ3RTXLMN4PQ2W"
+AWS_EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE"
+DB_PASSWORD = "q7Rz!p2Lm#x9Vt4K"
+API_TOKEN = os.environ["API_TOKEN"]
+SECRET_KEY = "changeme-please-changeme"
+password = get_password()
+client_secret: "<your-client-secret>"
+GITHUB = "ghp_R8f3kQ1zLm9XwT4vB7nY2cJ6pH0sD5aE3gUi"
+GITLAB = "glpat-Xy7Qm2Lp9Rt4Vb8Nc3Kd"
 
 def setup():
+    slack = "xoxb-2048617823-4096381927-Zk8pQ2mX7rT4vL9wN3cB"
+    hook = "https://hooks.slack.com/services/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"
+    maps = "AIzaSyD4q8Lm2Xp7Rv9Tn3Kw6Yb1Hc5Jf0Ge8Ua"
     return None
diff --git a/deploy/id_rsa b/deploy/id_rsa
new file mode 100644
--- /dev/null
+++ b/deploy/id_rsa
@@ -0,0 +1,3 @@
+-----BEGIN OPENSSH PRIVATE KEY-----
+b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
+-----END OPENSSH PRIVATE KEY-----
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1,2 +1,3 @@
 # Setup
+Set `password: <your password>` and `token = "${TOKEN}"` in `.env`; the default key is AKIAIOSFODNN7EXAMPLE.
"#;

    #[test]
    fn finds_each_kind_and_skips_placeholders() {
        let got: String = scan_diff(DIFF)
            .iter()
            .map(|f| {
                format!(
                    "{}:{} {} {}\n",
                    f.file.as_deref().unwrap_or("?"),
                    f.line.unwrap_or(0),
                    f.rule,
                    f.message
                )
            })
            .collect();
        expect![[r#"
            config/settings.py:11 aws-access-key-id possible AWS access key id added (AKIA… (20 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:13 generic-secret possible hard-coded secret added (q7Rz… (16 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:18 github-token possible GitHub token added (ghp_… (40 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:19 gitlab-token possible GitLab personal access token added (glpa… (26 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:22 slack-token possible Slack token added (xoxb… (47 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:23 slack-webhook possible Slack webhook URL added (http… (77 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            config/settings.py:24 google-api-key possible Google API key added (AIza… (39 chars)); remove it, rotate it, and read it from the environment or a secret store instead
            deploy/id_rsa:1 private-key possible private key block added (----… (35 chars)); remove it, rotate it, and read it from the environment or a secret store instead
        "#]]
        .assert_eq(&got);
    }

    #[test]
    fn the_secret_never_appears_in_a_finding() {
        for f in scan_diff(DIFF) {
            assert!(!f.message.contains("Z7VQ3RTX") && !f.message.contains("p2Lm#x9V"), "{f:?}");
        }
    }

    #[test]
    fn generic_assignments() {
        let hit = |l: &str| generic_assignment(l).is_some();
        assert!(hit(r#"password = "q7Rz!p2Lm#x9Vt4K""#));
        assert!(hit(r#"  "apiKey": "9f8a7c6b5d4e3f2a1b0c","#));
        assert!(hit("DB_PASSWD=Vq83kLz0pW2m"));
        assert!(hit(r#"token := "Mx4Pz9Lq2Rt7Vn3K""#));
        assert!(!hit(r#"password = "hunter2""#), "too short");
        assert!(!hit(r#"password = "aaaaaaaaaaaa""#), "one character");
        assert!(!hit(r#"password = "changeme123""#));
        assert!(!hit("password = settings.DB_PASSWORD"));
        assert!(!hit("PASSWORD=$DB_PASSWORD"));
        assert!(!hit(r#"token = "{{ vault_token }}""#));
        assert!(!hit(r#"password_length = "1234567890123""#), "not a secret's name");
        assert!(!hit("secret: process.env.SECRET"));
    }
}
