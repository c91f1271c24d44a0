//! What Cadre prints for people goes to stdout through here; logs go to stderr through `tracing`.

use std::io::Write;

/// Prints one line to stdout. A closed pipe (e.g. `cadre status | head`) is not an error worth a panic.
pub(crate) fn line(text: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.as_ref());
}
