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
    exec, exit_with_parent, first_child, in_sandbox_root, reap_finished, run, COMMAND_TIME,
    DOCKER_DEFAULT_CAPS, SANDBOX_FAILED, STARTED,
};
pub use nodes::{make_special, make_whiteout, SpecialFile};
pub use spec::{
    parse_add_host, LayerMount, Network, PortMap, RunExtras, SandboxSpec, TmpfsMount, Ulimit,
    Volume, ULIMIT_NAMES,
};

/// Where the helper process leaves the error of a sandbox it could not set up, in the
/// run's directory, for the [`ProcessExecutor`](crate::engine::ProcessExecutor).
pub const ERROR_FILE: &str = "sandbox-error";

/// Runs the spec a [`ProcessExecutor`](crate::engine::ProcessExecutor) wrote to `path`,
/// in the helper process it started: ties this process's life to `parent`'s, reads the
/// spec and runs it; returns the command's exit code. When the sandbox cannot be set up,
/// the error goes to [`ERROR_FILE`] in the run's directory and the code is
/// [`SANDBOX_FAILED`].
pub fn run_spec_file(path: &std::path::Path, parent: u32) -> crate::Result<i32> {
    exit_with_parent(parent)?;
    let bytes = std::fs::read(path).map_err(crate::Error::io("reading", path))?;
    let spec: SandboxSpec =
        serde_json::from_slice(&bytes).map_err(crate::Error::json("the sandbox spec"))?;
    match run(&spec) {
        Ok(code) => Ok(code),
        Err(e) => {
            let file = spec.run_dir.join(ERROR_FILE);
            std::fs::write(&file, crate::error::chain(&e))
                .map_err(crate::Error::io("writing", file))?;
            Ok(SANDBOX_FAILED)
        }
    }
}
