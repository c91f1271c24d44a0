//! The run's writable workspace: a private copy of the worktree, owned by the container's user.
//!
//! A copy, not an overlay: the command runs as an unprivileged uid, so the files it may change must
//! be owned by that uid, and an overlay would show the worktree owner's files, which that uid cannot
//! write. Files are copied (never hard-linked, so no write can reach the original's inodes),
//! symlinks are recreated as they are (never followed), and anything else (sockets, fifos, devices)
//! is skipped. The original worktree is only ever read.
//!
//! Files keep their modification times: build tools compare them (cargo's fingerprints, make), so
//! a worktree with a warm build dir stays warm in the copy instead of rebuilding on every run.

use std::io;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::Path;

/// Copies the tree `from` to `to` (which must not exist) and gives every entry to `uid:gid`.
///
/// # Errors
/// The first I/O failure, naming the path.
pub(crate) fn copy_tree(from: &Path, to: &Path, uid: u32, gid: u32) -> io::Result<u64> {
    let mut files = 0;
    copy_dir(from, to, uid, gid, &mut files)?;
    Ok(files)
}

fn copy_dir(from: &Path, to: &Path, uid: u32, gid: u32, files: &mut u64) -> io::Result<()> {
    let meta = std::fs::metadata(from).map_err(|e| named(e, from))?;
    std::fs::create_dir(to).map_err(|e| named(e, to))?;
    for entry in std::fs::read_dir(from).map_err(|e| named(e, from))? {
        let entry = entry.map_err(|e| named(e, from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| named(e, &src))?;
        if kind.is_dir() {
            copy_dir(&src, &dst, uid, gid, files)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| named(e, &src))?;
            symlink(target, &dst).map_err(|e| named(e, &dst))?;
            lchown(&dst, Some(uid), Some(gid)).map_err(|e| named(e, &dst))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| named(e, &src))?;
            keep_times(&src, &dst).map_err(|e| named(e, &dst))?;
            lchown(&dst, Some(uid), Some(gid)).map_err(|e| named(e, &dst))?;
            *files += 1;
        }
    }
    // Mode last: a read-only directory must still be filled first.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode()))
        .map_err(|e| named(e, to))?;
    lchown(to, Some(uid), Some(gid)).map_err(|e| named(e, to))
}

/// Gives `dst` the access and modification times of `src`.
fn keep_times(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(src)?;
    let times =
        std::fs::FileTimes::new().set_accessed(meta.accessed()?).set_modified(meta.modified()?);
    std::fs::File::options().write(true).open(dst)?.set_times(times)
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_files_dirs_and_symlinks_with_modes() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        std::fs::create_dir_all(s.join("a/b")).unwrap();
        std::fs::write(s.join("a/b/f.txt"), "hello").unwrap();
        std::fs::write(s.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(s.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let file = std::fs::File::options().write(true).open(s.join("run.sh")).unwrap();
        file.set_modified(old).unwrap();
        symlink("a/b/f.txt", s.join("link")).unwrap();
        symlink("/etc/passwd", s.join("abs")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("w");
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        assert_eq!(copy_tree(s, &to, me.0, me.1).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(to.join("a/b/f.txt")).unwrap(), "hello");
        assert_eq!(std::fs::metadata(to.join("run.sh")).unwrap().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read_link(to.join("link")).unwrap(), Path::new("a/b/f.txt"));
        assert_eq!(std::fs::read_link(to.join("abs")).unwrap(), Path::new("/etc/passwd"));
        // A separate inode: writing the copy leaves the original alone.
        std::fs::write(to.join("a/b/f.txt"), "changed").unwrap();
        assert_eq!(std::fs::read_to_string(s.join("a/b/f.txt")).unwrap(), "hello");
        assert!(copy_tree(s, &to, me.0, me.1).is_err(), "the target must not exist");
        // Modification times survive, so build tools see an up-to-date tree.
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(mtime(&to.join("run.sh")), old);
    }
}
