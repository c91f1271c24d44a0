//! The code-aware tokenizer: identifiers are kept whole *and* split into their words, so
//! `parseConfigFile`, `parse_config_file` and the query "parse config" all meet.
//!
//! A word is a run of ASCII letters, digits, `_` and non-ASCII characters. Each word (2 to 64 bytes,
//! lowercased) is emitted, then, when it has several parts, each part of at least 2 bytes: parts split
//! at `_` and at case changes (`HTTPServer` → `http`, `server`), never at digits (`utf8`, `sha1`
//! stay whole). Paths need nothing special: `/` and `.` end words. Terms are 64-bit hashes (the index
//! never stores term text), which keeps the dictionary fixed-size and the index small.

/// The hash of a term: FNV-1a over the lowercased bytes, then a 64-bit finalizer so the low bits mix.
pub(crate) fn term_hash(lower_bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lower_bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finalizer.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn hash_slice(bytes: &[u8]) -> u64 {
    term_hash(bytes.iter().map(u8::to_ascii_lowercase))
}

/// The term of a whole identifier (as [`tokens`] emits it for the full word).
pub(crate) fn word_hash(word: &str) -> u64 {
    hash_slice(word.as_bytes())
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

const MIN_WORD: usize = 2;
const MAX_WORD: usize = 64;

/// Calls `emit` with every term of `text`, in order.
pub(crate) fn tokens(text: &str, mut emit: impl FnMut(u64)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        word(&bytes[start..i], &mut emit);
    }
}

fn word(raw: &[u8], emit: &mut impl FnMut(u64)) {
    let mut w = raw;
    while let [b'_', rest @ ..] = w {
        w = rest;
    }
    while let [rest @ .., b'_'] = w {
        w = rest;
    }
    if w.len() < MIN_WORD || w.len() > MAX_WORD {
        return;
    }
    // Long numbers (hashes, addresses, literals) are noise for search.
    if w.len() > 6 && w.iter().all(u8::is_ascii_digit) {
        return;
    }
    emit(hash_slice(w));
    let mut parts = 0;
    let mut first = None;
    split_parts(w, |part| {
        parts += 1;
        if parts == 1 {
            first = Some(part);
        } else {
            if let Some(f) = first.take() {
                emit_part(f, emit);
            }
            emit_part(part, emit);
        }
    });
}

fn emit_part(part: &[u8], emit: &mut impl FnMut(u64)) {
    if part.len() >= MIN_WORD {
        emit(hash_slice(part));
    }
}

/// Splits at `_` and case changes: lower→Upper (`parseConfig`), and Upper→Upper+lower (`HTTPServer`).
fn split_parts<'a>(w: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut start = 0;
    for i in 0..w.len() {
        if w[i] == b'_' {
            if i > start {
                f(&w[start..i]);
            }
            start = i + 1;
            continue;
        }
        if i > start {
            let prev = w[i - 1];
            let cur = w[i];
            let lower_to_upper =
                (prev.is_ascii_lowercase() || prev.is_ascii_digit()) && cur.is_ascii_uppercase();
            let acronym_end = prev.is_ascii_uppercase()
                && cur.is_ascii_uppercase()
                && w.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            if lower_to_upper || acronym_end {
                f(&w[start..i]);
                start = i;
            }
        }
    }
    if start < w.len() {
        f(&w[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        // Re-derive the term texts by matching hashes against candidate substrings, so the test reads
        // as words rather than numbers.
        let mut candidates: Vec<String> = Vec::new();
        for w in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            let w = w.trim_matches('_');
            candidates.push(w.to_ascii_lowercase());
            split_parts(w.as_bytes(), |p| {
                candidates.push(String::from_utf8_lossy(p).to_ascii_lowercase());
            });
        }
        let mut out = Vec::new();
        tokens(text, |h| {
            let name = candidates.iter().find(|c| word_hash(c) == h).cloned();
            out.push(name.unwrap_or_else(|| "?".into()));
        });
        out
    }

    #[test]
    fn splits_identifiers_and_keeps_them_whole() {
        assert_eq!(words("parseConfigFile"), ["parseconfigfile", "parse", "config", "file"]);
        assert_eq!(words("spawn_blocking"), ["spawn_blocking", "spawn", "blocking"]);
        assert_eq!(words("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(words("__init__"), ["init"]);
        assert_eq!(words("utf8 sha1"), ["utf8", "sha1"]);
        assert_eq!(words("src/runtime/task.rs"), ["src", "runtime", "task", "rs"]);
        assert_eq!(words("a x9 12345678 404"), ["x9", "404"]);
    }

    #[test]
    fn case_does_not_matter() {
        assert_eq!(word_hash("IndexWriter"), word_hash("indexwriter"));
        let mut a = Vec::new();
        tokens("IndexWriter", |h| a.push(h));
        let mut b = Vec::new();
        tokens("index_writer", |h| b.push(h));
        assert_eq!(a[1..], b[1..], "the parts match even though the whole words differ");
    }
}
