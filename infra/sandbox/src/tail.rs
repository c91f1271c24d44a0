//! The end of a command's output: a byte ring that keeps the last `limit` bytes and counts the rest.
//!
//! Failures print last, so the tail is the part worth keeping; memory stays at `limit` bytes however
//! much the command prints.

use std::collections::VecDeque;

/// The last `limit` bytes pushed, and whether anything before them was dropped.
#[derive(Debug)]
pub(crate) struct Tail {
    buf: VecDeque<u8>,
    limit: usize,
    dropped: u64,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Self {
        Tail { buf: VecDeque::new(), limit, dropped: 0 }
    }

    /// Appends `data`, dropping the oldest bytes beyond the limit.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.limit {
            self.dropped += (self.buf.len() + data.len() - self.limit) as u64;
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.limit..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.limit);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.dropped += overflow as u64;
        }
        self.buf.extend(data);
    }

    /// The kept bytes as text (invalid UTF-8 replaced), and whether anything was dropped.
    ///
    /// When the front was cut, a character split by the cut is dropped whole rather than shown as a
    /// replacement character.
    pub(crate) fn finish(self) -> (String, bool) {
        let truncated = self.dropped > 0;
        let bytes: Vec<u8> = self.buf.into_iter().collect();
        let start = if truncated {
            bytes.iter().take(3).take_while(|&&b| b & 0b1100_0000 == 0b1000_0000).count()
        } else {
            0
        };
        (String::from_utf8_lossy(&bytes[start..]).into_owned(), truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::Tail;

    fn tail(limit: usize, pushes: &[&[u8]]) -> (String, bool) {
        let mut t = Tail::new(limit);
        for p in pushes {
            t.push(p);
        }
        t.finish()
    }

    #[test]
    fn keeps_everything_under_the_limit() {
        assert_eq!(tail(10, &[b"abc", b"def"]), ("abcdef".into(), false));
        assert_eq!(tail(6, &[b"abc", b"def"]), ("abcdef".into(), false));
    }

    #[test]
    fn keeps_the_end_over_the_limit() {
        assert_eq!(tail(4, &[b"abc", b"def"]), ("cdef".into(), true));
        assert_eq!(tail(4, &[b"abcdefgh"]), ("efgh".into(), true));
        assert_eq!(tail(4, &[b"ab", b"abcdefgh", b"ij"]), ("ghij".into(), true));
        assert_eq!(tail(0, &[b"x"]), (String::new(), true));
        assert_eq!(tail(0, &[]), (String::new(), false));
    }

    #[test]
    fn a_character_cut_in_half_is_dropped_whole() {
        // "é" is two bytes; a limit of 3 keeps its second byte plus "ab".
        assert_eq!(tail(3, &["éab".as_bytes()]), ("ab".into(), true));
        assert_eq!(tail(4, &["xéab".as_bytes()]), ("éab".into(), true));
    }
}
