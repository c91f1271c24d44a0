//! Root filesystem options: an image directory (a plain root tree, or an unpacked OCI bundle with
//! `rootfs/` + `config.json`) as the container's `/` instead of the host's directories.
//!
//! The image is built here: the host's `dash` and the libraries `ldd` names, copied into a temp
//! dir as `/bin/sh`, plus a marker file. Nothing else of the host is visible inside.

use crate::container_support::TestSandbox;
use crate::support::spec;
use cadre_domain::ports::sandbox::SandboxError;
use cadre_sandbox::RootFs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shell copied into the image.
const SHELL: &str = "/bin/dash";

/// Copies `SHELL` (as `/bin/sh`) and the shared libraries it loads into `root`, world-readable,
/// and writes `/etc/cadre-marker`.
fn tiny_root(root: &Path, marker: &str) {
    // A temp dir is 0700; the container's unprivileged user must be able to traverse its `/`.
    std::fs::create_dir_all(root).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        Path::new(SHELL).is_file(),
        "{SHELL} is missing; the rootfs tests copy it (apt-get install dash)"
    );
    let ldd = Command::new("ldd").arg(SHELL).output().expect("ldd (libc-bin) must be installed");
    assert!(ldd.status.success(), "ldd {SHELL} failed: {ldd:?}");
    let libs: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    assert!(!libs.is_empty(), "ldd named no libraries for {SHELL}");
    let mut files = vec![(PathBuf::from(SHELL), root.join("bin/sh"))];
    files.extend(libs.into_iter().map(|lib| {
        let inside = root.join(lib.strip_prefix("/").unwrap());
        (lib, inside)
    }));
    for (from, to) in files {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // Through symlinks: the image gets the real file under the name the loader asks for.
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/cadre-marker"), format!("{marker}\n")).unwrap();
}

/// Builtins only: the image has nothing but `sh`.
const PROBE: &str = "read m < /etc/cadre-marker; echo \"marker=$m\"; \
    if [ -e /usr/bin/python3 ]; then echo host-usr; else echo own-root; fi; \
    echo \"path=$PATH image=$CADRE_IMAGE\"; \
    echo data > out.txt && read d < out.txt && echo \"workspace=$d\"; \
    if { echo x > /etc/new; } 2>/dev/null; then echo root-writable; else echo root-read-only; fi";

#[tokio::test]
async fn a_plain_root_tree_replaces_the_host_directories() {
    let image = tempfile::tempdir().unwrap();
    tiny_root(image.path(), "plain-tree");
    let sb = TestSandbox::with(|cfg| *cfg = cfg.clone().with_root_directory(image.path()));
    let work = tempfile::tempdir().unwrap();
    let out = sb.run(&spec(work.path(), PROBE)).await;
    assert_eq!(
        out.output,
        "marker=plain-tree\nown-root\n\
         path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin image=\n\
         workspace=data\nroot-read-only\n",
        "{out:?}"
    );
    assert_eq!(out.exit_code, Some(0));
    // The image gained only the empty mount points; no run wrote into it.
    assert!(!image.path().join("etc/new").exists());
    assert!(!image.path().join("workspace/out.txt").exists());
    assert!(image.path().join("workspace").is_dir());
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn an_oci_bundle_is_used_with_its_environment() {
    let bundle = tempfile::tempdir().unwrap();
    tiny_root(&bundle.path().join("rootfs"), "oci-bundle");
    // What `umoci unpack` writes beside `rootfs/`; only `process.env` is taken from it.
    std::fs::write(
        bundle.path().join("config.json"),
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["/bin/sh"],"user":{"uid":0,"gid":0},
                       "env":["PATH=/bin","CADRE_IMAGE=from-config"]}}"#,
    )
    .unwrap();
    let sb = TestSandbox::with(|cfg| *cfg = cfg.clone().with_root_directory(bundle.path()));
    assert_eq!(sb.sandbox.config().root, RootFs::Directory(bundle.path().to_path_buf()));
    let work = tempfile::tempdir().unwrap();
    let out = sb.run(&spec(work.path(), PROBE)).await;
    assert_eq!(
        out.output,
        "marker=oci-bundle\nown-root\npath=/bin image=from-config\nworkspace=data\nroot-read-only\n",
        "{out:?}"
    );
    sb.assert_clean_and_usable(work.path()).await;
}

#[test]
fn a_missing_root_directory_is_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::container_support::config(dir.path())
        .with_root_directory(dir.path().join("no-such-image"));
    match cadre_sandbox::YoukiSandbox::new(cfg).unwrap_err() {
        SandboxError::Spawn { reason, .. } => {
            assert!(reason.contains("no-such-image does not exist"), "{reason}");
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
}
