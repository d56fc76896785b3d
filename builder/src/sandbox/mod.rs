//! The sandbox: where rbuild makes raw system calls (through `nix`), and nowhere else.
//!
//! [`run`] executes a command in new mount, PID, UTS and IPC namespaces (and a network
//! namespace with `Network::None`), on an overlayfs root made of layer snapshots with a
//! fresh upper directory, after `pivot_root`. The mounts are computed first as data
//! ([`plan::mount_plan`], tested without root), then carried out. PID 1 inside is rbuild's
//! own init, which reaps orphans and hands back the command's exit status; when it exits
//! the kernel ends every process of the namespace, and the mount namespace (with every
//! mount in it) goes with them, so nothing is left behind on any path. A parent-death
//! signal ties the sandbox to the rbuild process: killing rbuild, even with SIGKILL, ends
//! it. It needs root (rootless user namespaces come later).
//!
//! Device nodes and overlayfs whiteouts (`mknod`) for the layer engine live here too.

mod linux;
mod nodes;
pub mod plan;
mod spec;

pub use linux::{run, DOCKER_DEFAULT_CAPS};
pub use nodes::{make_special, make_whiteout, SpecialFile};
pub use spec::{Network, SandboxSpec, Volume};
