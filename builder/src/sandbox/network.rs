//! The sandbox's default network: a network namespace of its own, connected to the
//! outside by slirp4netns, a user-mode TCP/IP stack (Debian's `slirp4netns`, the one
//! rootless Docker and Podman use). The command sees one interface, `tap0`
//! (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3 forwarded to the host's resolver), and
//! loopback; slirp4netns opens the command's connections as ordinary sockets of the
//! host, as rbuild's user. Nothing of the host's network configuration changes, and the
//! host's loopback services stay out of reach (`--disable-host-loopback`).
//!
//! slirp4netns must run in the host's network namespace and outside the sandbox's PID
//! namespace (a process of the sandbox could otherwise trace it, and through it reach
//! the host's network), but it can only start once the sandbox's network namespace
//! exists. So a small launcher is forked before anything else, while rbuild is still
//! plainly itself; it waits for the init's process ID and then becomes slirp4netns.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};

/// The name servers the command is given: slirp4netns's forwarder.
pub const RESOLV_CONF: &str = "nameserver 10.0.2.3\n";

/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A forked launcher waiting to become slirp4netns for one sandbox.
#[derive(Debug)]
pub struct Slirp {
    /// Where the init's PID goes.
    pid_tx: OwnedFd,
    /// slirp4netns writes here once the interface is up.
    ready_rx: OwnedFd,
    /// slirp4netns exits when this closes.
    exit_tx: Option<OwnedFd>,
    /// The launcher (later slirp4netns itself).
    child: Pid,
    /// slirp4netns's own messages.
    log: PathBuf,
    /// Its control socket, when ports are published.
    api: Option<PathBuf>,
    /// The ports to publish once the network is up.
    ports: Vec<super::PortMap>,
}

fn pipe(dir: &Path) -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Io {
        action: "making a pipe for",
        path: dir.to_path_buf(),
        source: e.into(),
    })
}

/// Finds slirp4netns on the PATH.
fn find() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join("slirp4netns")).find(|p| p.is_file()).ok_or_else(
        || {
            Error::Sandbox(
                "the default network needs slirp4netns (Debian and Ubuntu package slirp4netns) \
                 on the PATH; install it, or choose --network none (no network) or \
                 --network host (the host's own network)"
                    .into(),
            )
        },
    )
}

impl Slirp {
    /// Forks the launcher. Call it while the process is single-threaded and still in the
    /// host's namespaces; `rootless` when the sandbox will run in a user namespace of
    /// rbuild's (slirp4netns then joins it to reach the network namespace).
    pub fn fork(run_dir: &Path, rootless: bool, ports: &[super::PortMap]) -> Result<Slirp> {
        let program = find()?;
        // slirp4netns opens the tunnel device inside the user namespace, where only the
        // device's permissions for others count.
        let tun = Path::new("/dev/net/tun");
        if (rootless || crate::users::in_user_namespace())
            && nix::unistd::access(
                tun,
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
            )
            .is_err()
        {
            return Err(Error::Sandbox(
                "the default network of a rootless sandbox needs /dev/net/tun readable and \
                 writable by every user (mode 0666, as distributions' device rules make it); \
                 run `chmod 0666 /dev/net/tun` as root, or choose --network none or \
                 --network host"
                    .into(),
            ));
        }
        let log = run_dir.join("slirp4netns.log");
        let api = (!ports.is_empty()).then(|| run_dir.join("slirp4netns.sock"));
        if let Some(api) = &api {
            let _ = fs::remove_file(api);
        }
        let (pid_rx, pid_tx) = pipe(run_dir)?;
        let (ready_rx, ready_tx) = pipe(run_dir)?;
        let (exit_rx, exit_tx) = pipe(run_dir)?;
        let log_file = fs::File::create(&log).map_err(Error::io("creating", log.clone()))?;
        // SAFETY: the caller is single-threaded (see above); the child only reads a pipe,
        // prepares arguments and execs.
        match unsafe { fork() }.map_err(|e| Error::Io {
            action: "forking the network launcher for",
            path: run_dir.to_path_buf(),
            source: e.into(),
        })? {
            ForkResult::Child => {
                drop((pid_tx, ready_rx, exit_tx));
                let pipes = (pid_rx, ready_tx, exit_rx);
                let code = launch(&program, rootless, api.as_deref(), pipes, log_file);
                std::process::exit(code);
            }
            ForkResult::Parent { child } => {
                drop((pid_rx, ready_tx, exit_rx, log_file));
                let ports = ports.to_vec();
                Ok(Slirp { pid_tx, ready_rx, exit_tx: Some(exit_tx), child, log, api, ports })
            }
        }
    }

    /// Starts slirp4netns on the network namespace of `init` (which has made it) and
    /// waits until the interface is configured.
    pub fn start(&mut self, init: Pid) -> Result<()> {
        nix::unistd::write(&self.pid_tx, &init.as_raw().to_le_bytes())
            .map_err(|e| self.failure(&format!("could not reach the network launcher: {e}")))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.failure(&format!(
                    "slirp4netns did not configure the network within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            let mut fds = [PollFd::new(self.ready_rx.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(self.failure(&format!("waiting for slirp4netns: {e}"))),
            }
            let mut byte = [0u8; 1];
            return match nix::unistd::read(&self.ready_rx, &mut byte) {
                Ok(1) => self.publish(),
                _ => Err(self.failure("slirp4netns exited before the network was up")),
            };
        }
    }

    /// Asks slirp4netns, through its control socket, to forward each published port.
    fn publish(&self) -> Result<()> {
        let Some(api) = &self.api else { return Ok(()) };
        for port in &self.ports {
            let request = serde_json::json!({
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": port.proto,
                    "host_addr": port.host_ip,
                    "host_port": port.host_port,
                    "guest_port": port.container_port,
                },
            });
            let answer = ask(api, &request.to_string())
                .map_err(|e| self.failure(&format!("publishing {port}: {e}")))?;
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            if answer.get("return").is_none() {
                let why = answer["error"]["desc"].as_str().unwrap_or("no answer").to_string();
                return Err(Error::Sandbox(format!(
                    "publishing {port}: {why} (is the host port in use?)"
                )));
            }
        }
        Ok(())
    }

    fn failure(&self, what: &str) -> Error {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        // Its first lines say what went wrong (a usage text may follow).
        let head: Vec<&str> =
            log.lines().take_while(|l| !l.starts_with("Usage:")).take(4).collect();
        let mut message = format!("the sandbox's network: {what}");
        if !head.is_empty() {
            message.push_str(&format!(" (slirp4netns: {})", head.join(" | ")));
        }
        Error::Sandbox(message)
    }

    /// Stops slirp4netns (it exits when its exit pipe closes) and returns its process to
    /// reap.
    pub fn stop(mut self) -> Pid {
        self.exit_tx = None;
        self.child
    }
}

/// One request on slirp4netns's control socket and its answer. The socket is made as
/// slirp4netns starts; it is tried for two seconds.
fn ask(api: &Path, request: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(2);
    // Reached through a descriptor of its folder, whatever the folder's path's length.
    let dir = fs::File::open(api.parent().unwrap_or(Path::new(".")))?;
    let name = api.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let short = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    let mut stream = loop {
        match std::os::unix::net::UnixStream::connect(&short) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.take(64 * 1024).read_to_string(&mut answer)?;
    Ok(answer)
}

/// In the launcher: waits for the init's PID, then becomes slirp4netns. Returns an exit
/// code only on failure.
fn launch(
    program: &Path,
    rootless: bool,
    api: Option<&Path>,
    (pid_rx, ready_tx, exit_rx): (OwnedFd, OwnedFd, OwnedFd),
    log: fs::File,
) -> i32 {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match nix::unistd::read(&pid_rx, &mut buf[got..]) {
            Ok(0) => return 0, // the sandbox never started
            Ok(n) => got += n,
            Err(nix::Error::EINTR) => {}
            Err(_) => return 1,
        }
    }
    let init = i32::from_le_bytes(buf);
    // The descriptors slirp4netns uses must survive exec; its output goes to the log.
    for fd in [&ready_tx, &exit_rx] {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
    }
    let null = fs::File::open("/dev/null").ok();
    // SAFETY: dup2 onto this process's own standard descriptors before exec.
    unsafe {
        if let Some(null) = &null {
            nix::libc::dup2(null.as_raw_fd(), 0);
        }
        nix::libc::dup2(log.as_raw_fd(), 1);
        nix::libc::dup2(log.as_raw_fd(), 2);
    }
    let mut args = vec![
        program.display().to_string(),
        "--configure".to_string(),
        "--mtu=65520".to_string(),
        "--disable-host-loopback".to_string(),
        // slirp4netns handles the command's traffic: it confines itself too (a mount
        // namespace of its own, no capabilities, a system-call filter).
        "--enable-sandbox".to_string(),
        "--enable-seccomp".to_string(),
        format!("--ready-fd={}", ready_tx.as_raw_fd()),
        format!("--exit-fd={}", exit_rx.as_raw_fd()),
    ];
    if rootless {
        args.push(format!("--userns-path=/proc/{init}/ns/user"));
    }
    if let Some(api) = api {
        // A socket's path has at most 107 bytes, less than a store's deep folders may
        // need: slirp4netns makes it from the run directory, by its file name.
        if let (Some(dir), Some(name)) = (api.parent(), api.file_name()) {
            if nix::unistd::chdir(dir).is_err() {
                return 1;
            }
            args.push(format!("--api-socket={}", name.to_string_lossy()));
        }
    }
    args.push(init.to_string());
    args.push("tap0".to_string());
    let cargs: Vec<std::ffi::CString> =
        args.iter().filter_map(|a| std::ffi::CString::new(a.as_str()).ok()).collect();
    let e = nix::unistd::execv(&cargs[0], &cargs);
    eprintln!("rbuild: starting {}: {e:?}", program.display());
    127
}
