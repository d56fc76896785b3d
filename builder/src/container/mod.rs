//! Containers: a command run in an image, in the sandbox (`rbuild run`), kept in the
//! store as Docker keeps them. The command is the image's ENTRYPOINT and CMD unless
//! overridden, with its environment, user and working directory, over a writable layer of
//! the container's own that lives until the container is removed.
//!
//! There is no daemon. A container runs in the process that `rbuild run` is, or, detached
//! (`run -d`, `start`), in a supervisor process of its own ([`supervise`]) that outlives
//! the command line which started it, writes the command's output to the container's log
//! ([`logs`]), records its exit and restarts it as its policy says. `stop`, `kill` and
//! `rm` find the container's init through its folder and signal it ([`control`]).

pub mod commit;
pub mod control;
pub mod copy;
pub mod logs;
pub mod record;
mod supervisor;
pub mod volumes;

use std::path::PathBuf;

pub use control::{exec, kill, remove, stop, wait, ExecOptions};
pub use record::{find, list, Record, Restart, State, Status};
pub use supervisor::{supervise, Supervisor};

use crate::error::{Error, Result};
use crate::sandbox::{self, Limits, Network, PortMap, SandboxSpec, Volume};
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
    /// The container's name (default: one rbuild makes up).
    pub name: Option<String>,
    /// Published ports.
    pub ports: Vec<PortMap>,
    /// The restart policy.
    pub restart: Restart,
    /// The signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    /// Remove the container when it ends (`--rm`).
    pub auto_remove: bool,
    /// Volumes mounted by name (`-v NAME:/path[:ro]`), made on first use.
    pub named_volumes: Vec<NamedVolume>,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    pub extras: crate::sandbox::RunExtras,
}

/// A volume mounted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVolume {
    /// The volume's name.
    pub name: String,
    /// Where it appears inside (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
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

/// The container's command: the entrypoint (the image's, or `--entrypoint`), then the
/// command given or the image's CMD.
fn command_line(config: &oci_spec::image::Config, options: &RunOptions) -> Result<Vec<String>> {
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
    Ok(argv)
}

/// Makes a container of `image` (named `image_name` by the user): its record and folder,
/// state `created`, the image's layers extracted. Names are unique.
pub fn create(
    store: &Store,
    image: &Image,
    image_name: &str,
    options: &RunOptions,
) -> Result<Record> {
    let config = image.config.config().clone().unwrap_or_default();
    let argv = command_line(&config, options)?;
    if !options.ports.is_empty() && options.network != Network::Private {
        return Err(Error::InvalidOption(
            "published ports need the default network (not --network host or none)".into(),
        ));
    }
    if let Some(name) = options.name.as_deref().filter(|n| !record::valid_name(n)) {
        return Err(Error::InvalidOption(format!(
            "invalid container name {name:?}: a letter or digit, then letters, digits, _, . or -"
        )));
    }
    let id = new_id();
    let hostname = options.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    // Docker sets HOSTNAME in a container's environment (a build's RUN gets none).
    let mut env = merge_env(&config.env().clone().unwrap_or_default(), &options.env);
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    let _in_use = store.in_use()?;
    // The layers now, so that a start is quick and a broken image fails here.
    let view = crate::engine::rootfs::RootfsView::new(store.snapshots(image)?);
    let mut mounts = options.volumes.clone();
    let (mut volume_names, mut anonymous) = (Vec::new(), Vec::new());
    for v in &options.named_volumes {
        let data = volumes::ensure(store, &v.name, false, Some((&view, &v.target)))?;
        mounts.push(Volume { host: data, target: v.target.clone(), readonly: v.readonly });
        volume_names.push(v.name.clone());
    }
    // The image's VOLUMEs that no -v covers: an anonymous volume each.
    let declared: Vec<String> = config.volumes().clone().unwrap_or_default().into_iter().collect();
    for target in declared {
        let clean = target.trim_end_matches('/');
        if mounts.iter().any(|m| m.target.trim_end_matches('/') == clean) {
            continue;
        }
        let name = new_id();
        let data = volumes::ensure(store, &name, true, Some((&view, &target)))?;
        mounts.push(Volume { host: data, target: target.clone(), readonly: false });
        volume_names.push(name.clone());
        anonymous.push(name);
    }
    let run_dir: PathBuf = store.containers_dir().join(&id);
    let spec = SandboxSpec {
        lowers: Vec::new(),
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
        volumes: mounts,
        limits: options.limits,
        tty: options.tty,
        layer_mounts: Vec::new(),
        tmpfs: Vec::new(),
        copy_root: store.on_overlayfs(),
        ports: options.ports.clone(),
        extras: options.extras.clone(),
        throwaway_upper: false,
        download_cache: None,
    };
    let _lock = store.lock()?;
    let taken = record::names(store);
    let name = match &options.name {
        Some(n) if taken.contains(n) => {
            return Err(Error::Conflict(format!(
                "the container name {n:?} is already in use: remove that container (rbuild rm {n}) or choose another name"
            )))
        }
        Some(n) => n.clone(),
        None => record::default_name(&id, &taken),
    };
    let record = Record {
        id: id.clone(),
        name,
        image: image.id().to_string(),
        manifest: image.entry.manifest.clone(),
        image_name: image_name.to_string(),
        created: crate::engine::now_rfc3339(None),
        spec,
        restart: options.restart,
        stop_signal: options
            .stop_signal
            .clone()
            .or_else(|| config.stop_signal().clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: options.stop_timeout.unwrap_or(10),
        auto_remove: options.auto_remove,
        volumes: volume_names,
        anonymous_volumes: anonymous,
        state: State::default(),
    };
    // Made whole in this process's folder and renamed into place: a process killed on
    // the way leaves no container folder without its record (the sweep removes the rest).
    let staged = tempfile::Builder::new()
        .prefix("container-")
        .tempdir_in(store.tmp_dir())
        .map_err(Error::io("creating a folder in", store.tmp_dir()))?;
    record::save_in(store, staged.path(), &record)?;
    std::fs::create_dir_all(store.containers_dir())
        .map_err(Error::io("creating", store.containers_dir()))?;
    std::fs::rename(staged.path(), &run_dir)
        .map_err(Error::io("renaming into", run_dir.clone()))?;
    // The folder is in place now; nothing is left to remove.
    let _ = staged.keep();
    Ok(record)
}

/// Runs a command in `image` in this process (which must be single-threaded: the sandbox
/// forks), its output on rbuild's own, and returns its exit code. The container stays in
/// the store afterwards, exited, unless `auto_remove`.
pub fn run(store: &Store, image: &Image, image_name: &str, options: &RunOptions) -> Result<i32> {
    let record = create(store, image, image_name, options)?;
    let result = run_here(store, &record.id);
    if record.auto_remove {
        let _ = remove(store, &record.id, false, true);
    }
    result
}

/// Runs the container `id` in this process until its command ends for good (restarted
/// as its policy says), keeping its state in its record. The container's lock is held
/// throughout: a second start fails.
pub(crate) fn run_here(store: &Store, id: &str) -> Result<i32> {
    let _held = record::hold(store, id)?;
    let _in_use = store.in_use()?;
    loop {
        let mut rec = record::load(store, id)?;
        let entry = crate::store::ImageEntry { manifest: rec.manifest.clone(), names: Vec::new() };
        let image = store.image(&entry)?;
        rec.spec.lowers = store.snapshots(&image)?;
        if rec.spec.copy_root {
            rec.spec.lowers.extend(supervisor::generations(&rec.dir(store))?);
        }
        let _ = std::fs::remove_file(rec.dir(store).join(sandbox::STARTED));
        rec.state.status = Status::Running;
        rec.state.supervisor = Some(std::process::id());
        rec.state.started_at = Some(crate::engine::now_rfc3339(None));
        rec.state.error = None;
        record::save(store, &rec)?;
        let result = sandbox::process::run_in_child(&rec.spec).map_err(|e| match e {
            // What the environment refused, with what to do about it.
            crate::Error::Sandbox(m) => crate::Error::Sandbox(sandbox::explain(&m)),
            crate::Error::Io { .. } => {
                crate::Error::Sandbox(sandbox::explain(&crate::error::chain(&e)))
            }
            other => other,
        });
        let _ = std::fs::remove_file(rec.dir(store).join("init.pid"));
        rec.state.status = Status::Exited;
        rec.state.supervisor = None;
        rec.state.finished_at = Some(crate::engine::now_rfc3339(None));
        let code = match &result {
            Ok(code) => *code,
            Err(e) => {
                rec.state.error = Some(crate::error::chain(e));
                sandbox::SANDBOX_FAILED
            }
        };
        rec.state.exit_code = Some(code);
        let stopped = rec.dir(store).join(control::STOPPED).exists();
        let again = result.is_ok() && rec.restart.again(code, rec.state.restart_count, stopped);
        if again {
            rec.state.restart_count += 1;
        }
        record::save(store, &rec)?;
        if !again {
            return result;
        }
        // Docker's back-off: 100 ms, doubled each time, at most a minute.
        let pause = 100u64.saturating_mul(1 << rec.state.restart_count.min(10)).min(60_000);
        std::thread::sleep(std::time::Duration::from_millis(pause));
        if rec.dir(store).join(control::STOPPED).exists() {
            return result;
        }
    }
}
