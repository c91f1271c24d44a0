//! Integration tests: `HostSandbox` with real `sh` processes in temp dirs, and `YoukiSandbox`
//! with real containers (these need root, namespaces and cgroups, and fail saying so otherwise).
//! They check the `# Errors` MUST sentences of `Sandbox::run` (NoWorkdir, Spawn, failing and
//! timed-out runs are `Ok`, and a timed-out or cancelled run leaves no process behind), the output
//! tail, and for containers the escape suite of issue 5 and real test suites run inside; and the
//! build caches of both sandboxes (shared per key, private across keys, no way out, removed).

mod cleanup;
mod container_cache;
mod container_cleanup;
mod container_escape;
mod container_rootfs;
mod container_run;
mod container_suites;
mod container_support;
mod host_cache;
mod output;
mod run;
mod support;
