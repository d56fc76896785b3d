//! A normal user's rbuild in a user namespace that maps the user's subordinate ids, as
//! rootless Podman and Buildah run: root inside is the user, ids 1 and up are the ranges
//! `/etc/subuid` and `/etc/subgid` give the user, written by the privileged helpers
//! `newuidmap` and `newgidmap` (the kernel lets a normal user map only itself). Inside,
//! rbuild is root over the store: image files keep their owners, and a RUN may run as
//! any user of the image, where a namespace mapping only the caller allows root alone.
//!
//! Root without CAP_SYS_ADMIN (a container's root under a seccomp policy that allows user
//! namespaces) enters one too, mapping every id to itself: root there owns the
//! namespaces the sandbox makes, so RUN steps get the full sandbox rather than the
//! container isolation.
//!
//! The process cannot enter the namespace itself once threads exist, so the entry happens
//! first thing: a child makes the namespace, the parent has the maps written, and the
//! child runs rbuild again inside while the parent waits and passes signals on.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

/// Set in the environment of the rbuild that runs inside the namespace.
pub const ENTERED_VAR: &str = "RBUILD_SUBIDS_ENTERED";

/// Set to `off` (or `0`), rbuild does not use subordinate ids: the sandbox's user
/// namespace then maps the caller alone.
pub const SWITCH_VAR: &str = "RBUILD_SUBIDS";

/// One range of `/etc/subuid` or `/etc/subgid`: the first id and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first id on the host.
    pub start: u64,
    /// How many ids.
    pub count: u64,
}

/// The ranges of a subordinate-id file's text for a user, by name or number, in order.
/// Lines are `owner:start:count`; malformed lines and empty ranges are skipped.
pub fn ranges(text: &str, name: Option<&str>, id: u32) -> Vec<Range> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
            let range = Range { start: start.parse().ok()?, count: count.parse().ok()? };
            (mine && range.count > 0).then_some(range)
        })
        .collect()
}

/// The arguments of `newuidmap PID ...` (or `newgidmap`): the caller's id as 0, then
/// the ranges one after another from 1 (the kernel allows a few hundred lines; more
/// than 300 ranges are left out).
pub fn map_arguments(own: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut next = 1u64;
    for r in ranges.iter().take(300) {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next = next.saturating_add(r.count);
    }
    args
}

/// What entering needs, found.
#[derive(Debug)]
enum Plan {
    /// A normal user's: the helpers and both maps' arguments.
    Helpers { newuidmap: PathBuf, newgidmap: PathBuf, uid_args: Vec<String>, gid_args: Vec<String> },
    /// Root's: every id but the last mapped to itself, written directly.
    Identity,
}

/// The map root writes for itself: every id but the highest valid one (4294967294,
/// the kernel's overflow id, never an owner), so that the namespace is told from the
/// host's own (`0 0 4294967295`) by its map.
const IDENTITY_MAP: &str = "0 0 4294967294";

/// The value of [`ENTERED_VAR`] for root's identity namespace.
pub const ROOT_ENTERED: &str = "root";

/// The value of [`ENTERED_VAR`] for a normal user's namespace of subordinate ids.
const USER_ENTERED: &str = "subids";

/// Whether this rbuild runs in the namespace of a normal user's subordinate ids (root
/// there, but the user's everything else: the store's place, say).
pub fn entered_for_a_user() -> bool {
    std::env::var(ENTERED_VAR).is_ok_and(|v| v == USER_ENTERED)
}

fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The reason when this process should not (or cannot) enter: already inside, root
/// that may make namespaces (or may not even in a user namespace), the switch off, no
/// ranges for the user, no helpers.
fn plan() -> Result<Plan, String> {
    if std::env::var_os(ENTERED_VAR).is_some() {
        return Err("already in the namespace".into());
    }
    if crate::users::is_root() {
        if crate::users::in_user_namespace() {
            return Err("already in a user namespace".into());
        }
        use super::environment::namespaces_refused_with;
        if namespaces_refused_with(false).is_none() {
            return Err("root may make namespaces".into());
        }
        // Only where root may not: a probe forks this process.
        return match namespaces_refused_with(true) {
            None => Ok(Plan::Identity),
            Some(why) => Err(why),
        };
    }
    if std::env::var(SWITCH_VAR).is_ok_and(|v| v == "off" || v == "0") {
        return Err(format!("{SWITCH_VAR}=off"));
    }
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten();
    let name = user.as_ref().map(|u| u.name.as_str());
    let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
    // Groups are listed by the user's name (or number) too, as newgidmap reads them.
    let uid_ranges = ranges(&read("/etc/subuid"), name, uid);
    let gid_ranges = ranges(&read("/etc/subgid"), name, uid);
    if uid_ranges.is_empty() || gid_ranges.is_empty() {
        return Err("no subordinate ids for this user in /etc/subuid and /etc/subgid".into());
    }
    let (Some(newuidmap), Some(newgidmap)) = (find_helper("newuidmap"), find_helper("newgidmap"))
    else {
        return Err("newuidmap and newgidmap are not installed (Debian: package uidmap)".into());
    };
    Ok(Plan::Helpers {
        newuidmap,
        newgidmap,
        uid_args: map_arguments(uid, &uid_ranges),
        gid_args: map_arguments(gid, &gid_ranges),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("making a pipe: {e}"))
}

fn run_helper(helper: &Path, child: Pid, args: &[String]) -> Result<(), String> {
    let out = Command::new(helper)
        .arg(child.to_string())
        .args(args)
        .output()
        .map_err(|e| format!("starting {}: {e}", helper.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} {} {}: {}",
        helper.display(),
        child,
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// How entering went.
#[derive(Debug)]
pub enum Entry {
    /// rbuild ran inside the namespace and ended with this exit code: exit with it.
    Ran(i32),
    /// Not entered (the reason): go on here, in a namespace that maps the caller alone.
    NotEntered(String),
    /// Entering was tried and failed (the reason): go on here, and say so.
    Failed(String),
}

/// Runs rbuild again, with the same arguments, in a user namespace: one that maps the
/// caller's subordinate ids, when rbuild is not root, the user has ranges in
/// `/etc/subuid` and `/etc/subgid`, and `newuidmap` and `newgidmap` are installed; one
/// that maps every id to itself, for root that may make namespaces only in a user
/// namespace. Call it first thing in `main`, while the process is single-threaded.
pub fn enter() -> Entry {
    let plan = match plan() {
        Ok(p) => p,
        Err(why) => return Entry::NotEntered(why),
    };
    match enter_with(&plan) {
        Ok(code) => Entry::Ran(code),
        Err(why) => Entry::Failed(why),
    }
}

fn enter_with(plan: &Plan) -> Result<i32, String> {
    let (made_rx, made_tx) = pipe()?;
    let (go_rx, go_tx) = pipe()?;
    let args: Vec<OsString> = std::env::args_os().collect();
    // SAFETY: the caller is single-threaded (see `enter`); the child makes the namespace
    // and waits for the parent's word before running anything else.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("forking: {e}"))? {
        ForkResult::Child => {
            drop((made_rx, go_tx));
            let entered = match plan {
                Plan::Helpers { .. } => USER_ENTERED,
                Plan::Identity => ROOT_ENTERED,
            };
            child(made_tx, go_rx, &args, entered)
        }
        ForkResult::Parent { child } => {
            drop((made_tx, go_rx));
            parent(plan, child, made_rx, go_tx)
        }
    }
}

/// In the child: the namespace made, the parent told, the maps awaited, rbuild run again.
fn child(made_tx: OwnedFd, go_rx: OwnedFd, args: &[OsString], entered: &str) -> ! {
    use std::os::unix::process::CommandExt;
    // Killed with the parent: nothing is left running if rbuild is killed outright.
    // SAFETY: prctl with these arguments only sets this process's death signal.
    unsafe {
        nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL);
    }
    let made = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
    let _ = nix::unistd::write(&made_tx, if made.is_ok() { b"y" } else { b"n" });
    drop(made_tx);
    let mut word = [0u8; 1];
    if made.is_err() || !matches!(nix::unistd::read(&go_rx, &mut word), Ok(1)) || word[0] != b'g' {
        // SAFETY: _exit ends the child at once; the parent goes on without it.
        unsafe { nix::libc::_exit(0) }
    }
    // Root in the namespace now: no supplementary groups from the host (they are not
    // mapped), as a fresh login in the namespace has.
    let _ = nix::unistd::setgroups(&[]);
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let e = Command::new(exe).args(&args[1..]).env(ENTERED_VAR, entered).exec();
    eprintln!("rbuild: running itself in the user namespace: {e}");
    // SAFETY: as above.
    unsafe { nix::libc::_exit(125) }
}

/// In the parent: the maps written, then the child waited for.
fn parent(plan: &Plan, child: Pid, made_rx: OwnedFd, go_tx: OwnedFd) -> Result<i32, String> {
    let give_up = |why: String| {
        let _ = signal::kill(child, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        Err(why)
    };
    let mut word = [0u8; 1];
    if !matches!(nix::unistd::read(&made_rx, &mut word), Ok(1)) || word[0] != b'y' {
        return give_up("creating a user namespace was refused".into());
    }
    let mapped = match plan {
        Plan::Helpers { newuidmap, newgidmap, uid_args, gid_args } => {
            run_helper(newuidmap, child, uid_args)
                .and_then(|()| run_helper(newgidmap, child, gid_args))
        }
        Plan::Identity => ["uid_map", "gid_map"].iter().try_for_each(|file| {
            let path = format!("/proc/{child}/{file}");
            std::fs::write(&path, format!("{IDENTITY_MAP}\n"))
                .map_err(|e| format!("writing {path}: {e}"))
        }),
    };
    if let Err(e) = mapped {
        return give_up(e);
    }
    super::process::forward_signals(child);
    if nix::unistd::write(&go_tx, b"g").is_err() {
        return give_up("the child rbuild ended early".into());
    }
    drop(go_tx);
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                // Ended by a signal: end the same way, for the caller's shell to see.
                let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
                // SAFETY: restores the default action before raising the signal.
                let _ = unsafe { signal::sigaction(sig, &default) };
                let _ = signal::raise(sig);
                return Ok(128 + sig as i32);
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("waiting for rbuild in the user namespace: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_number_in_order() {
        let text = "alice:100000:65536\nbob:165536:65536\n1000:300000:10\nbad line\nalice:x:1\nalice:5:0\n";
        assert_eq!(
            ranges(text, Some("alice"), 1000),
            vec![Range { start: 100000, count: 65536 }, Range { start: 300000, count: 10 }]
        );
        assert_eq!(ranges(text, None, 1001), vec![]);
        assert_eq!(ranges(text, Some("bob"), 7), vec![Range { start: 165536, count: 65536 }]);
    }

    #[test]
    fn maps_put_the_caller_at_root_and_ranges_after_it() {
        let r = [Range { start: 100000, count: 65536 }, Range { start: 300000, count: 10 }];
        assert_eq!(map_arguments(1000, &r).join(" "), "0 1000 1 1 100000 65536 65537 300000 10");
    }
}
