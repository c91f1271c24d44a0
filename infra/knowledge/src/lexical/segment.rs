//! One immutable segment of the lexical index: a doc table, a term dictionary and postings, in one file.
//!
//! Layout (little-endian):
//! ```text
//! "CKX1" | n_docs u32 | n_terms u32 | total_len u64
//! docs:  n_docs  × (chunk_id u32, doc_len u32)            ascending chunk id
//! terms: n_terms × (term u64, df u32, postings_off u32)   ascending term
//! postings: per term, df × (doc_index delta varint, tf varint)
//! ```
//! The file is read into memory whole and searched in place (binary search over the fixed-size term
//! records), so opening a segment costs one read and no parsing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const MAGIC: &[u8; 4] = b"CKX1";
const HEADER: usize = 20;
const DOC_RECORD: usize = 8;
const TERM_RECORD: usize = 16;

/// Terms are already hashes: hashing them again would only cost time.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type TermMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// A chunk's terms, ready to add: (term, frequency) pairs and the number of tokens.
#[derive(Debug, Clone, Default)]
pub(crate) struct DocTerms {
    pub(crate) terms: Vec<(u64, u32)>,
    pub(crate) len: u32,
}

impl DocTerms {
    /// Counts the terms of `text`, with `boosted` (a symbol name, a signature) counted `boost` times more.
    pub(crate) fn of(text: &str, boosted: &[&str], boost: u32) -> DocTerms {
        let mut all = Vec::with_capacity(text.len() / 5);
        super::tokenize::tokens(text, |h| all.push(h));
        let mut len = u32::try_from(all.len()).unwrap_or(u32::MAX);
        for extra in boosted {
            super::tokenize::tokens(extra, |h| {
                for _ in 0..boost {
                    all.push(h);
                }
                len = len.saturating_add(1);
            });
        }
        all.sort_unstable();
        let mut terms: Vec<(u64, u32)> = Vec::with_capacity(all.len() / 2);
        for h in all {
            match terms.last_mut() {
                Some((last, tf)) if *last == h => *tf += 1,
                _ => terms.push((h, 1)),
            }
        }
        DocTerms { terms, len }
    }
}

/// Collects documents in ascending chunk-id order and encodes a segment.
#[derive(Default)]
pub(crate) struct SegmentBuilder {
    docs: Vec<(u32, u32)>,
    postings: TermMap<Vec<(u32, u32)>>,
    total_len: u64,
}

impl SegmentBuilder {
    /// Adds a document. Chunk ids must ascend across calls.
    pub(crate) fn add(&mut self, chunk_id: u32, doc: &DocTerms) {
        let index = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
        debug_assert!(self.docs.last().is_none_or(|(last, _)| *last < chunk_id));
        self.docs.push((chunk_id, doc.len));
        self.total_len += u64::from(doc.len);
        for &(term, tf) in &doc.terms {
            self.postings.entry(term).or_default().push((index, tf));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The encoded segment.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut terms: Vec<(u64, Vec<(u32, u32)>)> = self.postings.into_iter().collect();
        terms.sort_unstable_by_key(|(t, _)| *t);
        let mut postings = Vec::new();
        let mut records = Vec::with_capacity(terms.len() * TERM_RECORD);
        for (term, list) in &terms {
            records.extend_from_slice(&term.to_le_bytes());
            records.extend_from_slice(&u32::try_from(list.len()).unwrap_or(u32::MAX).to_le_bytes());
            records.extend_from_slice(
                &u32::try_from(postings.len()).unwrap_or(u32::MAX).to_le_bytes(),
            );
            let mut prev = 0u32;
            for &(doc, tf) in list {
                put_varint(&mut postings, doc - prev);
                put_varint(&mut postings, tf);
                prev = doc;
            }
        }
        let mut out = Vec::with_capacity(
            HEADER + self.docs.len() * DOC_RECORD + records.len() + postings.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&u32::try_from(self.docs.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(terms.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.total_len.to_le_bytes());
        for (chunk, len) in &self.docs {
            out.extend_from_slice(&chunk.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&records);
        out.extend_from_slice(&postings);
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

/// Reads a varint at `*pos`, advancing it; `None` past the end or on an overlong encoding.
fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// A segment held in memory.
pub(crate) struct Segment {
    bytes: Vec<u8>,
    n_docs: usize,
    n_terms: usize,
    total_len: u64,
}

impl Segment {
    /// Checks the header and sizes; the contents are validated lazily as they are read.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Segment, String> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err("lexical segment has no CKX1 header".into());
        }
        let n_docs = read_u32(&bytes, 4) as usize;
        let n_terms = read_u32(&bytes, 8) as usize;
        let total_len = read_u64(&bytes, 12);
        let postings_start = HEADER + n_docs * DOC_RECORD + n_terms * TERM_RECORD;
        if bytes.len() < postings_start {
            return Err(format!(
                "lexical segment is truncated: {} bytes, tables need {postings_start}",
                bytes.len()
            ));
        }
        Ok(Segment { bytes, n_docs, n_terms, total_len })
    }

    pub(crate) fn n_docs(&self) -> usize {
        self.n_docs
    }

    pub(crate) fn total_len(&self) -> u64 {
        self.total_len
    }

    /// (chunk id, doc length) of the document at `index`.
    pub(crate) fn doc(&self, index: usize) -> (u32, u32) {
        let at = HEADER + index * DOC_RECORD;
        (read_u32(&self.bytes, at), read_u32(&self.bytes, at + 4))
    }

    fn term_at(&self, i: usize) -> (u64, u32, u32) {
        let at = HEADER + self.n_docs * DOC_RECORD + i * TERM_RECORD;
        (read_u64(&self.bytes, at), read_u32(&self.bytes, at + 8), read_u32(&self.bytes, at + 12))
    }

    /// Document frequency of a term in this segment.
    pub(crate) fn df(&self, term: u64) -> u32 {
        self.find(term).map_or(0, |i| self.term_at(i).1)
    }

    fn find(&self, term: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.n_terms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t = self.term_at(mid).0;
            match t.cmp(&term) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Calls `f(doc_index, tf)` for every posting of `term`; stops early on corrupt data.
    pub(crate) fn postings(&self, term: u64, mut f: impl FnMut(usize, u32)) {
        let Some(i) = self.find(term) else { return };
        let (_, df, off) = self.term_at(i);
        let base = HEADER + self.n_docs * DOC_RECORD + self.n_terms * TERM_RECORD;
        let mut pos = base + off as usize;
        let mut doc = 0usize;
        for _ in 0..df {
            let (Some(delta), Some(tf)) =
                (get_varint(&self.bytes, &mut pos), get_varint(&self.bytes, &mut pos))
            else {
                return;
            };
            doc += delta as usize;
            if doc >= self.n_docs {
                return;
            }
            f(doc, tf);
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postings() {
        let mut b = SegmentBuilder::default();
        b.add(3, &DocTerms { terms: vec![(10, 2), (20, 1)], len: 3 });
        b.add(7, &DocTerms { terms: vec![(20, 5)], len: 5 });
        b.add(900, &DocTerms { terms: vec![(10, 1), (30, 300)], len: 301 });
        let s = Segment::from_bytes(b.finish()).unwrap();
        assert_eq!(s.n_docs(), 3);
        assert_eq!(s.total_len(), 309);
        assert_eq!((s.df(10), s.df(20), s.df(30), s.df(99)), (2, 2, 1, 0));
        let mut seen = Vec::new();
        s.postings(10, |d, tf| seen.push((s.doc(d).0, tf)));
        s.postings(30, |d, tf| seen.push((s.doc(d).0, tf)));
        assert_eq!(seen, [(3, 2), (900, 1), (900, 300)]);
    }

    #[test]
    fn refuses_garbage() {
        assert!(Segment::from_bytes(b"nope".to_vec()).is_err());
        let mut truncated = b"CKX1".to_vec();
        truncated.extend_from_slice(&[255; 16]);
        assert!(Segment::from_bytes(truncated).is_err());
    }
}
