//! The container's root: by default a read-only skeleton directory whose only content is mount
//! points and the host's top-level symlinks, with the host's toolchain directories bind-mounted on
//! it; or, when configured, an image directory (an unpacked OCI bundle or a plain root tree).
//!
//! Nothing of the host is copied: the skeleton is built once per sandbox and shared by every run
//! (each run's mount namespace has its own read-only view of it). An image directory gets the same
//! mount points, created once when the sandbox starts, since a read-only root cannot grow them at
//! run time.

use libcontainer::oci_spec::runtime::Spec;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use tracing::debug;

/// Where the workspace is mounted inside, and the command's working directory.
pub(crate) const WORKSPACE: &str = "/workspace";

/// Where a run's build cache is mounted inside, when it has one (an empty read-only directory
/// otherwise).
pub(crate) const CACHE: &str = "/cache";

/// One read-only bind mount: the host path, mounted at the same path inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bind {
    pub(crate) path: PathBuf,
}

/// Creates the skeleton under `dir` for `read_only` host paths, and returns the binds to make.
///
/// A host path that is a symlink becomes the same symlink (so `/bin -> usr/bin` resolves through
/// the `/usr` mount); a missing one is skipped. Binds come out parents first, the order mounts
/// must be made in.
///
/// # Errors
/// A path that is not absolute, or a failure to create the skeleton.
pub(crate) fn prepare(dir: &Path, read_only: &[PathBuf]) -> io::Result<Vec<Bind>> {
    make_dir(dir, 0o755)?;
    for fixed in ["proc", "dev", "tmp", "workspace", "cache"] {
        make_dir(&dir.join(fixed), 0o755)?;
    }
    let mut binds = Vec::new();
    for host in read_only {
        let inside = relative(host)?;
        let meta = match std::fs::symlink_metadata(host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                debug!(path = %host.display(), "read-only mount skipped: not on this host");
                continue;
            }
            Err(e) => return Err(e),
        };
        let target = dir.join(&inside);
        if let Some(parent) = target.parent() {
            make_dir_all(dir, parent)?;
        }
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(host)?;
            match symlink(&link, &target) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            continue;
        }
        if meta.is_dir() {
            make_dir(&target, 0o755)?;
        } else if !target.exists() {
            std::fs::File::create(&target)?;
        }
        binds.push(Bind { path: host.clone() });
    }
    binds.sort_by_key(|b| b.path.components().count());
    binds.dedup();
    Ok(binds)
}

/// The root tree of an image directory, and the environment its OCI `config.json` sets.
///
/// A directory holding `rootfs/` and `config.json` is an OCI runtime bundle (what `umoci unpack`
/// writes): its root is `rootfs/` and its `process.env` is returned. Any other directory is
/// taken as the root itself (a `debootstrap` tree), with no environment of its own.
///
/// # Errors
/// A missing directory, or a `config.json` that is not a valid runtime spec, naming the path.
pub(crate) fn image(dir: &Path) -> io::Result<(PathBuf, Vec<(String, String)>)> {
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("root directory {} does not exist or is not a directory", dir.display()),
        ));
    }
    let (rootfs, config) = (dir.join("rootfs"), dir.join("config.json"));
    if !(rootfs.is_dir() && config.is_file()) {
        return Ok((dir.to_path_buf(), Vec::new()));
    }
    let spec = Spec::load(&config).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not an OCI runtime config: {e}", config.display()),
        )
    })?;
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    Ok((rootfs, env))
}

fn relative(path: &Path) -> io::Result<PathBuf> {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("read-only mount {} must be an absolute path without `..`", path.display()),
        ));
    }
    Ok(path.components().skip(1).collect())
}

/// Creates `dir` with `mode` unless it exists (a concurrent sandbox may be creating it too).
fn make_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates every directory from `root` down to `dir`, each world-traversable: a mount point's
/// parents inside (e.g. `/root` for `/root/.cargo`) must not hide it from the unprivileged user.
fn make_dir_all(root: &Path, dir: &Path) -> io::Result<()> {
    let Ok(rest) = dir.strip_prefix(root) else { return Ok(()) };
    let mut at = root.to_path_buf();
    for part in rest.components() {
        at.push(part);
        make_dir(&at, 0o755)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_recreated_dirs_become_binds_missing_are_skipped() {
        let host = tempfile::tempdir().unwrap();
        let h = host.path();
        std::fs::create_dir_all(h.join("usr/bin")).unwrap();
        std::fs::create_dir_all(h.join("home/.cargo")).unwrap();
        std::os::unix::fs::symlink("usr/bin", h.join("bin")).unwrap();
        std::fs::write(h.join("file"), "x").unwrap();
        let skel = tempfile::tempdir().unwrap();
        let dir = skel.path().join("rootfs");
        let paths = ["home/.cargo", "usr", "bin", "missing", "file"].map(|p| h.join(p));
        let binds = prepare(&dir, &paths).unwrap();
        let bound: Vec<_> = binds.iter().map(|b| b.path.clone()).collect();
        assert_eq!(bound, [h.join("usr"), h.join("file"), h.join("home/.cargo")]);
        let inside = |p: &str| dir.join(relative(&h.join(p)).unwrap());
        assert_eq!(std::fs::read_link(inside("bin")).unwrap(), Path::new("usr/bin"));
        assert!(inside("home/.cargo").is_dir());
        assert!(inside("file").is_file());
        assert!(!inside("missing").exists());
        assert!(dir.join("workspace").is_dir());
        assert!(dir.join("cache").is_dir());
        // Idempotent: a second sandbox on the same root reuses the skeleton.
        assert_eq!(prepare(&dir, &paths).unwrap(), binds);
        assert!(prepare(&dir, &[PathBuf::from("relative")]).is_err());
    }

    #[test]
    fn an_image_is_a_bundle_with_its_env_or_a_plain_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tree/bin")).unwrap();
        assert_eq!(image(&d.join("tree")).unwrap(), (d.join("tree"), Vec::new()));
        std::fs::create_dir_all(d.join("bundle/rootfs/bin")).unwrap();
        std::fs::write(
            d.join("bundle/config.json"),
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
                "env":["PATH=/opt/bin:/bin","GREETING=a=b"]},"root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        let (root, env) = image(&d.join("bundle")).unwrap();
        assert_eq!(root, d.join("bundle/rootfs"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("PATH", "/opt/bin:/bin"), ("GREETING", "a=b")]);
        std::fs::write(d.join("bundle/config.json"), "{ not json").unwrap();
        let err = image(&d.join("bundle")).unwrap_err().to_string();
        assert!(err.contains("config.json is not an OCI runtime config"), "{err}");
        let err = image(&d.join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing does not exist"), "{err}");
    }
}
