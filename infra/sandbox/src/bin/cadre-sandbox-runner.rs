//! The container runner `YoukiSandbox` starts once per run: creates one container, waits for it,
//! deletes it and writes how it ended into the bundle. Not meant to be run by hand.

fn main() {
    std::process::exit(cadre_sandbox::runner_main(std::env::args_os().skip(1).collect()));
}
