//! Stopping, signalling, waiting for and removing containers. Signals go to the
//! container's init (its PID is in `init.pid` while the command runs), which passes them
//! to the command; SIGKILL ends the init and with it every process of the container.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::record::{self, Record, Status};
use crate::error::{Error, Result};
use crate::store::Store;

/// A file in the container's folder while it was stopped on purpose (`stop`, `kill`): its
/// restart policy does not start it again. `start` removes it.
pub const STOPPED: &str = "stopped";

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number (`15`).
pub fn parse_signal(text: &str) -> Result<Signal> {
    let bad = || Error::InvalidOption(format!("invalid signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| bad())
}

fn init_pid(dir: &Path) -> Option<nix::unistd::Pid> {
    let text = std::fs::read_to_string(dir.join("init.pid")).ok()?;
    text.trim().parse::<i32>().ok().filter(|p| *p > 1).map(nix::unistd::Pid::from_raw)
}

/// Sends `signal` to the running container's command (through its init). SIGKILL ends
/// the init itself. Fails when the container does not run.
pub fn kill(store: &Store, what: &str, signal: Signal) -> Result<Record> {
    let rec = record::find(store, what)?;
    if !record::running(store, &rec.id) {
        return Err(Error::Conflict(format!("container {} is not running", rec.name)));
    }
    mark_stopped(store, &rec)?;
    send(store, &rec, signal);
    Ok(rec)
}

fn mark_stopped(store: &Store, rec: &Record) -> Result<()> {
    let path = rec.dir(store).join(STOPPED);
    std::fs::write(&path, b"").map_err(Error::io("writing", path))
}

fn send(store: &Store, rec: &Record, signal: Signal) {
    match init_pid(&rec.dir(store)) {
        Some(init) => {
            let _ = nix::sys::signal::kill(init, signal);
        }
        // Between two runs (a restart's pause): the supervisor itself ends, once it is
        // sure the process of that number is this container's supervisor (numbers are
        // reused).
        None => {
            let is_ours = |pid: &u32| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&rec.id))
            };
            if let Some(pid) = rec.state.supervisor.filter(|p| *p > 1).filter(is_ours) {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            }
        }
    }
}

/// Waits until the container no longer runs, `limit` at most; whether it stopped.
fn wait_stopped(store: &Store, id: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while record::running(store, id) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Stops a running container as `docker stop` does: its stop signal, then SIGKILL after
/// `timeout` seconds (default: the container's own, 10 unless set). A container that
/// does not run is left as it is.
pub fn stop(store: &Store, what: &str, timeout: Option<u64>) -> Result<Record> {
    let rec = record::find(store, what)?;
    if !record::running(store, &rec.id) {
        return Ok(rec);
    }
    mark_stopped(store, &rec)?;
    let signal = parse_signal(&rec.stop_signal).unwrap_or(Signal::SIGTERM);
    send(store, &rec, signal);
    let limit = Duration::from_secs(timeout.unwrap_or(rec.stop_timeout));
    if !wait_stopped(store, &rec.id, limit) {
        send(store, &rec, Signal::SIGKILL);
        if !wait_stopped(store, &rec.id, Duration::from_secs(10)) {
            return Err(Error::Conflict(format!(
                "container {} did not stop within 10 s of SIGKILL",
                rec.name
            )));
        }
    }
    record::load(store, &rec.id)
}

/// Waits until the container ends and returns its exit code (that of its last run).
pub fn wait(store: &Store, what: &str) -> Result<i32> {
    let rec = record::find(store, what)?;
    while record::running(store, &rec.id) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rec = record::refresh(store, record::load(store, &rec.id)?)?;
    Ok(rec.state.exit_code.unwrap_or(0))
}

/// Removes a container, its writable layer and its log, and with `volumes` its anonymous
/// volumes. A running one is refused unless `force`, which kills it first. (The
/// supervisor of a `--rm` container removes it while it still holds its lock.)
pub fn remove(store: &Store, what: &str, force: bool, volumes: bool) -> Result<Record> {
    let rec = record::find(store, what)?;
    if record::running(store, &rec.id) && rec.state.supervisor != Some(std::process::id()) {
        if !force {
            return Err(Error::Conflict(format!(
                "container {} is running: stop it first, or remove it with -f",
                rec.name
            )));
        }
        mark_stopped(store, &rec)?;
        send(store, &rec, Signal::SIGKILL);
        if !wait_stopped(store, &rec.id, Duration::from_secs(10)) {
            return Err(Error::Conflict(format!("container {} did not end", rec.name)));
        }
    }
    let dir = rec.dir(store);
    {
        let _lock = store.lock()?;
        // Never half a container under its name, whenever the process is killed.
        store.remove_dir_aside(&dir).map_err(Error::io("removing", dir.clone()))?;
    }
    if volumes {
        for name in &rec.anonymous_volumes {
            super::volumes::remove(store, name)?;
        }
    }
    Ok(Record { state: super::State { status: Status::Exited, ..rec.state.clone() }, ..rec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("SIGNOPE").is_err() && parse_signal("999").is_err());
    }
}

/// What `rbuild exec` runs, beside the container's own settings.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `KEY=VALUE`s set over the container's environment.
    pub env: Vec<String>,
    /// The working directory (default: the container's).
    pub workdir: Option<String>,
    /// The user (default: the container's).
    pub user: Option<String>,
    /// A pseudo-terminal for the command.
    pub tty: bool,
}

/// Runs a command in a running container, found in `containers` (a store's folder of
/// them; the store is not opened: a normal user's rbuild joins the container's user
/// namespace from outside it). Returns the command's exit code.
pub fn exec(containers: &Path, what: &str, options: &ExecOptions) -> Result<i32> {
    if options.command.is_empty() {
        return Err(Error::InvalidOption("exec needs a command".into()));
    }
    let rec = record::find_in(containers, what)?;
    let dir = containers.join(&rec.id);
    let init = match init_pid(&dir) {
        Some(pid) if record::running_in(&dir) => pid,
        _ => return Err(Error::Conflict(format!("container {} is not running", rec.name))),
    };
    // Until its init has its file system in place, joining it would join a half-made
    // sandbox (the host's files still in view).
    if !dir.join(crate::sandbox::STARTED).exists() {
        return Err(Error::Conflict(format!("container {} is still starting", rec.name)));
    }
    let mut spec = rec.spec.clone();
    spec.args = options.command.clone();
    spec.env = super::merge_env(&spec.env, &options.env);
    if let Some(w) = &options.workdir {
        spec.cwd = w.clone();
    }
    if let Some(u) = &options.user {
        spec.user = u.clone();
    }
    spec.tty = options.tty;
    crate::sandbox::exec(init.as_raw() as u32, &spec)
}

/// A container as `docker container inspect` shows one (the fields tools read most).
pub fn inspect_view(store: &Store, rec: &Record) -> serde_json::Value {
    let running = record::running(store, &rec.id);
    let init = init_pid(&rec.dir(store)).filter(|_| running).map_or(0, |p| p.as_raw());
    let ports: serde_json::Map<String, serde_json::Value> = rec
        .spec
        .ports
        .iter()
        .map(|p| {
            let key = format!("{}/{}", p.container_port, p.proto);
            let value =
                serde_json::json!([{ "HostIp": p.host_ip, "HostPort": p.host_port.to_string() }]);
            (key, value)
        })
        .collect();
    let mounts: Vec<serde_json::Value> = rec
        .spec
        .volumes
        .iter()
        .map(|v| {
            let name = rec
                .volumes
                .iter()
                .find(|n| v.host.starts_with(super::volumes::volumes_dir(store).join(n)));
            serde_json::json!({
                "Type": if name.is_some() { "volume" } else { "bind" },
                "Name": name,
                "Source": v.host,
                "Destination": v.target,
                "RW": !v.readonly,
            })
        })
        .collect();
    let (entry, cmd) =
        (rec.spec.args.first().cloned(), rec.spec.args.iter().skip(1).cloned().collect::<Vec<_>>());
    serde_json::json!({
        "Id": rec.id,
        "Name": format!("/{}", rec.name),
        "Created": rec.created,
        "Path": entry,
        "Args": cmd,
        "Image": rec.image,
        "State": {
            "Status": if running { "running" } else { rec.state.status.name() },
            "Running": running,
            "Pid": init,
            "ExitCode": rec.state.exit_code.unwrap_or(0),
            "Error": rec.state.error.clone().unwrap_or_default(),
            "StartedAt": rec.state.started_at.clone().unwrap_or_default(),
            "FinishedAt": rec.state.finished_at.clone().unwrap_or_default(),
        },
        "RestartCount": rec.state.restart_count,
        "Config": {
            "Hostname": rec.spec.hostname,
            "Image": rec.image_name,
            "Env": rec.spec.env,
            "Cmd": rec.spec.args,
            "WorkingDir": rec.spec.cwd,
            "User": rec.spec.user,
            "StopSignal": rec.stop_signal,
            "StopTimeout": rec.stop_timeout,
        },
        "HostConfig": {
            "AutoRemove": rec.auto_remove,
            "RestartPolicy": rec.restart,
            "PortBindings": ports.clone(),
            "Memory": rec.spec.limits.memory.unwrap_or(0),
            "PidsLimit": rec.spec.limits.pids.unwrap_or(0),
        },
        "NetworkSettings": { "Ports": ports },
        "Mounts": mounts,
        "LogPath": rec.dir(store).join(super::logs::LOG),
    })
}

/// The processes of a running container, as (PID on the host, parent's PID, user ID,
/// command line), oldest first: every process in its init's PID namespace.
pub fn processes(store: &Store, what: &str) -> Result<Vec<(u32, u32, u32, String)>> {
    let rec = record::find(store, what)?;
    let init = match init_pid(&rec.dir(store)) {
        Some(p) if record::running(store, &rec.id) => p.as_raw(),
        _ => return Err(Error::Conflict(format!("container {} is not running", rec.name))),
    };
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    // The init's own namespace is the host's; its children's is the container's.
    let child = std::fs::read_dir("/proc")
        .map_err(Error::io("listing", std::path::PathBuf::from("/proc")))?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .collect::<Vec<_>>();
    let status = |pid: i32, key: &str| -> Option<String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string())
    };
    let inner = crate::sandbox::first_child(init as u32).and_then(|p| ns(p as i32));
    let mut found = Vec::new();
    for pid in child {
        if pid != init && (inner.is_none() || ns(pid) != inner) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ").trim().to_string();
        let ppid = status(pid, "PPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
        let uid = status(pid, "Uid:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        found.push((pid as u32, ppid, uid, cmd));
    }
    Ok(found)
}
