//! The sandbox: where rbuild makes raw system calls (through `nix`), and nowhere else.
//!
//! [`run`] executes a command in new mount, PID, UTS, IPC and (but with
//! [`Network::Host`]) network namespaces, on an overlayfs root made of layer snapshots
//! with a fresh upper directory, after `pivot_root`, confined as Docker confines a
//! container by default: its capabilities, its seccomp profile ([`seccomp`]), its masked
//! and read-only paths ([`plan::MASKED_PATHS`], [`plan::READONLY_PATHS`]), `nodev` on
//! every writable mount, only descriptors 0-2. The default network is a namespace of its
//! own connected by slirp4netns ([`network`]). The mounts are computed first as data
//! ([`plan::mount_plan`], tested without root), then carried out. rbuild forks PID 1 of
//! a new PID namespace: rbuild's own init, which makes the other namespaces and the
//! mounts, starts the command, reaps orphans and hands back the command's exit status.
//! When it exits the kernel ends every process of the namespace, and the mount namespace
//! (with every mount in it) goes with them, so nothing is left behind on any path. A
//! parent-death signal ties the init to the rbuild process: killing rbuild, even with
//! SIGKILL, ends the sandbox. As a normal user, rbuild first enters a user namespace in
//! which it is root (its own uid and gid mapped to 0).
//!
//! Device nodes and overlayfs whiteouts (`mknod`) for the layer engine live here too.

mod cgroups;
pub mod environment;
pub mod in_place;
mod linux;
pub mod network;
mod nodes;
pub mod plan;
pub mod process;
pub mod seccomp;
mod spec;
pub mod subids;

pub use cgroups::{remove_stale_cgroups, Cgroup, Limits};
pub use environment::explain;
pub use linux::{
    exec, exit_with_parent, first_child, in_sandbox_root, reap_finished, run, start_writeback,
    COMMAND_TIME, DOCKER_DEFAULT_CAPS, SANDBOX_FAILED, STARTED,
};
pub use nodes::{make_special, make_whiteout, SpecialFile};
pub use spec::{
    parse_add_host, LayerMount, Network, PortMap, RunExtras, SandboxSpec, TmpfsMount, Ulimit,
    Volume, ULIMIT_NAMES,
};

/// Where the helper process leaves the error of a sandbox it could not set up, in the
/// run's directory, for the [`ProcessExecutor`](crate::engine::ProcessExecutor).
pub const ERROR_FILE: &str = "sandbox-error";

/// Where the helper process leaves the command's exit code in the run's directory before
/// its output ends, for the [`ProcessExecutor`](crate::engine::ProcessExecutor).
pub const EXIT_CODE: &str = "exit-code";

/// Runs the spec a [`ProcessExecutor`](crate::engine::ProcessExecutor) gives the helper
/// process it started, in that process: ties this process's life to `parent`'s, reads the
/// spec and runs it; returns the command's exit code. The spec is read from the file at
/// `path`, or, when `path` is `-`, from standard input to its end (the executor starts a
/// helper before it has a spec); standard input is then `/dev/null` again for the command.
/// When the sandbox cannot be set up, the error goes to [`ERROR_FILE`] in the run's
/// directory and the code is [`SANDBOX_FAILED`].
pub fn run_spec_file(path: &std::path::Path, parent: u32) -> crate::Result<i32> {
    exit_with_parent(parent)?;
    let bytes = if path == std::path::Path::new("-") {
        match spec_from_input()? {
            Some(bytes) => bytes,
            // The executor went without giving a spec: nothing to run.
            None => return Ok(0),
        }
    } else {
        std::fs::read(path).map_err(crate::Error::io("reading", path))?
    };
    let spec: SandboxSpec =
        serde_json::from_slice(&bytes).map_err(crate::Error::json("the sandbox spec"))?;
    let code = match run(&spec) {
        Ok(code) => code,
        Err(e) => {
            let file = spec.run_dir.join(ERROR_FILE);
            std::fs::write(&file, crate::error::chain(&e))
                .map_err(crate::Error::io("writing", file))?;
            SANDBOX_FAILED
        }
    };
    // The code, then the end of the output: the executor sees the end and reads the code
    // without waiting for this process's exit.
    let file = spec.run_dir.join(EXIT_CODE);
    std::fs::write(&file, code.to_string()).map_err(crate::Error::io("writing", file))?;
    linux::end_output();
    Ok(code)
}

/// Reads a spec from standard input to its end (none when it is empty), then puts
/// `/dev/null` there.
fn spec_from_input() -> crate::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_SPEC)
        .read_to_end(&mut bytes)
        .map_err(crate::Error::io("reading the sandbox spec from", "standard input"))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    linux::null_onto(&[0]).map_err(crate::Error::io("putting on standard input", "/dev/null"))?;
    Ok(Some(bytes))
}

/// The largest spec read from standard input (a spec is a few kilobytes: the command,
/// its environment and mounts).
const MAX_SPEC: u64 = 64 * 1024 * 1024;
