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
//!
//! A run with a build cache has its build outputs sent to the cache, so the copy leaves out the
//! worktree's own cargo build directories: copying and then deleting `target/` was most of what a
//! container run cost beside the build itself.

use std::io::{self, Read};
use std::os::unix::fs::{lchown, symlink, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The first line of a cache directory tag (<https://bford.info/cachedir/>).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contents {
    /// Everything.
    All,
    /// Everything but cargo build directories (the run's builds go to its cache).
    WithoutBuildOutputs,
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Copied {
    /// Regular files copied.
    pub(crate) files: u64,
    /// Build directories left out.
    pub(crate) skipped: u64,
}

/// Copies the tree `from` to `to` (which must not exist) and gives every entry to `uid:gid`.
///
/// # Errors
/// The first I/O failure, naming the path.
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    uid: u32,
    gid: u32,
    what: Contents,
) -> io::Result<Copied> {
    let mut copied = Copied::default();
    copy_dir(from, to, (uid, gid), what, &mut copied)?;
    Ok(copied)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    (uid, gid): (u32, u32),
    what: Contents,
    copied: &mut Copied,
) -> io::Result<()> {
    let meta = std::fs::metadata(from).map_err(|e| named(e, from))?;
    std::fs::create_dir(to).map_err(|e| named(e, to))?;
    for entry in std::fs::read_dir(from).map_err(|e| named(e, from))? {
        let entry = entry.map_err(|e| named(e, from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| named(e, &src))?;
        if kind.is_dir() {
            if what == Contents::WithoutBuildOutputs && is_cargo_build_dir(&src) {
                copied.skipped += 1;
                continue;
            }
            copy_dir(&src, &dst, (uid, gid), what, copied)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| named(e, &src))?;
            symlink(target, &dst).map_err(|e| named(e, &dst))?;
            lchown(&dst, Some(uid), Some(gid)).map_err(|e| named(e, &dst))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| named(e, &src))?;
            keep_times(&src, &dst).map_err(|e| named(e, &dst))?;
            lchown(&dst, Some(uid), Some(gid)).map_err(|e| named(e, &dst))?;
            copied.files += 1;
        }
    }
    // Mode last: a read-only directory must still be filled first.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode()))
        .map_err(|e| named(e, to))?;
    lchown(to, Some(uid), Some(gid)).map_err(|e| named(e, to))
}

/// Whether `dir` is a cargo build directory: cargo tags it as a cache directory naming itself
/// (whatever its name, as `build.target-dir` may rename it), and an older cargo's untagged one is
/// a `target` holding `.rustc_info.json`. The worktree is untrusted: the tag is read without
/// following a symlink and without blocking on a fifo, and only its first bytes.
fn is_cargo_build_dir(dir: &Path) -> bool {
    let tag = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join("CACHEDIR.TAG"))
        .and_then(|file| {
            if !file.metadata()?.is_file() {
                return Ok(Vec::new());
            }
            let mut head = Vec::new();
            file.take(256).read_to_end(&mut head)?;
            Ok(head)
        })
        .unwrap_or_default();
    if tag.starts_with(CACHEDIR_SIGNATURE) {
        return tag.windows(b"by cargo".len()).any(|w| w == b"by cargo");
    }
    dir.file_name().is_some_and(|n| n == "target")
        && std::fs::symlink_metadata(dir.join(".rustc_info.json")).is_ok_and(|m| m.is_file())
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
        let copied = copy_tree(s, &to, me.0, me.1, Contents::All).unwrap();
        assert_eq!(copied, Copied { files: 2, skipped: 0 });
        assert_eq!(std::fs::read_to_string(to.join("a/b/f.txt")).unwrap(), "hello");
        assert_eq!(std::fs::metadata(to.join("run.sh")).unwrap().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read_link(to.join("link")).unwrap(), Path::new("a/b/f.txt"));
        assert_eq!(std::fs::read_link(to.join("abs")).unwrap(), Path::new("/etc/passwd"));
        // A separate inode: writing the copy leaves the original alone.
        std::fs::write(to.join("a/b/f.txt"), "changed").unwrap();
        assert_eq!(std::fs::read_to_string(s.join("a/b/f.txt")).unwrap(), "hello");
        assert!(copy_tree(s, &to, me.0, me.1, Contents::All).is_err(), "the target must not exist");
        // Modification times survive, so build tools see an up-to-date tree.
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(mtime(&to.join("run.sh")), old);
    }

    #[test]
    fn cargo_build_dirs_are_left_out_only_when_asked() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let tag = "Signature: 8a477f597d28d172789f06886806bc55\n\
                   # This file is a cache directory tag created by cargo.\n";
        for (dir, files) in [
            ("target", &[("CACHEDIR.TAG", tag), ("debug/big", "x")][..]),
            ("crates/a/target", &[(".rustc_info.json", "{}")][..]),
            ("renamed-build", &[("CACHEDIR.TAG", tag)][..]),
            // Another tool's cache tag, and a source directory that happens to be called target.
            (
                "other-cache",
                &[("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n")][..],
            ),
            ("src/target", &[("mod.rs", "// code")][..]),
        ] {
            std::fs::create_dir_all(s.join(dir)).unwrap();
            for (name, text) in files {
                std::fs::create_dir_all(s.join(dir).join(name).parent().unwrap()).unwrap();
                std::fs::write(s.join(dir).join(name), text).unwrap();
            }
        }
        // A tag that is a fifo must not hang the copy.
        std::fs::create_dir_all(s.join("fifo")).unwrap();
        let made = std::process::Command::new("mkfifo").arg(s.join("fifo/CACHEDIR.TAG")).status();
        assert!(made.unwrap().success());
        let dst = tempfile::tempdir().unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let to = dst.path().join("w");
        let copied = copy_tree(s, &to, me.0, me.1, Contents::WithoutBuildOutputs).unwrap();
        assert_eq!(copied.skipped, 3);
        for (path, kept) in [
            ("target", false),
            ("crates/a/target", false),
            ("crates/a", true),
            ("renamed-build", false),
            ("other-cache/CACHEDIR.TAG", true),
            ("src/target/mod.rs", true),
            ("fifo", true),
        ] {
            assert_eq!(to.join(path).exists(), kept, "{path}");
        }
        let all = dst.path().join("all");
        assert_eq!(copy_tree(s, &all, me.0, me.1, Contents::All).unwrap().skipped, 0);
        assert!(all.join("target/debug/big").is_file());
    }
}
