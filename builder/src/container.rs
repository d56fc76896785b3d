//! Containers: a command run in an image, in the sandbox (`rbuild run`). The command is
//! the image's ENTRYPOINT and CMD unless overridden, with its environment, user and
//! working directory, over a fresh writable layer that goes when the command ends.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sandbox::{self, Limits, Network, SandboxSpec, Volume};
use crate::store::{Image, Store};

/// How to run a container: what `docker run`'s flags set.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command and its arguments (empty: the image's CMD).
    pub command: Vec<String>,
    /// The entrypoint instead of the image's (`Some("")` clears it).
    pub entrypoint: Option<String>,
    /// `KEY=VALUE`s set over the image's environment, in order.
    pub env: Vec<String>,
    /// Host paths bind-mounted into the container.
    pub volumes: Vec<Volume>,
    /// The working directory (default: the image's, else `/`).
    pub workdir: Option<String>,
    /// The user (default: the image's).
    pub user: Option<String>,
    /// The host name (default: the first 12 digits of the container's ID).
    pub hostname: Option<String>,
    /// The network.
    pub network: Network,
    /// Memory, process and CPU limits.
    pub limits: Limits,
    /// A pseudo-terminal for the command.
    pub tty: bool,
}

/// A new container ID: 64 hex digits.
pub fn new_id() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ ((std::process::id() as u128) << 64);
    crate::digest::sha256(&seed.to_le_bytes()).digest().to_string()
}

/// The environment of a container: the image's, with each of `set` (`KEY=VALUE`)
/// replacing the variable of the same name.
pub fn merge_env(image_env: &[String], set: &[String]) -> Vec<String> {
    let mut env = image_env.to_vec();
    for kv in set {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    env
}

/// Runs a command in `image` to its end (in this process, which must be
/// single-threaded: the sandbox forks) and returns its exit code.
pub fn run(store: &Store, image: &Image, options: &RunOptions) -> Result<i32> {
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &options.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let cmd = if options.command.is_empty() {
        config.cmd().clone().unwrap_or_default()
    } else {
        options.command.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(Error::InvalidOption(
            "no command given and the image has no ENTRYPOINT or CMD".into(),
        ));
    }
    let id = new_id();
    let hostname = options.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    // Docker sets HOSTNAME in a container's environment (a build's RUN gets none).
    let mut env = merge_env(&config.env().clone().unwrap_or_default(), &options.env);
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    let _in_use = store.in_use()?;
    let lowers = store.snapshots(image)?;
    let run_dir: PathBuf = store.containers_dir().join(&id);
    std::fs::create_dir_all(&run_dir).map_err(Error::io("creating", run_dir.clone()))?;
    let pid_file = run_dir.join("pid");
    std::fs::write(&pid_file, std::process::id().to_string())
        .map_err(Error::io("writing", pid_file))?;
    let spec = SandboxSpec {
        lowers,
        run_dir: run_dir.clone(),
        args: argv,
        env,
        cwd: options
            .workdir
            .clone()
            .or_else(|| config.working_dir().clone())
            .unwrap_or_else(|| "/".into()),
        user: options.user.clone().or_else(|| config.user().clone()).unwrap_or_default(),
        hostname,
        network: options.network,
        volumes: options.volumes.clone(),
        limits: options.limits,
        tty: options.tty,
        layer_mounts: Vec::new(),
        tmpfs: Vec::new(),
        copy_root: store.on_overlayfs(),
    };
    let result = sandbox::run(&spec).map_err(|e| match e {
        // What the environment refused, with what to do about it.
        crate::Error::Sandbox(m) => crate::Error::Sandbox(sandbox::explain(&m)),
        crate::Error::Io { .. } => {
            crate::Error::Sandbox(sandbox::explain(&crate::error::chain(&e)))
        }
        other => other,
    });
    let _ = crate::store::remove_tree(&run_dir);
    result
}
