//! The parent's side of one run: preparing its bundle (workspace copy and spec) before the runner
//! starts, and reading how it ended afterwards.

use super::phases::Marks;
use super::root::RuntimeRoot;
use super::rootfs::Bind;
use super::runner::{result_file, Outcome};
use super::spec::{self, RunParts};
use super::workspace::Contents;
use super::{cgroups, workspace, Network, YoukiConfig};
use crate::cache::Caches;
use cadre_domain::ports::sandbox::SandboxError;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::debug;

/// What preparing one run needs.
pub(crate) struct Prepare {
    pub(crate) id: String,
    pub(crate) config: YoukiConfig,
    pub(crate) root: RuntimeRoot,
    pub(crate) binds: Vec<Bind>,
    /// The container's `/`: the skeleton or the configured image directory.
    pub(crate) rootfs: PathBuf,
    pub(crate) workdir: PathBuf,
    pub(crate) command: String,
    pub(crate) env: Vec<(String, String)>,
    /// The network this run gets (the config's, or the host's when the run was granted it).
    pub(crate) network: Network,
    pub(crate) caches: Arc<Caches>,
    /// The name of the run's build cache (leased by the caller), if it has one.
    pub(crate) cache: Option<String>,
}

impl Prepare {
    /// Creates `runs/<id>` with the workspace copy (`work/`, owned by the container's user) and
    /// the spec (`config.json`), and the run's build cache if it has one. Returns the bundle
    /// directory, and `marks` with the end of each of those phases added.
    ///
    /// # Errors
    /// [`SandboxError::Spawn`] for a spec that cannot be built (e.g. an unpassable variable),
    /// [`SandboxError::Runtime`] when the copy or a write fails.
    pub(crate) fn run(self, mut marks: Marks) -> Result<(PathBuf, Marks), SandboxError> {
        let bundle = self.root.runs.join(&self.id);
        std::fs::create_dir(&bundle).map_err(|e| {
            SandboxError::Runtime(format!(
                "cannot create the run directory {}: {e}",
                bundle.display()
            ))
        })?;
        let work = bundle.join("work");
        let (uid, gid) = host_ids(&self.config);
        let cache = match &self.cache {
            Some(name) => Some(self.caches.open(name, uid, gid).map_err(|e| {
                SandboxError::Runtime(format!("cannot prepare the run's build cache: {e}"))
            })?),
            None => None,
        };
        marks.mark("cache");
        // With a cache, builds go there: the worktree's own build directories are dead weight.
        let contents = if cache.is_some() { Contents::WithoutBuildOutputs } else { Contents::All };
        let copied =
            workspace::copy_tree(&self.workdir, &work, uid, gid, contents).map_err(|e| {
                SandboxError::Runtime(format!(
                    "cannot copy the workspace {} for the container: {e}",
                    self.workdir.display()
                ))
            })?;
        marks.mark("workspace copy");
        debug!(
            id = self.id,
            files = copied.files,
            skipped = copied.skipped,
            cache = self.cache,
            "workspace copied"
        );
        let spec = spec::build(
            &self.config,
            &RunParts {
                command: &self.command,
                env: &self.env,
                rootfs: &self.rootfs,
                binds: &self.binds,
                workspace: &work,
                cache: cache.as_deref(),
                cgroup_path: cgroups::path(&self.config.cgroup_parent, &self.id),
                network: self.network,
            },
        )
        .map_err(|reason| SandboxError::Spawn { command: self.command.clone(), reason })?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| SandboxError::Runtime(format!("cannot write the container spec: {e}")))?;
        marks.mark("spec");
        Ok((bundle, marks))
    }
}

/// The host uid and gid that own the workspace copy: the container user, shifted by the user
/// namespace's mapping when there is one.
fn host_ids(cfg: &YoukiConfig) -> (u32, u32) {
    let base = cfg.user_namespace.map_or(0, |u| u.host_id_base);
    (base + cfg.uid, base + cfg.gid)
}

/// Reads the runner's report from the bundle: how the run ended (`None` when it wrote none) and
/// the runner's phase marks.
pub(crate) fn outcome(bundle: &std::path::Path) -> (Option<Outcome>, Marks) {
    let text = std::fs::read_to_string(result_file(bundle)).unwrap_or_default();
    (Outcome::parse(&text), Marks::parse(&text))
}
