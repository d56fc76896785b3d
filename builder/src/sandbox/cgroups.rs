//! Resource limits through cgroups, v1 (one hierarchy per controller, as on this kind of
//! machine) or v2 (the unified hierarchy), placed under the caller's own cgroup.

use std::fs;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Limits for one sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// Number of processes (tasks).
    pub pids: Option<u64>,
    /// CPU time, in CPUs (1.5 = one and a half cores).
    pub cpus: Option<f64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpus.is_some()
    }
}

/// The cgroup directories of one sandbox.
#[derive(Debug, Clone)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

const ROOT: &str = "/sys/fs/cgroup";

/// This process's cgroup path in the hierarchy that holds `controller` (v1), or in the
/// unified hierarchy when `controller` is empty.
fn own_path(controller: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_string())
    })
}

/// Whether the unified hierarchy at the root offers these controllers.
fn v2_offers(controllers: &[&str]) -> bool {
    fs::read_to_string(format!("{ROOT}/cgroup.controllers"))
        .map(|c| controllers.iter().all(|w| c.split_whitespace().any(|have| have == *w)))
        .unwrap_or(false)
}

fn write(dir: &std::path::Path, file: &str, value: &str) -> Result<()> {
    fs::write(dir.join(file), value).map_err(Error::io("writing", dir.join(file)))
}

/// The devices a container may use, as Docker (runc) allows them by default: `mknod` of
/// any node (opening it is what counts), and read, write and mknod of null, zero, full,
/// random, urandom, tty, console, ptmx and the pseudo-terminals.
pub const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

fn name(id: &str) -> String {
    format!("rbuild-{id}")
}

impl Cgroup {
    /// Creates the cgroups for `limits` (none when no limit is set).
    pub fn create(id: &str, limits: &Limits) -> Result<Option<Cgroup>> {
        if !limits.any() {
            return Ok(None);
        }
        let mut wanted = Vec::new();
        if limits.memory.is_some() {
            wanted.push("memory");
        }
        if limits.pids.is_some() {
            wanted.push("pids");
        }
        if limits.cpus.is_some() {
            wanted.push("cpu");
        }
        let mut group = Cgroup { dirs: Vec::new() };
        if v2_offers(&wanted) {
            let base = own_path("").unwrap_or_default();
            let dir = PathBuf::from(ROOT).join(base.trim_start_matches('/')).join(name(id));
            fs::create_dir_all(&dir).map_err(Error::io("creating the cgroup", dir.clone()))?;
            group.dirs.push(dir.clone());
            if let Some(m) = limits.memory {
                write(&dir, "memory.max", &m.to_string())?;
                let _ = write(&dir, "memory.swap.max", "0");
            }
            if let Some(p) = limits.pids {
                write(&dir, "pids.max", &p.to_string())?;
            }
            if let Some(c) = limits.cpus {
                write(&dir, "cpu.max", &format!("{} 100000", (c * 100_000.0).round() as u64))?;
            }
            return Ok(Some(group));
        }
        // cgroup v1's device controller, where the machine has it: only Docker's default
        // devices may be opened (defence in depth: every writable mount is nodev already).
        // The unified hierarchy filters devices with a BPF program, which rbuild does not
        // load; there the nodev mounts alone hold.
        if own_path("devices").is_some() {
            wanted.push("devices");
        }
        for controller in wanted {
            let Some(base) = own_path(controller) else {
                group.remove();
                return Err(Error::Sandbox(format!(
                    "this limit needs the {controller} cgroup controller, which this machine does not offer"
                )));
            };
            let mount = fs::read_dir(ROOT)
                .ok()
                .and_then(|d| {
                    d.flatten().map(|e| e.path()).find(|p| {
                        p.file_name().is_some_and(|n| {
                            n.to_string_lossy().split(',').any(|c| c == controller)
                        })
                    })
                })
                .unwrap_or_else(|| PathBuf::from(ROOT).join(controller));
            let dir = mount.join(base.trim_start_matches('/')).join(name(id));
            fs::create_dir_all(&dir).map_err(Error::io("creating the cgroup", dir.clone()))?;
            group.dirs.push(dir.clone());
            match controller {
                "memory" => {
                    let m = limits.memory.unwrap_or(u64::MAX).to_string();
                    write(&dir, "memory.limit_in_bytes", &m)?;
                    // No swap beyond the limit, where the kernel accounts it.
                    let _ = write(&dir, "memory.memsw.limit_in_bytes", &m);
                }
                "pids" => write(&dir, "pids.max", &limits.pids.unwrap_or(0).to_string())?,
                "devices" => {
                    write(&dir, "devices.deny", "a")?;
                    for rule in DEFAULT_DEVICES {
                        write(&dir, "devices.allow", rule)?;
                    }
                }
                _ => {
                    write(&dir, "cpu.cfs_period_us", "100000")?;
                    let quota = (limits.cpus.unwrap_or(1.0) * 100_000.0).round() as u64;
                    write(&dir, "cpu.cfs_quota_us", &quota.max(1000).to_string())?;
                }
            }
        }
        Ok(Some(group))
    }

    /// Moves the calling process into the cgroups (its children follow).
    pub fn enter(&self) -> Result<()> {
        for dir in &self.dirs {
            write(dir, "cgroup.procs", "0")?;
        }
        Ok(())
    }

    /// Removes the cgroups. A cgroup goes only once no process is listed in it: a process
    /// the kernel is still killing (the rest of a PID namespace whose init ended, one the
    /// memory limit killed) can stay listed for a while on a loaded machine, so what is
    /// still listed is killed again and the removal retried, for up to ten seconds.
    pub fn remove(&self) {
        for dir in &self.dirs {
            let mut pause = std::time::Duration::from_millis(5);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while fs::remove_dir(dir).is_err() && dir.exists() {
                if std::time::Instant::now() >= deadline {
                    break;
                }
                let listed = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in listed.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // Only this sandbox's processes are in its cgroup.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// Removes the cgroups a killed run with this ID left, if any.
pub fn remove_stale_cgroups(id: &str) {
    let Ok(roots) = fs::read_dir(ROOT) else { return };
    let mut candidates = vec![PathBuf::from(ROOT)];
    candidates.extend(roots.flatten().map(|e| e.path()));
    let mut dirs = Vec::new();
    for root in candidates {
        for controller in ["", "memory", "pids", "cpu", "devices"] {
            if let Some(base) = own_path(controller) {
                let dir = root.join(base.trim_start_matches('/')).join(name(id));
                if dir.is_dir() && !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    Cgroup { dirs }.remove();
}
