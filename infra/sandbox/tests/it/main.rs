//! Integration tests for `HostSandbox`: real `sh` processes in temp dirs. They check the `# Errors`
//! MUST sentences of `Sandbox::run` (NoWorkdir, Spawn, failing and timed-out runs are `Ok`, and a
//! timed-out or cancelled run leaves no process behind) plus the output tail.

mod cleanup;
mod output;
mod run;
mod support;
