//! Carrying out the sandbox on Linux: namespaces, mounts, the init and the command.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};

use super::plan::{mount_plan, MountStep};
use super::spec::{Network, SandboxSpec};
use crate::error::{Error, Result};
use crate::users::Identity;

/// Has the kernel start writing the dirty pages of `file` in `offset..offset + len` to its
/// disk, without waiting for them (`sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`), so a
/// later `fsync` finds little left to write. The store calls it while it writes a blob;
/// it is here because this module is rbuild's one place for raw system calls, and neither
/// nix nor rustix wraps this one. `POSIX_FADV_DONTNEED`, the portable way to start the
/// writing-out, also drops the pages and makes the writer wait for the disk on each range:
/// 345 MB written in 8 MiB pieces took 230-400 ms that way against 100-110 ms with this
/// call (the final `fsync` then 1-17 ms either way; 90-120 ms with neither).
pub fn start_writeback(
    file: &impl std::os::fd::AsRawFd,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: the call takes a descriptor and numbers, no pointers; `file` keeps the
    // descriptor open for the call's length.
    let rc = unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), offset, len, nix::libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Docker's default capability set, which the command keeps (when it runs as root).
pub const DOCKER_DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn pipe(dir: &Path) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io_err("making a pipe for", dir))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> Error {
    let path = path.to_path_buf();
    move |e| Error::Io { action, path, source: e.into() }
}

/// Writes the generated `/etc` files of the sandbox.
fn write_etc(spec: &SandboxSpec, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    // As BuildKit writes it for RUN (its own name on the loopback line).
    let mut hosts = format!(
        "127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        spec.hostname
    );
    for (name, addr) in &spec.extras.hosts {
        hosts.push_str(&format!("{addr}\t{name}\n"));
    }
    let resolv = match spec.network {
        Network::Host => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        Network::None => String::new(),
        Network::Private => super::network::RESOLV_CONF.to_string(),
    };
    for (name, content) in
        [("hosts", hosts), ("resolv.conf", resolv), ("hostname", format!("{}\n", spec.hostname))]
    {
        fs::write(dir.join(name), content).map_err(Error::io("writing", dir.join(name)))?;
    }
    if super::plan::proxied(spec) {
        // Empty (nothing for apt) until the proxy listens; then it names the proxy.
        let conf = dir.join(super::plan::APT_CONF);
        fs::write(&conf, "").map_err(Error::io("writing", conf.clone()))?;
    }
    Ok(())
}

/// The exit code of a sandbox that could not be set up (as `docker run`'s for a container
/// that could not start); the error says what failed.
pub const SANDBOX_FAILED: i32 = 125;

/// Runs the command of `spec` in a sandbox and returns its exit code (128 + the signal
/// number when a signal ended it). Needs root.
pub fn run(spec: &SandboxSpec) -> Result<i32> {
    super::plan::check_depth(spec).map_err(Error::Sandbox)?;
    for dir in [spec.upper(), spec.work(), spec.merged(), spec.empty_lower()] {
        fs::create_dir_all(&dir).map_err(Error::io("creating", dir.clone()))?;
    }
    let etc = spec.run_dir.join("etc");
    write_etc(spec, &etc)?;
    let rootless = !crate::users::is_root();
    if !crate::users::is_host_root() && spec.limits.any() {
        return Err(Error::Sandbox(
            "resource limits need root (cgroups are not delegated to users here)".into(),
        ));
    }
    // Layers stacked by copying: the root and the `--mount ...,from=` trees made now, the
    // root scanned to find what the command changes.
    let none = crate::snapshot::stack::KeepList::default();
    let scan = if spec.copy_root {
        crate::snapshot::stack::materialize(&spec.lowers, &spec.merged(), &none)?;
        for m in &spec.layer_mounts {
            crate::snapshot::stack::materialize(&m.lowers, &m.dir.join("merged"), &none)?;
        }
        Some(crate::snapshot::stack::Scan::take(&spec.merged(), &none)?)
    } else {
        None
    };
    let code = run_stacked(spec, &etc, rootless)?;
    if let Some(scan) = scan {
        scan.changes_into(
            &spec.merged(),
            &none,
            &spec.upper(),
            crate::snapshot::WhiteoutMode::Files,
        )?;
    }
    Ok(code)
}

/// [`run`] once the root's layers are in place.
fn run_stacked(spec: &SandboxSpec, etc: &Path, rootless: bool) -> Result<i32> {
    // In any user namespace (the sandbox's own, or rbuild's of subordinate ids) overlayfs
    // keeps its attributes in `user.` xattrs.
    let plan = mount_plan(spec, etc, rootless || crate::users::in_user_namespace());
    let id = spec.run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cgroup = super::cgroups::Cgroup::create(&id, &spec.limits)?;
    // The launcher of slirp4netns is forked first, while this process is still in the
    // host's user and PID namespaces.
    let slirp = match spec.network {
        Network::Private => {
            Some(super::network::Slirp::fork(&spec.run_dir, rootless, &spec.ports)?)
        }
        _ => None,
    };
    // With the default network, the init says when its network namespace exists, and
    // waits for the word that the interface is up before it starts the command.
    let sync = match slirp {
        Some(_) => Some((pipe(&spec.run_dir)?, pipe(&spec.run_dir)?)),
        None => None,
    };
    if rootless {
        enter_user_namespace()?;
    }
    let here = spec.network == Network::Host;
    let downloads =
        spec.download_cache.clone().filter(|_| super::plan::proxied(spec)).and_then(|cache| {
            Some(Proxy {
                waiting: crate::downloads::proxy::Waiting::new(cache, here).ok()?,
                conf: etc.join(super::plan::APT_CONF),
                run_dir: spec.run_dir.clone(),
                stats: std::sync::OnceLock::new(),
            })
        });
    if let Some(proxy) = downloads.as_ref().filter(|_| here) {
        // Listening already, in the namespace the command shares.
        proxy.start(Pid::from_raw(0));
    }
    // The next child of this process starts a new PID namespace, as its PID 1; rbuild
    // itself stays where it is (it forks nothing else afterwards).
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(io_err("creating a PID namespace for", &spec.run_dir))?;
    reap_finished();
    // The init reports the command's exit code through this pipe as soon as it has it,
    // before its own exit, whose namespace teardown the caller need not wait for.
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io_err("making a pipe for", &spec.run_dir))?;
    // With a terminal, the command gets the slave of a new pseudo-terminal and rbuild
    // relays between its own standard streams and the master.
    let pty = if spec.tty {
        let size = terminal_size();
        Some(
            nix::pty::openpty(size.as_ref(), None)
                .map_err(io_err("opening a pseudo-terminal for", &spec.run_dir))?,
        )
    } else {
        None
    };
    let parts = Parts {
        downloads,
        slirp,
        sync,
        cgroup,
        report: (report_read, report_write),
        pty,
        started: spec.run_dir.join(STARTED),
        ready: pipe(&spec.run_dir)?,
    };
    // Signals for rbuild are kept from before the fork: the command may start before this
    // side reaches `supervise` (a TERM sent to `rbuild run` as soon as its command showed
    // ended rbuild instead of reaching the command, on a loaded machine).
    catch_signals(true);
    // SAFETY: rbuild is single-threaded when it runs a sandbox (the `run` path starts no
    // threads) but for the download proxy's first thread, which waits in a channel's
    // receive and holds no lock until the init exists; so the child may allocate and run
    // ordinary Rust code after fork.
    let forked = unsafe { fork() }.map_err(io_err("forking for", &spec.run_dir));
    if forked.is_err() {
        catch_signals(false);
    }
    match forked? {
        ForkResult::Child => be_init(spec, &plan, parts),
        ForkResult::Parent { child } => {
            // Where `rbuild stop` and `exec` find the init.
            let _ = fs::write(spec.run_dir.join("init.pid"), child.to_string());
            supervise(child, parts)
        }
    }
}

type OwnedFd = std::os::fd::OwnedFd;

/// What the sandbox's two sides share at the fork.
struct Parts {
    /// The launcher of slirp4netns (the default network).
    slirp: Option<super::network::Slirp>,
    /// The download cache's proxy to start once the network is up.
    downloads: Option<Proxy>,
    /// With the default network: the init says when its namespace exists (first pipe),
    /// and waits for the word that the interface is up (second pipe).
    sync: Option<((OwnedFd, OwnedFd), (OwnedFd, OwnedFd))>,
    cgroup: Option<super::cgroups::Cgroup>,
    /// The init reports the command's exit code here (read end, write end).
    report: (OwnedFd, OwnedFd),
    pty: Option<nix::pty::OpenptyResult>,
    /// Made once the sandbox is up (its network too): see [`STARTED`].
    started: PathBuf,
    /// The init writes a byte here once the command's file system is in place (read end,
    /// write end): only then is the sandbox started, and may `exec` join it.
    ready: (OwnedFd, OwnedFd),
}

/// A file the sandbox makes in its run directory once it is up, its network configured
/// and its ports published: a container's start waits for it.
pub const STARTED: &str = "started";

/// The child's side: the sandbox's PID 1. Enters the cgroup and the namespaces, says so,
/// and runs the init; reports the command's exit code and exits with it.
fn be_init(spec: &SandboxSpec, plan: &[MountStep], parts: Parts) -> ! {
    // The init keeps the signals rbuild passes on from the start (a namespace's PID 1
    // ignores those it has no handler for), and passes them to the command once it runs.
    // One rbuild caught before the fork is rbuild's to pass on, not the init's.
    catch_signals(true);
    CAUGHT.store(0, std::sync::atomic::Ordering::SeqCst);
    let Parts { slirp, sync, cgroup, report: (report_read, report_write), pty, ready, .. } = parts;
    drop(report_read);
    let (ready_read, ready) = ready;
    drop(ready_read);
    drop(slirp);
    let (ns_made, go) = match sync {
        Some(((_, ns_made), (go, _))) => (Some(ns_made), Some(go)),
        None => (None, None),
    };
    let slave = pty.map(|p| p.slave);
    // Nothing rbuild inherited (a descriptor its caller left open, say) reaches the init,
    // and so the command: only the report pipe and the terminal stay.
    {
        use std::os::fd::AsRawFd;
        let mut keep = vec![report_write.as_raw_fd(), ready.as_raw_fd()];
        keep.extend(slave.as_ref().map(|s| s.as_raw_fd()));
        keep.extend(ns_made.as_ref().map(|f| f.as_raw_fd()));
        keep.extend(go.as_ref().map(|f| f.as_raw_fd()));
        close_other_fds(&keep);
    }
    let entered = cgroup.as_ref().map_or(Ok(()), |c| c.enter());
    let code = match entered.and_then(|()| enter_namespaces(spec)).and_then(|()| {
        if let Some(fd) = ns_made {
            let _ = nix::unistd::write(&fd, b"n");
        }
        init(spec, plan, slave, go, ready)
    }) {
        Ok(done) => done,
        Err(e) => {
            // The code, then what failed: the supervisor tells it from a command's own
            // exit 125 by the message that follows.
            let _ = nix::unistd::write(&report_write, &SANDBOX_FAILED.to_le_bytes());
            let _ = nix::unistd::write(&report_write, crate::error::chain(&e).as_bytes());
            std::process::exit(SANDBOX_FAILED);
        }
    };
    // The code and the command's own time in one write (one pipe buffer: the supervisor
    // reads both or neither).
    let (code, took) = code;
    // The command's output ends here: whoever reads it need not wait for this process's
    // exit (and its namespaces' teardown) to see its end.
    end_output();
    let mut report = code.to_le_bytes().to_vec();
    report.extend_from_slice(&(took.as_nanos() as u64).to_le_bytes());
    let _ = nix::unistd::write(&report_write, &report);
    std::process::exit(code);
}

/// Ends this process's share of the output it was given: `/dev/null` becomes its
/// standard output and error (closed when that cannot be opened), so the reader of the
/// pipe they were sees its end once the other writers are gone.
pub(super) fn end_output() {
    if null_onto(&[1, 2]).is_err() {
        for fd in [1, 2] {
            // SAFETY: closes this process's own standard output or error; Rust's standard
            // streams then fail with EBADF, which they ignore.
            unsafe { nix::libc::close(fd) };
        }
    }
}

/// Puts `/dev/null` (read and write) on each of this process's standard descriptors
/// `fds`.
pub(super) fn null_onto(fds: &[std::os::fd::RawFd]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for &fd in fds {
        // SAFETY: dup2 onto a standard descriptor of this process, which Rust's standard
        // streams use by number (they own nothing to close).
        if unsafe { nix::libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The parent's side: starts the network once the init's namespace exists, relays the
/// terminal, and returns the command's exit code as soon as the init reports it.
fn supervise(child: Pid, parts: Parts) -> Result<i32> {
    let Parts {
        downloads,
        mut slirp,
        sync,
        cgroup,
        report: (report_read, report_write),
        pty,
        started,
        ready: (ready_read, ready_write),
    } = parts;
    drop(report_write);
    drop(ready_write);
    // Signals for rbuild are caught since before the fork (the caller's doing): they are
    // passed on from here, also one that comes while the network starts.
    if let (Some(launcher), Some(((ns_made, _), (_, go)))) = (slirp.as_mut(), sync) {
        let proxy = downloads.as_ref();
        if let Err((e, init_ended)) = start_network(launcher, child, &ns_made, go, proxy) {
            let code = if init_ended { 125 } else { wait_code(child) };
            if let Some(s) = slirp.take() {
                wait_code(s.stop());
            }
            if let Some(cgroup) = cgroup {
                cgroup.remove();
            }
            return if init_ended { Ok(code) } else { Err(e) };
        }
    }
    // Started once the init says its file system is in place (or nothing, when it ended
    // first: its report says why).
    let mut byte = [0u8; 1];
    while let Err(nix::Error::EINTR) = nix::unistd::read(&ready_read, &mut byte) {
        forward_caught(child);
    }
    drop(ready_read);
    // One caught before the waits above (none of them was interrupted by it).
    forward_caught(child);
    let _ = fs::write(&started, b"");
    let mut buf = [0u8; 4];
    let mut got = 0;
    if let Some(pty) = pty {
        drop(pty.slave);
        got = relay_terminal(&pty.master, &report_read, &mut buf, child);
    }
    while got < 4 {
        match nix::unistd::read(&report_read, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::Error::EINTR) => forward_caught(child),
            Err(_) => break,
        }
    }
    catch_signals(false);
    if got == 4 && i32::from_le_bytes(buf) != SANDBOX_FAILED {
        record_command_time(&report_read, &started);
    }
    if let Some((proxy, stats)) = downloads.as_ref().and_then(|p| Some((p, p.stats.get()?))) {
        crate::downloads::proxy::write_stats(&proxy.run_dir, stats);
    }
    if let Some(s) = slirp {
        // slirp4netns exits as its exit pipe closes; it is reaped with the init.
        if let Ok(mut pending) = PENDING.lock() {
            pending.push(s.stop());
        }
    }
    if let Some(cgroup) = cgroup {
        // A cgroup can only go once every process in it has ended: wait for the init
        // this time.
        let status = wait_code(child);
        cgroup.remove();
        return Ok(if got == 4 { i32::from_le_bytes(buf) } else { status });
    }
    if got == 4 && i32::from_le_bytes(buf) == SANDBOX_FAILED {
        // The init could not set the sandbox up: its message follows the code.
        let mut message = Vec::new();
        let mut chunk = [0u8; 4096];
        while message.len() < 64 * 1024 {
            match nix::unistd::read(&report_read, &mut chunk) {
                Ok(0) => break,
                Ok(n) => message.extend_from_slice(&chunk[..n]),
                Err(nix::Error::EINTR) => continue,
                Err(_) => break,
            }
        }
        if !message.is_empty() {
            wait_code(child);
            return Err(Error::Sandbox(String::from_utf8_lossy(&message).into_owned()));
        }
    }
    if got == 4 {
        // The init is exiting; it is reaped later (by the next run, or never if rbuild
        // exits first), not waited for now.
        if let Ok(mut pending) = PENDING.lock() {
            pending.push(child);
        }
        Ok(i32::from_le_bytes(buf))
    } else {
        // The init died without a report (killed, or failed before the command).
        Ok(wait_code(child))
    }
}

/// Where the supervisor leaves the command's own time (nanoseconds, as text) in the run's
/// directory: the build reports what the sandbox added around it.
pub const COMMAND_TIME: &str = "command-time";

/// Reads the command's own time that follows its exit code in the init's report and
/// keeps it beside `started` (in the run's directory).
fn record_command_time(report: &OwnedFd, started: &Path) {
    let mut nanos = [0u8; 8];
    let mut got = 0;
    while got < nanos.len() {
        match nix::unistd::read(report, &mut nanos[got..]) {
            Ok(0) => return,
            Ok(n) => got += n,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
    }
    if let Some(dir) = started.parent() {
        let _ = fs::write(dir.join(COMMAND_TIME), u64::from_le_bytes(nanos).to_string());
    }
}

/// Waits for the init's namespace (a read of nothing: it failed before), starts
/// slirp4netns on it, then sends the word to go on (without it the init ends). On a
/// failure: the error, and whether the init had ended already (then its failure is the
/// one to report, not the network's).
fn start_network(
    launcher: &mut super::network::Slirp,
    child: Pid,
    ns_made: &OwnedFd,
    go: OwnedFd,
    proxy: Option<&Proxy>,
) -> std::result::Result<(), (Error, bool)> {
    let mut byte = [0u8; 1];
    let made = loop {
        match nix::unistd::read(ns_made, &mut byte) {
            Err(nix::Error::EINTR) => continue,
            other => break other.is_ok_and(|n| n == 1),
        }
    };
    if !made {
        return Ok(());
    }
    match launcher.start(child) {
        Ok(()) => {
            if let Some(proxy) = proxy {
                proxy.start(child);
            }
            let _ = nix::unistd::write(&go, b"g");
            forward_caught(child);
            Ok(())
        }
        Err(e) => {
            let init_ended = matches!(
                waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
            );
            drop(go);
            Err((e, init_ended))
        }
    }
}

/// The download cache's proxy of a RUN step (see [`crate::downloads`]).
#[derive(Debug)]
struct Proxy {
    waiting: crate::downloads::proxy::Waiting,
    /// apt's configuration, bind-mounted into the sandbox: it names the proxy once the
    /// proxy listens.
    conf: PathBuf,
    run_dir: PathBuf,
    stats: std::sync::OnceLock<std::sync::Arc<crate::downloads::proxy::Stats>>,
}

impl Proxy {
    /// Starts the proxy in the init's network namespace (with the host's network: it
    /// listens already, `init` is not used). A proxy that cannot start
    /// leaves apt's configuration empty: apt then goes to the network itself.
    fn start(&self, init: Pid) {
        if let Ok(stats) = self.waiting.start(init.as_raw()) {
            // Written in place: the sandbox's bind mount shows this very file.
            let written =
                fs::OpenOptions::new().write(true).truncate(true).open(&self.conf).and_then(
                    |mut f| {
                        let text = self.waiting.apt_config();
                        std::io::Write::write_all(&mut f, text.as_bytes())
                    },
                );
            if written.is_ok() {
                let _ = self.stats.set(stats);
            }
        }
    }
}

/// Closes every file descriptor of this process from 3 up, but those in `keep`.
fn close_other_fds(keep: &[std::os::fd::RawFd]) {
    // close_range(2) between the descriptors kept: one call per gap instead of a listing
    // of /proc/self/fd and a close per descriptor (Linux 5.9; the listing otherwise).
    let mut kept: Vec<nix::libc::c_uint> =
        keep.iter().filter_map(|fd| nix::libc::c_uint::try_from(*fd).ok()).collect();
    kept.sort_unstable();
    let mut first: nix::libc::c_uint = 3;
    let mut closed = true;
    for last in kept.iter().map(|k| Some(*k)).chain([None]) {
        let end = match last {
            Some(k) if k < first => continue,
            Some(k) => k - 1,
            None => nix::libc::c_uint::MAX,
        };
        if end >= first {
            // SAFETY: closes descriptors of this process that no Rust object of its
            // remaining code owns (all but those in `keep`, which are skipped).
            let rc = unsafe {
                nix::libc::syscall(nix::libc::SYS_close_range, first, end, 0 as nix::libc::c_uint)
            };
            closed &= rc == 0;
        }
        first = last.map_or(first, |k| k.saturating_add(1));
    }
    if closed {
        return;
    }
    let open: Vec<std::os::fd::RawFd> = match fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => return,
    };
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: closing a descriptor number this process has open (or had: the one the
        // listing used, already closed, gives EBADF); no Rust object of this process's
        // remaining code owns any of them but those in `keep`.
        let _ = unsafe { nix::libc::close(fd) };
    }
}

/// For a helper process that runs a sandbox for another process (`parent`): it is killed
/// when that process dies, so a killed build leaves no sandbox running. Fails when the
/// parent is gone already.
pub fn exit_with_parent(parent: u32) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(io_err("setting the parent-death signal of", Path::new("/proc/self")))?;
    // The parent may have died before the signal was asked for.
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return Err(Error::Sandbox("the process that started this sandbox is gone".into()));
    }
    Ok(())
}

/// The signals rbuild passes on to the sandbox, and its init to the command.
pub(super) const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The last signal caught and not yet passed on (0: none).
static CAUGHT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn remember_signal(signal: nix::libc::c_int) {
    CAUGHT.store(signal, std::sync::atomic::Ordering::SeqCst);
}

/// Catches the forwarded signals (without restarting interrupted calls, so that the
/// waiting loops see them), or puts the default handlers back.
fn catch_signals(on: bool) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let handler = if on { SigHandler::Handler(remember_signal) } else { SigHandler::SigDfl };
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    for signal in FORWARDED {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Passes a caught signal on to `pid`.
fn forward_caught(pid: Pid) {
    let signal = CAUGHT.swap(0, std::sync::atomic::Ordering::SeqCst);
    if let Ok(signal) = Signal::try_from(signal) {
        let _ = nix::sys::signal::kill(pid, signal);
    }
}

/// The size of the caller's terminal, if standard input is one.
fn terminal_size() -> Option<nix::pty::Winsize> {
    let mut size = nix::pty::Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own; fd 0 may be anything,
    // and an error just means no size.
    let ok = unsafe { nix::libc::ioctl(0, nix::libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(size)
}

/// Relays rbuild's standard input to the terminal's master and the master's output to
/// rbuild's standard output (in raw mode when standard input is a terminal), until the
/// init reports. Returns how many bytes of the report it read into `buf`.
fn relay_terminal(
    master: &std::os::fd::OwnedFd,
    report: &std::os::fd::OwnedFd,
    buf: &mut [u8; 4],
    child: Pid,
) -> usize {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let saved = tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    }
    let mut stdin_open = true;
    let mut master_open = true;
    let mut got = 0;
    let mut chunk = [0u8; 8192];
    let stdout = std::io::stdout();
    while got < 4 {
        let mut fds = vec![PollFd::new(report.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => {
                forward_caught(child);
                continue;
            }
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<bool> =
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        // Positions in `fds`, fixed before either stream is marked closed below.
        let (master_at, stdin_at) =
            (master_open.then_some(1), stdin_open.then_some(if master_open { 2 } else { 1 }));
        if master_at.is_some_and(|i| ready[i]) {
            match nix::unistd::read(master, &mut chunk) {
                Ok(n) if n > 0 => {
                    use std::io::Write;
                    let mut out = stdout.lock();
                    let _ = out.write_all(&chunk[..n]).and_then(|()| out.flush());
                }
                // EIO: the command closed the terminal.
                _ => master_open = false,
            }
        }
        if stdin_at.is_some_and(|i| ready[i]) {
            match nix::unistd::read(stdin.as_fd(), &mut chunk) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &chunk[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if ready[0] {
            match nix::unistd::read(report, &mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    }
    if let Some(t) = &saved {
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    got
}

/// Inits that reported and were not reaped yet.
static PENDING: std::sync::Mutex<Vec<Pid>> = std::sync::Mutex::new(Vec::new());

/// Reaps the inits of earlier runs (they have exited, or are about to).
pub fn reap_finished() {
    let pending = PENDING.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
    for pid in pending {
        wait_code(pid);
    }
}

/// The exit code a waited-for process stands for.
fn wait_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}

/// For a normal user: a new user namespace in which the caller is root (uid and gid
/// mapped to 0, one id each: no subordinate ids are needed).
fn enter_user_namespace() -> Result<()> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER)
        .map_err(io_err("creating a user namespace in", Path::new("/proc/self")))?;
    for (file, content) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("0 {uid} 1")),
        ("gid_map", format!("0 {gid} 1")),
    ] {
        let path = Path::new("/proc/self").join(file);
        fs::write(&path, content).map_err(Error::io("writing", path))?;
    }
    Ok(())
}

/// In PID 1: tie its life to rbuild's, and leave the host's other namespaces.
fn enter_namespaces(spec: &SandboxSpec) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(io_err("setting the parent-death signal in", &spec.run_dir))?;
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if spec.network != Network::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(io_err("creating namespaces for", &spec.run_dir))
}

fn mkdirs(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(Error::io("creating", path))
}

fn touch(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdirs(parent)?;
    }
    if fs::symlink_metadata(path).is_err() {
        fs::write(path, b"").map_err(Error::io("creating", path))?;
    }
    Ok(())
}

/// Mounts an overlay. nodev: device nodes in image layers (a hostile image can carry the
/// host's disks) open nothing; /dev is its own mount, holding only the safe devices.
///
/// The classic `mount(2)` takes all options in one page (4 KiB), which holds about 45
/// lower directories of the store's length: real images have more layers. So the new
/// mount API is used, giving each lower directory on its own (`lowerdir+`, Linux 6.8);
/// on an older kernel the classic call gets the directories' names relative to their
/// common folder (the store's `snapshots/`), entered for the call.
fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    flags: OverlayFlags,
) -> Result<()> {
    let mounted = mount_overlay_with(lowers, upper, work, target, flags);
    if mounted.is_err() && flags.volatile {
        // Linux before 5.10 has no `volatile`: the same mount without it.
        let flags = OverlayFlags { volatile: false, ..flags };
        return mount_overlay_with(lowers, upper, work, target, flags);
    }
    mounted
}

/// Options of an overlay mount besides its directories.
#[derive(Debug, Clone, Copy)]
struct OverlayFlags {
    /// `userxattr`: attributes in `user.overlay.*` (in a user namespace).
    userxattr: bool,
    /// `volatile`: no sync of the upper directory (see [`SandboxSpec::throwaway_upper`]).
    volatile: bool,
}

/// [`mount_overlay`] with exactly these options.
fn mount_overlay_with(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    flags: OverlayFlags,
) -> Result<()> {
    match mount_overlay_fsconfig(lowers, upper, work, target, flags) {
        Ok(()) => return Ok(()),
        // No new mount API, or no `lowerdir+` in this kernel's overlayfs.
        Err(nix::Error::ENOSYS | nix::Error::EINVAL) => {}
        Err(e) => return Err(io_err("mounting the overlay on", target)(e)),
    }
    let parent = lowers
        .first()
        .and_then(|l| l.parent())
        .filter(|p| lowers.iter().all(|l| l.parent() == Some(*p) && l.file_name().is_some()));
    let lower: Vec<String> = match parent {
        Some(_) => lowers
            .iter()
            .filter_map(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        None => lowers.iter().map(|p| p.display().to_string()).collect(),
    };
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if flags.userxattr {
        options.push_str(",userxattr");
    }
    if flags.volatile {
        options.push_str(",volatile");
    }
    let here = std::env::current_dir().ok();
    if let Some(p) = parent {
        nix::unistd::chdir(p).map_err(io_err("entering", p))?;
    }
    let mounted =
        mount(Some("overlay"), target, Some("overlay"), MsFlags::MS_NODEV, Some(options.as_str()));
    if let Some(here) = here {
        let _ = nix::unistd::chdir(&here);
    }
    mounted.map_err(|e| {
        let e = io_err("mounting the overlay on", target)(e);
        if options.len() >= 4096 {
            Error::Sandbox(format!(
                "{e}: this kernel takes at most one page of overlay options, too few for {} layers (Linux 6.8 and later take any number up to 500)",
                lowers.len()
            ))
        } else {
            e
        }
    })
}

/// The new mount API: `fsopen("overlay")`, one `fsconfig` per option, `fsmount` (nodev),
/// `move_mount` onto `target`.
fn mount_overlay_fsconfig(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    flags: OverlayFlags,
) -> nix::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    const FSCONFIG_SET_FLAG: u32 = 0;
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const MOUNT_ATTR_NODEV: u32 = 0x4;
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| nix::Error::EINVAL);
    let fd_of = |rc: nix::libc::c_long| -> nix::Result<OwnedFd> {
        if rc < 0 {
            return Err(nix::Error::last());
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
    };
    let name = cstr(b"overlay")?;
    // SAFETY: fsopen takes a NUL-terminated file system name and flags.
    let fs = fd_of(unsafe { nix::libc::syscall(nix::libc::SYS_fsopen, name.as_ptr(), 0u32) })?;
    let config = |cmd: u32, key: Option<&CString>, value: Option<&CString>| -> nix::Result<()> {
        let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
        let value = value.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: fsconfig on our fs context with NUL-terminated key and value (or null
        // where the command takes none); the kernel copies them.
        let rc = unsafe {
            nix::libc::syscall(nix::libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key, value, 0)
        };
        if rc < 0 {
            Err(nix::Error::last())
        } else {
            Ok(())
        }
    };
    let lower_key = cstr(b"lowerdir+")?;
    for l in lowers {
        config(FSCONFIG_SET_STRING, Some(&lower_key), Some(&cstr(l.as_os_str().as_bytes())?))?;
    }
    config(
        FSCONFIG_SET_STRING,
        Some(&cstr(b"upperdir")?),
        Some(&cstr(upper.as_os_str().as_bytes())?),
    )?;
    config(
        FSCONFIG_SET_STRING,
        Some(&cstr(b"workdir")?),
        Some(&cstr(work.as_os_str().as_bytes())?),
    )?;
    if flags.userxattr {
        config(FSCONFIG_SET_FLAG, Some(&cstr(b"userxattr")?), None)?;
    }
    if flags.volatile {
        config(FSCONFIG_SET_FLAG, Some(&cstr(b"volatile")?), None)?;
    }
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount of our configured context, with mount attribute flags.
    let mnt = fd_of(unsafe {
        nix::libc::syscall(nix::libc::SYS_fsmount, fs.as_raw_fd(), 0u32, MOUNT_ATTR_NODEV)
    })?;
    let empty = cstr(b"")?;
    let to = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: move_mount of the detached mount (by descriptor, empty path) onto `target`.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Remounts the bind mount at `target` with `extra` flags added to those it has. A user
/// namespace may not clear flags that the source's mount has (they are locked), so they
/// are read first and kept.
fn remount_bind(target: &Path, extra: MsFlags) -> Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let have = statvfs(target).map_err(io_err("reading the mount flags of", target))?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra;
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    const NONE: Option<&str> = None;
    mount(NONE, target, NONE, flags, NONE).map_err(io_err("remounting", target))
}

/// A bind mount, remounted read-only and/or `nodev` as asked.
fn bind(source: &Path, target: &Path, readonly: bool, file: bool, device: bool) -> Result<()> {
    const NONE: Option<&str> = None;
    if file {
        touch(target)?;
    } else {
        mkdirs(target)?;
    }
    mount(Some(source), target, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
        .map_err(io_err("bind-mounting", target))?;
    let mut extra = MsFlags::empty();
    if readonly {
        extra |= MsFlags::MS_RDONLY;
    }
    if !device {
        extra |= MsFlags::MS_NODEV;
    }
    if !extra.is_empty() {
        remount_bind(target, extra)?;
    }
    Ok(())
}

/// Hides a path: an empty read-only tmpfs over a directory, `/dev/null` over a file.
fn mask(path: &Path) -> Result<()> {
    const NONE: Option<&str> = None;
    let Ok(meta) = fs::symlink_metadata(path) else { return Ok(()) };
    if meta.is_dir() {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some("size=0,mode=0555"))
            .map_err(io_err("masking", path))
    } else {
        mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE)
            .map_err(io_err("masking", path))
    }
}

/// Carries out one mount step.
fn apply(step: &MountStep) -> Result<()> {
    const NONE: Option<&str> = None;
    match step {
        MountStep::PrivateRoot => {
            mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
                .map_err(io_err("making private", Path::new("/")))
        }
        MountStep::Overlay { lowers, upper, work, target, userxattr, volatile } => {
            for dir in [upper, work, target] {
                mkdirs(dir)?;
            }
            let flags = OverlayFlags { userxattr: *userxattr, volatile: *volatile };
            mount_overlay(lowers, upper, work, target, flags)
        }
        MountStep::Bind { source, target, readonly, file, device } => {
            bind(source, target, *readonly, *file, *device)
        }
        MountStep::Mask(path) => mask(path),
        MountStep::ReadOnly(path) => {
            if fs::symlink_metadata(path).is_err() {
                return Ok(());
            }
            mount(Some(path), path, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
                .map_err(io_err("bind-mounting", path))?;
            remount_bind(
                path,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            )
        }
        MountStep::Proc(target) => {
            mkdirs(target)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            match mount(Some("proc"), target, Some("proc"), flags, NONE) {
                // In a container whose /proc has masked paths (Docker's default
                // `systempaths`), the kernel refuses a new proc in a user namespace: the
                // container's own /proc is bound instead, as BuildKit's rootless worker
                // does without a process sandbox (its processes show, and its masks stay).
                Err(nix::Error::EPERM | nix::Error::EACCES) => {
                    mount(Some("/proc"), target, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
                        .map_err(io_err("binding the container's /proc on", target))
                }
                other => other.map_err(io_err("mounting proc on", target)),
            }
        }
        MountStep::Tmpfs(target, options) => {
            mkdirs(target)?;
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(io_err("mounting tmpfs on", target))
        }
        MountStep::Devpts(target) => {
            mkdirs(target)?;
            mount(
                Some("devpts"),
                target,
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            )
            .map_err(io_err("mounting devpts on", target))
        }
        MountStep::Mqueue(target) => {
            mkdirs(target)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("mqueue"), target, Some("mqueue"), flags, NONE)
                .map_err(io_err("mounting mqueue on", target))
        }
        MountStep::Sysfs(target) => {
            mkdirs(target)?;
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            // Where the kernel refuses a new sysfs (no network namespace of our own), the
            // sandbox goes on without /sys.
            let _ = mount(Some("sysfs"), target, Some("sysfs"), flags, NONE);
            Ok(())
        }
        MountStep::Symlink { target, path } => {
            let _ = fs::remove_file(path);
            std::os::unix::fs::symlink(target, path).map_err(Error::io("linking", path))
        }
        MountStep::PivotRoot(root) => {
            // The new root is also where the old one goes: stacked on it, the old root is
            // what "." names right after the pivot, and is detached from there. No folder
            // for the old root is made in the new one (that took a copy-up of the root
            // folder in the overlay and its removal).
            nix::unistd::chdir(root).map_err(io_err("entering", root))?;
            nix::unistd::pivot_root(".", ".").map_err(io_err("pivot_root into", root))?;
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(io_err("detaching the old root from", root))?;
            nix::unistd::chdir("/").map_err(io_err("entering", Path::new("/")))?;
            Ok(())
        }
    }
}

/// Resolves `user[:group]` (names or numbers) from the root file system's `/etc/passwd`
/// and `/etc/group`.
fn resolve_user(spec: &str) -> Result<Identity> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    crate::users::identity(spec, &passwd, &group).map_err(Error::Sandbox)
}

/// PID 1 of the sandbox: assemble the root, start the command, reap until it exits.
fn init(
    spec: &SandboxSpec,
    plan: &[MountStep],
    tty: Option<std::os::fd::OwnedFd>,
    go: Option<std::os::fd::OwnedFd>,
    ready: std::os::fd::OwnedFd,
) -> Result<(i32, std::time::Duration)> {
    for step in plan {
        apply(step)?;
    }
    if let Some(go) = go {
        let mut byte = [0u8; 1];
        let ok = loop {
            match nix::unistd::read(&go, &mut byte) {
                Err(nix::Error::EINTR) => continue,
                other => break other.is_ok_and(|n| n == 1),
            }
        };
        if !ok {
            return Err(Error::Sandbox("the sandbox's network did not come up".into()));
        }
    }
    // The init holds the spec (environment values included): the command, root in the
    // same namespace but without CAP_SYS_PTRACE, may not trace it or read its /proc
    // files. (Only now: slirp4netns, as a normal user, had to open its namespaces.)
    let _ = nix::sys::prctl::set_dumpable(false);
    nix::unistd::sethostname(&spec.hostname)
        .map_err(io_err("setting the host name in", &spec.run_dir))?;
    let identity = resolve_user(&spec.user)?;
    let _ = nix::unistd::write(&ready, b"r");
    drop(ready);
    let started = std::time::Instant::now();
    // The command's own time starts at its execve: the child says when, through this
    // pipe, which the execve closes.
    let (stamp_read, stamp_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io_err("making a pipe for", &spec.run_dir))?;
    // SAFETY: PID 1 is single-threaded; the child only sets up its identity and execs.
    match unsafe { fork() }.map_err(io_err("forking the command in", &spec.run_dir))? {
        ForkResult::Child => {
            drop(stamp_read);
            let e = exec_command(spec, &identity, tty.as_ref(), Some(&stamp_write));
            eprintln!("rbuild: {}", crate::error::chain(&e));
            std::process::exit(match &e {
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
        ForkResult::Parent { child } => {
            drop(stamp_write);
            // A signal caught before the command existed goes to it now.
            forward_caught(child);
            // Reap every process that ends here (orphans are re-parented to PID 1) until the
            // command itself has ended; pass the signals rbuild forwards on to the command.
            let code = loop {
                match waitpid(Pid::from_raw(-1), None) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => break code,
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                        break 128 + sig as i32
                    }
                    Err(nix::Error::EINTR) => forward_caught(child),
                    Ok(_) => continue,
                    Err(_) => break 125,
                }
            };
            Ok((code, since_exec(&stamp_read).unwrap_or_else(|| started.elapsed())))
        }
    }
}

/// Finds a command on the sandbox's PATH.
fn find_program(name: &str, env: &[String]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Sets `--ulimit`s (before the switch to the command's user, which may not raise them).
fn set_ulimits(limits: &[super::spec::Ulimit]) -> Result<()> {
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    for l in limits {
        let resource = match l.name.as_str() {
            "as" => Resource::RLIMIT_AS,
            "core" => Resource::RLIMIT_CORE,
            "cpu" => Resource::RLIMIT_CPU,
            "data" => Resource::RLIMIT_DATA,
            "fsize" => Resource::RLIMIT_FSIZE,
            "locks" => Resource::RLIMIT_LOCKS,
            "memlock" => Resource::RLIMIT_MEMLOCK,
            "msgqueue" => Resource::RLIMIT_MSGQUEUE,
            "nice" => Resource::RLIMIT_NICE,
            "nofile" => Resource::RLIMIT_NOFILE,
            "nproc" => Resource::RLIMIT_NPROC,
            "rss" => Resource::RLIMIT_RSS,
            "rtprio" => Resource::RLIMIT_RTPRIO,
            "rttime" => Resource::RLIMIT_RTTIME,
            "sigpending" => Resource::RLIMIT_SIGPENDING,
            "stack" => Resource::RLIMIT_STACK,
            other => return Err(Error::Sandbox(format!("unknown ulimit {other}"))),
        };
        let value = |v: i64| if v < 0 { RLIM_INFINITY } else { v as u64 };
        setrlimit(resource, value(l.soft), value(l.hard))
            .map_err(|e| Error::Sandbox(format!("setting the ulimit {}: {e}", l.name)))?;
    }
    Ok(())
}

/// The monotonic clock now, in nanoseconds (the same clock in every process: the
/// sandbox makes no time namespace).
fn monotonic_nanos() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    let seconds = u64::try_from(now.tv_sec()).ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(u64::try_from(now.tv_nsec()).ok()?)
}

/// The time since the command's execve, from the stamp its process wrote just before it
/// (none when it wrote none: it failed before).
fn since_exec(stamp: &OwnedFd) -> Option<std::time::Duration> {
    let mut bytes = [0u8; 8];
    let n = nix::unistd::read(stamp, &mut bytes).ok()?;
    let at = u64::from_le_bytes(bytes.get(..n)?.try_into().ok()?);
    Some(std::time::Duration::from_nanos(monotonic_nanos()?.checked_sub(at)?))
}

/// In the command's process: identity, working directory, capabilities, then exec.
/// Writes the monotonic clock to `stamp` (when given) just before the execve. Returns
/// only on failure.
fn exec_command(
    spec: &SandboxSpec,
    who: &Identity,
    tty: Option<&std::os::fd::OwnedFd>,
    stamp: Option<&OwnedFd>,
) -> Error {
    let attempt = || -> Result<std::convert::Infallible> {
        if let Some(tty) = tty {
            use std::os::fd::AsRawFd;
            nix::unistd::setsid().map_err(io_err("starting a session in", Path::new("/")))?;
            // SAFETY: TIOCSCTTY takes an int argument; the fd is the open terminal slave.
            if unsafe { nix::libc::ioctl(tty.as_raw_fd(), nix::libc::TIOCSCTTY, 0) } != 0 {
                return Err(Error::Sandbox(
                    "could not make the terminal the controlling one".into(),
                ));
            }
            for target in 0..3 {
                // SAFETY: dup2 onto the standard descriptors of this process, which owns them.
                if unsafe { nix::libc::dup2(tty.as_raw_fd(), target) } < 0 {
                    return Err(Error::Sandbox("could not attach the terminal".into()));
                }
            }
        }
        let keep: HashSet<Capability> = DOCKER_DEFAULT_CAPS.iter().copied().collect();
        for cap in caps::all() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| Error::Sandbox(format!("dropping {cap}: {e}")))?;
            }
        }
        caps::set(None, CapSet::Inheritable, &keep)
            .map_err(|e| Error::Sandbox(format!("setting capabilities: {e}")))?;
        let groups: Vec<Gid> = who.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        // In a user namespace setgroups is denied, and only root is mapped.
        let in_user_namespace =
            fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if in_user_namespace && (who.uid != 0 || who.gid != 0) {
            return Err(Error::Sandbox(format!(
                "user {}:{} is not available in a rootless sandbox: only root is mapped (no subordinate ids)",
                who.uid, who.gid
            )));
        }
        if !in_user_namespace {
            nix::unistd::setgroups(&groups).map_err(io_err("setting groups in", Path::new("/")))?;
        }
        set_ulimits(&spec.extras.ulimits)?;
        // The working directory is made while still root, as Docker makes it, so that
        // `run -u nobody -w /work` finds it.
        let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
        let _ = fs::create_dir_all(cwd);
        nix::unistd::setgid(Gid::from_raw(who.gid))
            .map_err(io_err("setting the group in", Path::new("/")))?;
        nix::unistd::setuid(Uid::from_raw(who.uid))
            .map_err(io_err("setting the user in", Path::new("/")))?;
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        nix::unistd::chdir(cwd)
            .map_err(io_err("entering the working directory", Path::new(cwd)))?;
        nix::sys::prctl::set_no_new_privs()
            .map_err(io_err("setting no_new_privs in", Path::new("/")))?;
        // Only the standard streams reach the command (the stamp's pipe is closed by the
        // execve).
        {
            use std::os::fd::AsRawFd;
            let keep: Vec<_> = stamp.iter().map(|s| s.as_raw_fd()).collect();
            close_other_fds(&keep);
        }
        let mut env = spec.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", if who.home.is_empty() { "/" } else { &who.home }));
        }
        let name = spec.args.first().ok_or_else(|| Error::Sandbox("no command to run".into()))?;
        let program = find_program(name, &env).ok_or_else(|| Error::Io {
            action: "starting",
            path: PathBuf::from(name),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "executable file not found in $PATH",
            ),
        })?;
        let cstr =
            |s: &str| CString::new(s).map_err(|_| Error::Sandbox(format!("a NUL byte in {s:?}")));
        let argv: Vec<CString> = spec.args.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
        let envp: Vec<CString> = env.iter().map(|e| cstr(e)).collect::<Result<_>>()?;
        let path = cstr(&program.display().to_string())?;
        // Last: from here on only the calls Docker's default profile allows work.
        super::seccomp::install()?;
        if let (Some(stamp), Some(now)) = (stamp, monotonic_nanos()) {
            let _ = nix::unistd::write(stamp, &now.to_le_bytes());
        }
        nix::unistd::execve(&path, &argv, &envp).map_err(io_err("running", &program))
    };
    match attempt() {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Runs `spec.args` in the running sandbox whose init is `init` (`rbuild exec`): in its
/// user namespace when it has one of its own, its IPC, UTS, network, PID and mount
/// namespaces and its cgroups, confined as its command is (capabilities, `no_new_privs`,
/// seccomp), as `spec.user` in `spec.cwd` with `spec.env`. Call it while the process is
/// single-threaded (joining a user namespace requires it). Returns the exit code.
pub fn exec(init: u32, spec: &SandboxSpec) -> Result<i32> {
    use std::os::fd::AsFd;
    let ns = SandboxNamespaces::of(init)?;
    let (proc_dir, user, open) = (&ns.proc_dir, &ns.user, |n: &str| ns.open(n));
    let joined: Vec<(fs::File, CloneFlags)> = vec![
        (open("ipc")?, CloneFlags::CLONE_NEWIPC),
        (open("uts")?, CloneFlags::CLONE_NEWUTS),
        (open("net")?, CloneFlags::CLONE_NEWNET),
        (open("pid")?, CloneFlags::CLONE_NEWPID),
        (open("mnt")?, CloneFlags::CLONE_NEWNS),
    ];
    join_cgroups(proc_dir, &spec.run_dir)?;
    if let Some(user) = &user {
        nix::sched::setns(user.as_fd(), CloneFlags::CLONE_NEWUSER)
            .map_err(io_err("joining the user namespace of", proc_dir))?;
    }
    for (file, kind) in &joined {
        nix::sched::setns(file.as_fd(), *kind)
            .map_err(io_err("joining a namespace of", proc_dir))?;
    }
    drop(joined);
    let pty = if spec.tty {
        Some(
            nix::pty::openpty(terminal_size().as_ref(), None)
                .map_err(io_err("opening a pseudo-terminal for", &spec.run_dir))?,
        )
    } else {
        None
    };
    // SAFETY: the caller is single-threaded; the child sets up its identity and execs.
    match unsafe { fork() }.map_err(io_err("forking in", proc_dir))? {
        ForkResult::Child => {
            let slave = pty.map(|p| p.slave);
            // The parent is outside this PID namespace: getppid says 0 while it lives,
            // and the container's init (1) once it has died.
            let ready = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(io_err("setting the parent-death signal of", Path::new("/proc/self")))
                .and_then(|()| match nix::unistd::getppid().as_raw() {
                    1 => Err(Error::Sandbox("rbuild exec ended before its command started".into())),
                    _ => Ok(()),
                })
                .and_then(|()| resolve_user(&spec.user));
            let e = match ready {
                Ok(identity) => exec_command(spec, &identity, slave.as_ref(), None),
                Err(e) => e,
            };
            eprintln!("rbuild: {}", crate::error::chain(&e));
            std::process::exit(match &e {
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
        ForkResult::Parent { child } => {
            super::process::forward_signals(child);
            if let Some(pty) = pty {
                drop(pty.slave);
                // The command's end, as something to poll: a pidfd becomes readable then.
                // SAFETY: pidfd_open takes a PID and flags, and returns a new descriptor.
                let fd =
                    unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, child.as_raw(), 0) };
                if fd >= 0 {
                    // SAFETY: the descriptor was just opened and is owned here alone.
                    let ended = unsafe {
                        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
                    };
                    let mut buf = [0u8; 4];
                    relay_terminal(&pty.master, &ended, &mut buf, child);
                }
            }
            Ok(wait_code(child))
        }
    }
}

/// The namespaces of a running sandbox, as `exec` and `cp` join them.
struct SandboxNamespaces {
    /// `/proc/PID` of the process they are opened through.
    proc_dir: PathBuf,
    /// Its user namespace, when it is not this process's own.
    user: Option<fs::File>,
}

impl SandboxNamespaces {
    /// Through the sandbox's command where it can be: the init is not dumpable, and a
    /// normal user may not open the namespaces of a process that is not dumpable and was
    /// not started inside its user namespace.
    fn of(init: u32) -> Result<SandboxNamespaces> {
        let proc_dir = [first_child(init), Some(init)]
            .into_iter()
            .flatten()
            .map(|pid| PathBuf::from(format!("/proc/{pid}")))
            .find(|dir| fs::File::open(dir.join("ns/user")).is_ok())
            .unwrap_or_else(|| PathBuf::from(format!("/proc/{init}")));
        let theirs = fs::read_link(proc_dir.join("ns/user")).ok();
        let mut ns = SandboxNamespaces { proc_dir, user: None };
        if theirs != fs::read_link("/proc/self/ns/user").ok() {
            ns.user = Some(ns.open("user")?);
        }
        Ok(ns)
    }

    fn open(&self, name: &str) -> Result<fs::File> {
        let path = self.proc_dir.join("ns").join(name);
        fs::File::open(&path).map_err(Error::io("opening", path))
    }
}

/// The oldest process whose parent is `pid` (the command, for a sandbox's init).
pub fn first_child(pid: u32) -> Option<u32> {
    let parent = format!("PPid:\t{pid}");
    let mut children: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == parent))
        })
        .collect();
    children.sort();
    children.first().copied()
}

/// Moves this process into the cgroups rbuild made for the sandbox of `proc_dir` (named
/// after its run directory), where it has any: its limits hold for what `exec` runs.
fn join_cgroups(proc_dir: &Path, run_dir: &Path) -> Result<()> {
    let id = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let own = format!("rbuild-{id}");
    let listed = fs::read_to_string(proc_dir.join("cgroup")).unwrap_or_default();
    for line in listed.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else { continue };
        if !path.ends_with(&own) {
            continue;
        }
        let hierarchy = match controllers {
            "" => String::new(),
            c => c.split(',').next().unwrap_or(c).trim_start_matches("name=").to_string(),
        };
        let mut dir = PathBuf::from("/sys/fs/cgroup");
        if !hierarchy.is_empty() {
            dir.push(&hierarchy);
        }
        let procs = dir.join(path.trim_start_matches('/')).join("cgroup.procs");
        fs::write(&procs, "0").map_err(Error::io("joining the cgroup", procs))?;
    }
    Ok(())
}

/// Runs `work` in a child process that has joined the user namespace (when it has one
/// of its own) and the mount namespace of the running sandbox whose init is `init`: its
/// root is then the sandbox's root, and nothing it does can reach the host's files
/// through the sandbox's links. Returns what `work` returned (its error as text).
pub fn in_sandbox_root(init: u32, work: impl FnOnce() -> Result<()>) -> Result<()> {
    use std::os::fd::AsFd;
    let ns = SandboxNamespaces::of(init)?;
    let (proc_dir, user, open) = (&ns.proc_dir, &ns.user, |n: &str| ns.open(n));
    let mnt = open("mnt")?;
    let (answer_rx, answer_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io_err("making a pipe for", proc_dir))?;
    // SAFETY: the caller is single-threaded; the child joins, works and exits.
    match unsafe { fork() }.map_err(io_err("forking for", proc_dir))? {
        ForkResult::Child => {
            drop(answer_rx);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let joined = user
                .as_ref()
                .map_or(Ok(()), |u| nix::sched::setns(u.as_fd(), CloneFlags::CLONE_NEWUSER))
                .and_then(|()| nix::sched::setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS))
                .and_then(|()| nix::unistd::chdir("/"));
            let result = joined
                .map_err(io_err("joining the mount namespace of", proc_dir))
                .and_then(|()| work());
            if let Err(e) = result {
                let _ = nix::unistd::write(&answer_tx, crate::error::chain(&e).as_bytes());
            }
            // SAFETY: _exit ends the child without the parent's exit handlers.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(answer_tx);
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = nix::unistd::read(&answer_rx, &mut buf) {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
            let code = wait_code(child);
            match (answer.is_empty(), code) {
                (true, 0) => Ok(()),
                (true, c) => Err(Error::Sandbox(format!("the copy's process ended with {c}"))),
                (false, _) => Err(Error::Sandbox(String::from_utf8_lossy(&answer).into_owned())),
            }
        }
    }
}
