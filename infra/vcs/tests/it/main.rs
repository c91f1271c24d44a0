//! Integration tests for `GitWorkspace` on real repositories made with the `git` CLI in temp dirs.
//! Each module checks the `# Errors` MUST sentences of one group of `Workspace` methods.

mod checkout;
mod edit;
mod inspect;
mod paths;
mod support;
