//! A detached container's supervisor: a process of rbuild's own per container (as
//! Podman's conmon), started by `run -d` or `start` in a session of its own, that runs the
//! container ([`super::run_here`]) with the command's output going to a logger process,
//! and ends when the container ends for good. It holds the container's lock while it
//! lives; killed, it takes the command with it (the sandbox's init dies with its parent)
//! and the next listing marks the container exited.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::record::{self, Status};
use crate::error::{Error, Result};
use crate::store::Store;

/// How to start a supervisor: rbuild's own executable and the arguments of its hidden
/// supervisor command (the container's ID follows them).
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments before the ID (`--root STORE __supervise`, say).
    pub args: Vec<String>,
}

/// How long a start may take before `run -d` gives up waiting for the command to run.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Supervisor {
    /// Starts container `id` (created or exited) in a supervisor of its own and returns
    /// once its command runs, or with the reason it could not start.
    pub fn start(&self, store: &Store, id: &str) -> Result<()> {
        let before = record::load(store, id)?;
        if record::running(store, id) {
            return Err(Error::Conflict(format!("container {} is already running", before.name)));
        }
        let dir = before.dir(store);
        let _ = std::fs::remove_file(dir.join(super::control::STOPPED));
        let log = dir.join("supervisor.log");
        let err = std::fs::File::create(&log).map_err(Error::io("creating", log.clone()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).arg(id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        let mut child = crate::sandbox::process::spawn_in_new_session(&mut cmd)
            .map_err(Error::io("starting", self.program.clone()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let now = record::load(store, id)?;
            let started = now.state.started_at != before.state.started_at;
            // Running, and its sandbox up: network configured, ports published.
            if started
                && now.state.status == Status::Running
                && dir.join(crate::sandbox::STARTED).exists()
            {
                return Ok(());
            }
            if started && now.state.status == Status::Exited {
                // It ran and already ended (or failed to start): the run counts.
                return match now.state.error {
                    Some(e) => Err(Error::Sandbox(e)),
                    None => Ok(()),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(Error::Sandbox(format!(
                    "the supervisor of container {} ended ({status}) before it started: {}",
                    now.name,
                    said.trim()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Sandbox(format!(
                    "container {} did not start within {} s",
                    now.name,
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The supervisor's work, in its own process (single-threaded: the sandbox forks): the
/// logger started, the container run until it ends for good, removed then if `--rm`.
/// Returns the command's last exit code.
pub fn supervise(store: &Store, id: &str) -> Result<i32> {
    let rec = record::load(store, id)?;
    start_logger(&rec.dir(store).join(super::logs::LOG))?;
    let result = super::run_here(store, id);
    if rec.auto_remove {
        // Its anonymous volumes go with it. (The command's output pipes close as this
        // process ends; the log goes with the folder anyway.)
        let _ = super::remove(store, id, false, true);
    }
    result
}

/// The writable layers of earlier runs of a container whose store is on overlayfs (its
/// root is stacked by copying, so its `upper/` holds only one run's changes): the last
/// run's `upper/` becomes `gen-N`, and all of them are stacked over the image's layers,
/// oldest first.
pub(super) fn generations(dir: &Path) -> Result<Vec<PathBuf>> {
    let upper = dir.join("upper");
    let mut gens = earlier_runs(dir)?;
    let has_changes = std::fs::read_dir(&upper).is_ok_and(|mut d| d.next().is_some());
    if has_changes {
        let next = gens.last().map_or(0, |(n, _)| n + 1);
        let dest = dir.join(format!("gen-{next}"));
        std::fs::rename(&upper, &dest).map_err(Error::io("renaming", upper.clone()))?;
        gens.push((next, dest));
    }
    Ok(gens.into_iter().map(|(_, p)| p).collect())
}

/// The layers of a container's earlier runs (`gen-N` in its folder), oldest first, with
/// their numbers.
pub(super) fn earlier_runs(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut gens: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map_err(Error::io("listing", dir.to_path_buf()))?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().strip_prefix("gen-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    gens.sort();
    Ok(gens)
}

/// Forks the logger: the command's standard output and error become pipes to it, and it
/// writes each line to `log` with its stream and time (see [`super::logs`]).
fn start_logger(log: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io("opening", log.to_path_buf()))?;
    crate::sandbox::process::fork_output_logger(log, move |out, err| {
        super::logs::copy_streams(out, err, file)
    })
}
