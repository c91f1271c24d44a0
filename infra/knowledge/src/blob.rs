//! Git blob ids, computed here (`sha1("blob {len}\0" + bytes)`) so a file's id is known without
//! asking git, for committed and uncommitted files alike.

use sha1::{Digest, Sha1};

/// The git blob id of `bytes`, as 40 lowercase hex digits.
pub(crate) fn blob_id(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(40);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::blob_id;

    #[test]
    fn matches_git_hash_object() {
        // `printf 'hello\n' | git hash-object --stdin` and `git hash-object /dev/null`.
        assert_eq!(blob_id(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }
}
