//! A container's record in the store: `containers/<id>/container.json` (what it runs and
//! its state), beside its writable layer (`upper/`), its log (`log.json`) and the lock its
//! supervisor holds while it runs (`supervisor.lock`). The record is written whole, by a
//! rename, so a reader never sees half of one; whether a container runs is told by the
//! lock, not by the record, so a killed supervisor never leaves a container that claims to
//! run.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sandbox::SandboxSpec;
use crate::store::Store;

/// The record's file name in the container's folder.
pub const RECORD: &str = "container.json";

/// What the supervisor holds locked while the container runs.
const LOCK: &str = "supervisor.lock";

/// A container's lifecycle state, as `docker ps` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Its command runs.
    Running,
    /// Its command ended.
    Exited,
}

impl Status {
    /// The lowercase name (`running`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// When the supervisor starts the command again after it ends (`--restart`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never.
    #[default]
    No,
    /// After a non-zero exit, at most this many times (`None`: without end).
    OnFailure(Option<u32>),
    /// Always, unless stopped.
    Always,
    /// As `always`; Docker tells them apart across daemon restarts, which rbuild has not.
    UnlessStopped,
}

impl std::str::FromStr for Restart {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "no" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure(None),
            other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => Restart::OnFailure(Some(n)),
                _ => {
                    return Err(format!(
                        "invalid restart policy {s:?}: no, on-failure[:N], always or unless-stopped"
                    ))
                }
            },
        })
    }
}

impl Restart {
    /// Whether a command that ended with `code` is started again, after `restarts`
    /// restarts so far; never once it was stopped on purpose.
    pub fn again(self, code: i32, restarts: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(limit) => code != 0 && limit.is_none_or(|n| restarts < n),
        }
    }
}

/// The state of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Created, running or exited.
    pub status: Status,
    /// The supervisor's process ID while it runs.
    #[serde(default)]
    pub supervisor: Option<u32>,
    /// The last exit code.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// When the command last started (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it last ended (RFC 3339).
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it ended other than by its own exit (its supervisor killed, a start refused).
    #[serde(default)]
    pub error: Option<String>,
    /// How often the supervisor started it again.
    #[serde(default)]
    pub restart_count: u32,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// The image's ID (its config digest) and its manifest's digest (kept from garbage
    /// collection while the container exists).
    pub image: String,
    /// The manifest the container was made from (a root of garbage collection while the
    /// container exists, so it starts again whatever becomes of the image's names).
    pub manifest: oci_spec::image::Descriptor,
    /// The image as the user named it.
    pub image_name: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// What runs, and how (layers are looked up again at each start).
    pub spec: SandboxSpec,
    /// The restart policy.
    pub restart: Restart,
    /// The signal `stop` sends first (`SIGTERM`).
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u64,
    /// Removed once it ends (`--rm`).
    pub auto_remove: bool,
    /// The volumes it mounts, by name (see [`super::volumes`]).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Those of them made for the image's VOLUMEs: removed with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// The state.
    pub state: State,
}

impl Record {
    /// The container's folder.
    pub fn dir(&self, store: &Store) -> PathBuf {
        store.containers_dir().join(&self.id)
    }

    /// The command line, as `docker ps` shows it.
    pub fn command(&self) -> String {
        self.spec.args.join(" ")
    }
}

/// Reads a container's record.
pub fn load(store: &Store, id: &str) -> Result<Record> {
    load_in(&store.containers_dir(), id)
}

/// Reads a container's record from a store's `containers` folder.
fn load_in(containers: &std::path::Path, id: &str) -> Result<Record> {
    let path = containers.join(id).join(RECORD);
    let text = fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoSuchContainer(id.to_string()),
        _ => Error::io("reading", path.clone())(e),
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::Json { what: path.display().to_string(), source: e })
}

/// Writes a container's record whole (by a rename).
pub fn save(store: &Store, record: &Record) -> Result<()> {
    save_in(store, &record.dir(store), record)
}

/// Writes a container's record whole into `dir` (a folder staged before it takes its place).
pub(crate) fn save_in(store: &Store, dir: &std::path::Path, record: &Record) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::Json { what: "a container record".into(), source: e })?;
    crate::store::write_atomically(&store.tmp_dir(), &dir.join(RECORD), &bytes)
}

/// Every container of the store, their states made true (see [`refresh`]), oldest first.
pub fn list(store: &Store) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    let dir = store.containers_dir();
    for entry in fs::read_dir(&dir).map_err(Error::io("listing", dir.clone()))?.flatten() {
        if !entry.path().join(RECORD).exists() {
            continue;
        }
        if let Ok(record) = load(store, &entry.file_name().to_string_lossy()) {
            all.push(refresh(store, record)?);
        }
    }
    all.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(all)
}

/// The names of the store's containers (their states not looked at: no lock is taken,
/// so a caller may hold the store's lock).
pub fn names(store: &Store) -> Vec<String> {
    let Ok(entries) = fs::read_dir(store.containers_dir()) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| load(store, &e.file_name().to_string_lossy()).ok())
        .map(|r| r.name)
        .collect()
}

/// The container named `what`: its name, its whole ID, or a prefix of one ID.
pub fn find(store: &Store, what: &str) -> Result<Record> {
    pick(list(store)?, what)
}

/// As [`find`], reading the records of a store's `containers` folder as they are, without
/// opening the store (`exec` joins a container's user namespace from outside it).
pub fn find_in(containers: &std::path::Path, what: &str) -> Result<Record> {
    let entries =
        fs::read_dir(containers).map_err(Error::io("listing", containers.to_path_buf()))?;
    let all = entries
        .flatten()
        .filter_map(|e| load_in(containers, &e.file_name().to_string_lossy()).ok());
    pick(all.collect(), what)
}

/// Whether the container in `dir` (its folder) runs; see [`running`].
pub fn running_in(dir: &std::path::Path) -> bool {
    let Ok(file) = fs::File::open(dir.join(LOCK)) else { return false };
    matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
}

fn pick(all: Vec<Record>, what: &str) -> Result<Record> {
    let what = what.trim_start_matches('/');
    if let Some(r) = all.iter().find(|r| r.name == what || r.id == what) {
        return Ok(r.clone());
    }
    let matching: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(what)).collect();
    match matching.as_slice() {
        [one] if !what.is_empty() => Ok((*one).clone()),
        [] | [_] => Err(Error::NoSuchContainer(what.to_string())),
        _ => Err(Error::Conflict(format!("container ID {what} is ambiguous: it matches several"))),
    }
}

/// Whether the container's supervisor runs (it holds the lock while it lives).
pub fn running(store: &Store, id: &str) -> bool {
    running_in(&store.containers_dir().join(id))
}

/// Takes the container's lock, for its supervisor (or a foreground run) to hold while the
/// command runs; fails when another holds it.
pub fn hold(store: &Store, id: &str) -> Result<fs::File> {
    let path = store.containers_dir().join(id).join(LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("opening", path.clone()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
            "container {} is already running",
            &id[..12.min(id.len())]
        ))),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", path)(e)),
    }
}

/// The record with a true state: one that says running while no supervisor holds the
/// lock lost its supervisor to a kill (its command died with it: the sandbox's init has
/// the supervisor's death as its own); it is marked exited, with that reason, and the
/// cgroups it may have left are removed.
pub fn refresh(store: &Store, mut record: Record) -> Result<Record> {
    if record.state.status != Status::Running || running(store, &record.id) {
        return Ok(record);
    }
    let _lock = store.lock()?;
    // Read again under the lock: a supervisor may have just written its end.
    record = load(store, &record.id)?;
    if record.state.status == Status::Running && !running(store, &record.id) {
        record.state.status = Status::Exited;
        record.state.exit_code = Some(137);
        record.state.supervisor = None;
        record.state.finished_at = Some(crate::engine::now_rfc3339(None));
        record.state.error = Some("its supervisor was killed, and the command with it".into());
        crate::sandbox::remove_stale_cgroups(&record.id);
        save(store, &record)?;
    }
    Ok(record)
}

/// Adjectives and nouns of rbuild's own for containers' default names (`brisk_heron`).
const ADJECTIVES: &[&str] = &[
    "amber", "brisk", "calm", "deft", "eager", "fond", "gentle", "hardy", "keen", "lucid", "merry",
    "nimble", "plucky", "quiet", "rapid", "sober", "tidy", "upbeat", "vivid", "witty", "young",
    "zesty", "bold", "clever",
];
const NOUNS: &[&str] = &[
    "heron", "otter", "maple", "cedar", "falcon", "badger", "lynx", "walrus", "finch", "willow",
    "bison", "marten", "osprey", "tapir", "quokka", "ibex", "puffin", "lemur", "aspen", "birch",
    "gecko", "koala", "raven", "yak",
];

/// A name no container of `taken` has: an adjective and a noun picked from the ID's
/// digits, with a number after them when all of those are taken.
pub fn default_name(id: &str, taken: &[String]) -> String {
    let seed = u64::from_str_radix(id.get(..12).unwrap_or("0"), 16).unwrap_or(0) as usize;
    let pairs = ADJECTIVES.len() * NOUNS.len();
    for i in 0..pairs {
        let n = (seed + i * 7) % pairs;
        let name = format!("{}_{}", ADJECTIVES[n % ADJECTIVES.len()], NOUNS[n / ADJECTIVES.len()]);
        if !taken.contains(&name) {
            return name;
        }
    }
    let base = format!("{}_{}", ADJECTIVES[seed % ADJECTIVES.len()], NOUNS[seed % NOUNS.len()]);
    (2..).map(|k| format!("{base}{k}")).find(|n| !taken.contains(n)).unwrap_or(base)
}

/// Whether `name` may name a container: Docker's rule, a letter or digit and then
/// letters, digits, `_`, `.` and `-`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        let p: Restart = "on-failure:2".parse().unwrap();
        assert!(p.again(1, 0, false) && p.again(1, 1, false) && !p.again(1, 2, false));
        assert!(!p.again(0, 0, false), "a clean exit is not a failure");
        assert!(!"always".parse::<Restart>().unwrap().again(0, 9, true), "stopped");
        assert!("always".parse::<Restart>().unwrap().again(0, 9, false));
        assert!("on-failure:x".parse::<Restart>().is_err());
        assert!(!"no".parse::<Restart>().unwrap().again(1, 0, false));
    }

    #[test]
    fn names() {
        let id = "0123456789abcdef".repeat(4);
        let first = default_name(&id, &[]);
        let second = default_name(&id, std::slice::from_ref(&first));
        assert_ne!(first, second);
        assert!(valid_name(&first) && valid_name("db-1.test_x"));
        assert!(!valid_name("") && !valid_name("-x") && !valid_name("a b") && !valid_name("a/b"));
    }
}
