//! The compact encoding of a file's references: for each name used, how often and on which lines.
//! One value per blob instead of one row per use keeps millions of uses out of SQLite's tables.
//!
//! Encoding: repeated `name_len varint, name bytes, count varint, n_lines varint, line deltas varint`.

/// Encodes `(name, count, lines)` triples.
pub(crate) fn encode(refs: &[(String, u32, Vec<u32>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * 12);
    for (name, count, lines) in refs {
        put(&mut out, u32::try_from(name.len()).unwrap_or(0));
        out.extend_from_slice(name.as_bytes());
        put(&mut out, *count);
        put(&mut out, u32::try_from(lines.len()).unwrap_or(0));
        let mut prev = 0;
        for &line in lines {
            put(&mut out, line.saturating_sub(prev));
            prev = line;
        }
    }
    out
}

/// Calls `f(name, count, lines)` for each encoded entry; stops at the first malformed one.
pub(crate) fn decode(bytes: &[u8], mut f: impl FnMut(&str, u32, &mut dyn Iterator<Item = u32>)) {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(len) = get(bytes, &mut pos) else { return };
        let Some(name) = bytes.get(pos..pos + len as usize) else { return };
        pos += len as usize;
        let (Some(count), Some(n)) = (get(bytes, &mut pos), get(bytes, &mut pos)) else { return };
        let mut lines = Vec::with_capacity(n as usize);
        let mut prev = 0u32;
        for _ in 0..n {
            let Some(delta) = get(bytes, &mut pos) else { return };
            prev = prev.saturating_add(delta);
            lines.push(prev);
        }
        let name = std::str::from_utf8(name).unwrap_or("");
        f(name, count, &mut lines.into_iter());
    }
}

fn put(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

fn get(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let refs = vec![("parse".to_owned(), 3, vec![1, 7, 300]), ("Ünï".to_owned(), 1, vec![2])];
        let mut back = Vec::new();
        decode(&encode(&refs), |n, c, lines| back.push((n.to_owned(), c, lines.collect())));
        assert_eq!(back, refs);
        let mut count = 0;
        decode(&[5, b'a'], |_, _, _| count += 1);
        assert_eq!(count, 0, "truncated input yields nothing");
    }
}
