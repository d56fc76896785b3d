//! What to run and how: the sandbox's input, plain data.

use std::path::PathBuf;

/// The network a sandbox gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// The host's network: its interfaces, its loopback services, raw sockets on its
    /// traffic. Only when asked for.
    Host,
    /// A new network namespace with only the loopback interface.
    None,
    /// The default: a new network namespace with loopback and an interface to the
    /// outside through slirp4netns (see [`super::network`]); the host's loopback is not
    /// reachable.
    #[default]
    Private,
}

/// A host directory or file made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    /// The host path.
    pub host: PathBuf,
    /// Where it appears inside (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A directory of another image or stage made visible inside the sandbox (`RUN
/// --mount=type=bind,from=...`): its layer snapshots are stacked as an overlay outside the
/// root (with an upper directory of its own, so writes go there and are thrown away) and
/// `source` within it is bind-mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerMount {
    /// Snapshot directories, lowest first.
    pub lowers: Vec<PathBuf>,
    /// A directory for this mount's overlay: `upper/`, `work/` and `merged/` are made in it.
    pub dir: PathBuf,
    /// The path within the stacked layers (relative, links already resolved).
    pub source: String,
    /// Where it appears inside (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// The source is a file (the target is made as an empty file).
    pub file: bool,
}

/// A published port: connections to the host's `host_ip:host_port` reach the command's
/// `container_port` (`docker run -p`), through slirp4netns's port forwarding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMap {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The host address to listen on (`0.0.0.0`: every one).
    pub host_ip: String,
    /// The host port.
    pub host_port: u16,
    /// The port inside.
    pub container_port: u16,
}

impl std::fmt::Display for PortMap {
    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}->{}/{}", self.host_ip, self.host_port, self.container_port, self.proto)
    }
}

/// A tmpfs inside the sandbox (`RUN --mount=type=tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TmpfsMount {
    /// Where it appears inside (absolute).
    pub target: String,
    /// Its size limit in bytes (the kernel's default, half the memory, when `None`).
    pub size: Option<u64>,
}

/// Everything the sandbox needs to run one command.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Layer snapshots, lowest first (overlayfs lower directories).
    pub lowers: Vec<PathBuf>,
    /// A directory for this run: `upper/`, `work/` and `merged/` are made in it.
    pub run_dir: PathBuf,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Working directory inside (created if missing).
    pub cwd: String,
    /// `user[:group]`, by name or number (resolved in the image's `/etc/passwd` and
    /// `/etc/group`); empty for root.
    pub user: String,
    /// The sandbox's host name.
    pub hostname: String,
    /// Host or no network.
    pub network: Network,
    /// Bind mounts.
    pub volumes: Vec<Volume>,
    /// Resource limits.
    pub limits: super::cgroups::Limits,
    /// Give the command a pseudo-terminal.
    pub tty: bool,
    /// Directories of other images or stages, mounted after `volumes`.
    #[serde(default)]
    pub layer_mounts: Vec<LayerMount>,
    /// tmpfs mounts, made last.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// Stack the layers by copying them into `merged/` rather than with overlayfs (a
    /// store on overlayfs, which overlayfs refuses as its upper directory); what the
    /// command changed is then found by comparing the tree and written to `upper/`, with
    /// whiteout files.
    #[serde(default)]
    pub copy_root: bool,
    /// Published ports (the default network only).
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    #[serde(default)]
    pub extras: RunExtras,
    /// The upper directory is read once after the run and never mounted again (a build
    /// step's): the overlay is mounted `volatile`, so its end does not wait for the
    /// kernel to write what the command wrote (rbuild makes the layer durable itself).
    /// A container's upper directory, mounted again by each start, is not.
    #[serde(default)]
    pub throwaway_upper: bool,
    /// The download cache apt is pointed at (with the default network; see
    /// [`crate::downloads`]).
    #[serde(default)]
    pub download_cache: Option<crate::downloads::Cache>,
}

/// What `--add-host`, `--shm-size` and `--ulimit` add to a RUN or a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunExtras {
    /// Lines added to `/etc/hosts`: (host name, address).
    pub hosts: Vec<(String, String)>,
    /// The size of `/dev/shm` in bytes (64 MiB when unset, as Docker's).
    pub shm_size: Option<u64>,
    /// Resource limits (`setrlimit`) of the command.
    pub ulimits: Vec<Ulimit>,
}

/// One `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    /// Docker's name of the resource (`nofile`, `nproc`, `core` ...).
    pub name: String,
    /// Soft limit (-1: unlimited).
    pub soft: i64,
    /// Hard limit (-1: unlimited).
    pub hard: i64,
}

/// Docker's `--ulimit` names, with the resource each sets.
pub const ULIMIT_NAMES: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (a missing hard limit is the soft one; -1 is unlimited).
    pub fn parse(text: &str) -> Result<Ulimit, String> {
        let bad = || {
            format!(
                "invalid ulimit {text:?}: NAME=SOFT[:HARD], NAME one of {}",
                ULIMIT_NAMES.join(", ")
            )
        };
        let (name, values) = text.split_once('=').ok_or_else(bad)?;
        if !ULIMIT_NAMES.contains(&name) {
            return Err(bad());
        }
        let (soft, hard) = values.split_once(':').unwrap_or((values, values));
        let soft: i64 = soft.parse().map_err(|_| bad())?;
        let hard: i64 = hard.parse().map_err(|_| bad())?;
        if soft < -1 || hard < -1 || (hard != -1 && (soft == -1 || soft > hard)) {
            return Err(format!(
                "invalid ulimit {text:?}: the soft limit must not exceed the hard one"
            ));
        }
        Ok(Ulimit { name: name.to_string(), soft, hard })
    }
}

/// Parses `--add-host NAME:ADDRESS` (`host-gateway` is not supported: there is no daemon
/// gateway); an IPv6 address may stand in brackets.
pub fn parse_add_host(text: &str) -> Result<(String, String), String> {
    let (name, addr) = text
        .split_once(':')
        .or_else(|| text.split_once('='))
        .ok_or_else(|| format!("invalid --add-host {text:?}: NAME:ADDRESS"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid --add-host {text:?}: {addr:?} is not an IP address"));
    }
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("invalid --add-host {text:?}: bad host name"));
    }
    Ok((name.to_string(), addr.to_string()))
}

impl SandboxSpec {
    /// The overlay's upper directory: what the command changed.
    pub fn upper(&self) -> PathBuf {
        self.run_dir.join("upper")
    }

    /// The empty lower directory of an image without layers.
    pub fn empty_lower(&self) -> PathBuf {
        self.run_dir.join("empty")
    }

    /// The overlay's work directory.
    pub fn work(&self) -> PathBuf {
        self.run_dir.join("work")
    }

    /// Where the root file system is assembled.
    pub fn merged(&self) -> PathBuf {
        self.run_dir.join("merged")
    }
}
