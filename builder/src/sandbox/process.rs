//! Process plumbing: a sandbox run in a child process of its own, signals passed on to a
//! child, a child in a session of its own, and a logger process that takes over this
//! process's standard output and error.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet};
use nix::unistd::Pid;

use super::SandboxSpec;
use crate::error::{Error, Result};

/// The child that signals are passed on to.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Passes a signal another process sent to this one on to [`CHILD`]. Signals from the
/// terminal (`si_code` SI_KERNEL) reach the child directly, as they reach its whole
/// process group: they are not sent twice.
extern "C" fn forward(sig: i32, info: *mut nix::libc::siginfo_t, _: *mut std::ffi::c_void) {
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO; only its code is read.
    let code = unsafe { info.as_ref().map_or(0, |i| i.si_code) };
    let child = CHILD.load(Ordering::SeqCst);
    if code <= 0 && child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            nix::libc::kill(child, sig);
        }
    }
}

/// From now on, passes the signals a command line's process gets (INT, TERM, HUP, QUIT,
/// USR1, USR2) on to `child` rather than dying of them.
pub fn forward_signals(child: Pid) {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    let action =
        SigAction::new(SigHandler::SigAction(forward), SaFlags::SA_RESTART, SigSet::empty());
    for sig in super::linux::FORWARDED {
        // SAFETY: the handler only calls kill, which is async-signal-safe.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// Runs the sandbox ([`super::run`]) in a child process and returns what it returned.
/// A process can be the parent of one PID namespace's init only: once that init has
/// ended, it can fork nothing more. A container that runs again (a restart) therefore
/// runs each time from a child of its own. The child dies with this process; signals this
/// process gets are passed on to it, and from it to the command.
pub fn run_in_child(spec: &SandboxSpec) -> Result<i32> {
    let fail = |e: nix::Error| Error::io("forking for", spec.run_dir.clone())(e.into());
    let (answer_rx, answer_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(fail)?;
    let parent = std::process::id();
    // The signals to pass on wait (blocked) from before the fork until the handler that
    // passes them on knows the child: one that comes in between is not lost, nor does it
    // end this process by its default action.
    let mut passed = SigSet::empty();
    for sig in super::linux::FORWARDED {
        passed.add(sig);
    }
    let mut old = SigSet::empty();
    let _ = signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&passed), Some(&mut old));
    // SAFETY: the caller is single-threaded (a container's runner starts no threads);
    // the child runs the sandbox, writes its answer and exits.
    let forked = unsafe { nix::unistd::fork() };
    if !matches!(forked, Ok(nix::unistd::ForkResult::Parent { .. })) {
        // The child (or a failed fork): signals as before.
        let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    match forked.map_err(fail)? {
        nix::unistd::ForkResult::Child => {
            drop(answer_rx);
            if super::exit_with_parent(parent).is_err() {
                // SAFETY: as below.
                unsafe { nix::libc::_exit(1) }
            }
            let answer = match super::run(spec) {
                Ok(code) => serde_json::json!({ "code": code }),
                Err(e) => {
                    serde_json::json!({ "error": crate::error::chain(&e), "sandbox": matches!(e, Error::Sandbox(_) | Error::Io { .. }) })
                }
            };
            let _ = nix::unistd::write(&answer_tx, answer.to_string().as_bytes());
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { nix::libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(answer_tx);
            forward_signals(child);
            let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(&answer_rx, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => break,
                }
            }
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::Error::EINTR) => continue,
                    other => break other,
                }
            };
            CHILD.store(0, Ordering::SeqCst);
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            if let Some(code) = answer["code"].as_i64() {
                return Ok(code as i32);
            }
            match answer["error"].as_str() {
                Some(e) if answer["sandbox"] == true => Err(Error::Sandbox(e.to_string())),
                Some(e) => Err(Error::Build(e.to_string())),
                None => Err(Error::Sandbox(format!(
                    "the sandbox's process ended without an answer ({status:?})"
                ))),
            }
        }
    }
}

/// Spawns `cmd` as the leader of a new session: no terminal, and signals for the
/// caller's process group (a Ctrl-C) do not reach it.
pub fn spawn_in_new_session(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the child execs right after.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    cmd.spawn()
}

/// Forks a logger: this process's standard output and error become pipes whose read ends
/// the logger gets (`logger(stdout, stderr)` runs in the child, which then exits), and
/// its standard input `/dev/null`. Call it while the process is single-threaded; `what`
/// names the log in errors.
pub fn fork_output_logger(what: &Path, logger: impl FnOnce(OwnedFd, OwnedFd)) -> Result<()> {
    let fail = |action: &'static str| {
        let path = what.to_path_buf();
        move |e: nix::Error| Error::io(action, path.clone())(e.into())
    };
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(fail("making a pipe for"))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(fail("making a pipe for"))?;
    let null = std::fs::File::open("/dev/null")
        .map_err(Error::io("opening", PathBuf::from("/dev/null")))?;
    // SAFETY: the caller is single-threaded; the child runs the logger and exits.
    match unsafe { nix::unistd::fork() }.map_err(fail("forking the logger for"))? {
        nix::unistd::ForkResult::Child => {
            drop((out_w, err_w, null));
            logger(out_r, err_r);
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop((out_r, err_r));
            for (from, to) in
                [(null.as_raw_fd(), 0), (out_w.as_raw_fd(), 1), (err_w.as_raw_fd(), 2)]
            {
                // SAFETY: dup2 onto this process's own standard descriptors (the copies
                // do not have close-on-exec).
                if unsafe { nix::libc::dup2(from, to) } < 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(Error::io("redirecting the output to", what.to_path_buf())(e));
                }
            }
            Ok(())
        }
    }
}
