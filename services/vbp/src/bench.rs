//! `vbp bench`: the end-to-end load benchmark is a program of its own,
//! `vbp-bench` (crate vbp-tests), so the service binary carries no load
//! generator. Like git's external subcommands, it is looked for next to this
//! executable, then on PATH, and run in this process's place with the
//! arguments given; it measures the `vbp` that started it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = "vbp-bench";

fn find(exe: Option<&Path>) -> Option<PathBuf> {
    let sibling = exe
        .and_then(Path::parent)
        .map(|dir| dir.join(PROGRAM))
        .filter(|p| p.is_file());
    sibling.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(PROGRAM))
            .find(|p| p.is_file())
    })
}

/// Replaces this process with `vbp-bench <args>`; returns only on failure.
pub fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().ok();
    let Some(program) = find(exe.as_deref()) else {
        anyhow::bail!(
            "{PROGRAM} was not found next to {} nor on PATH; build it with \
             `cargo build --release -p vbp -p vbp-tests --bin vbp --bin {PROGRAM}` \
             or run `deploy/local/bench e2e`, which builds both and starts a fresh Postgres and NATS",
            exe.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "vbp".into())
        );
    };
    let mut cmd = Command::new(&program);
    cmd.args(args);
    if std::env::var_os("VBP_BIN").is_none()
        && let Some(exe) = &exe
    {
        cmd.env("VBP_BIN", exe);
    }
    let err = cmd.exec();
    Err(anyhow::anyhow!("running {}: {err}", program.display()))
}
