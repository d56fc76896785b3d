//! What the environment rbuild runs in allows: whether it is a container, and what to say
//! when a sandbox cannot be set up there.

use std::path::Path;

/// Why rbuild thinks it runs inside a container (Docker, Podman, Kubernetes, containerd),
/// or `None`. The signs are the ones those runtimes leave: `/.dockerenv`,
/// `/run/.containerenv`, the `container` variable of systemd's container interface, a
/// Kubernetes service variable, or the container's name in PID 1's cgroup.
pub fn container_evidence() -> Option<String> {
    container_evidence_in(Path::new("/"), |name| std::env::var_os(name).is_some())
}

/// [`container_evidence`] over another root and environment (for tests).
pub fn container_evidence_in(root: &Path, has_var: impl Fn(&str) -> bool) -> Option<String> {
    for (file, what) in
        [(".dockerenv", "/.dockerenv exists"), ("run/.containerenv", "/run/.containerenv exists")]
    {
        if root.join(file).exists() {
            return Some(what.to_string());
        }
    }
    if has_var("container") {
        return Some("the variable container is set".into());
    }
    if has_var("KUBERNETES_SERVICE_HOST") {
        return Some("the variable KUBERNETES_SERVICE_HOST is set (a Kubernetes pod)".into());
    }
    let cgroup = std::fs::read_to_string(root.join("proc/1/cgroup")).unwrap_or_default();
    for word in ["docker", "kubepods", "containerd", "libpod", "lxc"] {
        if cgroup.contains(word) {
            return Some(format!("PID 1's cgroup names {word}"));
        }
    }
    None
}

/// How RUN steps are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// New Linux namespaces for each RUN (in a user namespace as a normal user).
    Sandbox,
    /// The container rbuild runs in, its root file system rewritten for each step.
    Container,
}

/// Whether this process may make the namespaces of a sandbox: `None` when it may, else
/// what refused it. Tried in a child process (unshare there changes nothing here).
pub fn namespaces_refused() -> Option<String> {
    namespaces_refused_with(!crate::users::is_root())
}

/// As [`namespaces_refused`], in a new user namespace (`user`) or without one. Probed
/// once per process for each (a probe forks this process: about half a millisecond, which
/// the start of every command paid two or three times); what a process may make does
/// not change while it runs.
pub fn namespaces_refused_with(user: bool) -> Option<String> {
    static WITHOUT_USER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    static WITH_USER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let once = if user { &WITH_USER } else { &WITHOUT_USER };
    once.get_or_init(|| probe_namespaces(user)).clone()
}

/// Tries the sandbox's `unshare` in a child process.
fn probe_namespaces(user: bool) -> Option<String> {
    use nix::sched::{unshare, CloneFlags};
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if user {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    // SAFETY: the child makes one system call and exits, allocating nothing.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = match unshare(flags) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit ends the child at once, running nothing of the parent's.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => None,
                Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => Some(format!(
                    "making new namespaces: {}",
                    nix::errno::Errno::from_raw(errno).desc()
                )),
                other => Some(format!("making new namespaces: the probe ended as {other:?}")),
            }
        }
        Err(e) => Some(format!("forking a probe: {e}")),
    }
}

/// The isolation to use: `requested` (`None`: choose). Chosen, it is the sandbox where
/// namespaces can be made, else, as root in a detected container that is there to be
/// rewritten (`RBUILD_KEEP` set, as in rbuild's image), the container itself; the message
/// says which and why when it is not the sandbox. The container isolation
/// is refused outside a detected container, and as a normal user.
pub fn choose(requested: Option<Isolation>) -> Result<(Isolation, Option<String>), String> {
    match requested {
        Some(Isolation::Sandbox) => Ok((Isolation::Sandbox, None)),
        Some(Isolation::Container) => {
            let Some(why) = container_evidence() else {
                return Err("--isolation container runs RUN steps in the root file system \
                     rbuild runs in, removing its files: it refuses to run outside a \
                     container (none detected: no /.dockerenv, /run/.containerenv, \
                     container variable, Kubernetes pod or container cgroup)"
                    .into());
            };
            if !crate::users::is_host_root() {
                return Err("--isolation container needs root in the container (it sets \
                     the owners of the image's files and runs steps as their users)"
                    .into());
            }
            Ok((Isolation::Container, Some(format!("isolation: the container ({why}), as asked"))))
        }
        None => {
            let Some(refused) = namespaces_refused() else {
                return Ok((Isolation::Sandbox, user_namespace_line()));
            };
            // Chosen only in a container that says it is there to be rewritten: rbuild's
            // own image sets RBUILD_KEEP. Elsewhere (a developer's container, say) the
            // first RUN fails with what to do, `--isolation container` among it: the
            // container isolation removes the container's files.
            let throwaway = std::env::var_os("RBUILD_KEEP").is_some_and(|v| !v.is_empty());
            match container_evidence() {
                Some(why) if crate::users::is_host_root() && throwaway => Ok((
                    Isolation::Container,
                    Some(format!(
                        "isolation: the container ({why}); it allows no new namespaces \
                         ({refused}), so each RUN runs in its own root file system"
                    )),
                )),
                _ => Ok((Isolation::Sandbox, None)),
            }
        }
    }
}

/// For a sandbox in a user namespace, the line that says which ids it has: a normal
/// user's rbuild in its namespace of subordinate ids, another user namespace (a rootless
/// container's), or one the sandbox makes for the caller alone.
fn user_namespace_line() -> Option<String> {
    if crate::users::is_host_root() {
        return None;
    }
    if !crate::users::is_root() {
        return Some(
            "isolation: a sandbox in a user namespace that maps only you (no subordinate \
             ids: see `rbuild --help`): RUN as another user and --chown to one are refused"
                .into(),
        );
    }
    let ids: u64 = std::fs::read_to_string("/proc/self/uid_map")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    let entered = std::env::var(super::subids::ENTERED_VAR).unwrap_or_default();
    Some(if entered == super::subids::ROOT_ENTERED {
        "isolation: a sandbox in a user namespace of the same ids (root here may make \
         namespaces only there: no CAP_SYS_ADMIN)"
            .to_string()
    } else if super::subids::entered_for_a_user() {
        format!("isolation: a sandbox in a user namespace of your subordinate ids ({ids} ids, you are root there)")
    } else {
        format!("isolation: a sandbox in the user namespace rbuild runs in ({ids} ids)")
    })
}

/// The paths the container isolation leaves alone, besides the ones its caller adds
/// (the store, the context): every mount point (the container's volumes, `/proc`,
/// `/etc/hosts` ...), rbuild's own executable, the CA certificates and registry
/// credentials rbuild reads (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `DOCKER_CONFIG` or
/// `~/.docker`), and the paths listed in `RBUILD_KEEP` (colon-separated; rbuild's image
/// sets it to its own folder).
pub fn container_keep_paths() -> Vec<std::path::PathBuf> {
    use std::path::PathBuf;
    let mut keep: Vec<PathBuf> = ["/proc", "/sys", "/dev"].iter().map(PathBuf::from).collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        if let Some(point) = line.split(' ').nth(4) {
            let point = unescape_mount_path(point);
            if point != "/" {
                keep.push(PathBuf::from(point));
            }
        }
    }
    keep.extend(std::env::current_exe().ok());
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "DOCKER_CONFIG"] {
        keep.extend(std::env::var_os(var).map(PathBuf::from));
    }
    if std::env::var_os("DOCKER_CONFIG").is_none() {
        keep.extend(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    }
    if let Some(list) = std::env::var_os("RBUILD_KEEP") {
        keep.extend(std::env::split_paths(&list).filter(|p| p.is_absolute()));
    }
    keep
}

/// A mount point as `/proc/self/mountinfo` writes it (`\040` for a space ...), decoded.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4].iter().fold(0u32, |a, b| a * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A sandbox error with what to do about it, when the environment refused it a
/// namespace or a mount (the usual case in a container).
pub fn explain(message: &str) -> String {
    let refused =
        ["Operation not permitted", "Permission denied"].iter().any(|m| message.contains(m));
    if !refused {
        return message.to_string();
    }
    let mut text = format!(
        "{message}\nrbuild runs each RUN in new Linux namespaces (mount, PID, network ...), \
         which this environment does not allow."
    );
    if let Some(why) = container_evidence() {
        text.push_str(&format!(
            " It runs in a container ({why}): as root, give rbuild `--isolation \
             container` (each RUN then runs in the container's own root file system, which \
             it rewrites: for a throwaway CI container), or start the container with \
             `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (a \
             user namespace then isolates each RUN, for root or a normal user)."
        ));
    } else if crate::users::is_root() {
        text.push_str(" As root, rbuild needs CAP_SYS_ADMIN and a seccomp policy that allows unshare and mount.");
    } else {
        text.push_str(
            " As a normal user, rbuild needs unprivileged user namespaces \
             (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, and no \
             AppArmor restriction such as kernel.apparmor_restrict_unprivileged_userns).",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_signs_of_a_container() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(container_evidence_in(dir.path(), |_| false), None);
        assert!(container_evidence_in(dir.path(), |n| n == "KUBERNETES_SERVICE_HOST").is_some());
        std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
        std::fs::write(dir.path().join("proc/1/cgroup"), "0::/system.slice/docker-abc.scope\n")
            .unwrap();
        assert!(container_evidence_in(dir.path(), |_| false).unwrap().contains("docker"));
        std::fs::write(dir.path().join(".dockerenv"), "").unwrap();
        assert_eq!(container_evidence_in(dir.path(), |_| false).unwrap(), "/.dockerenv exists");
    }

    #[test]
    fn mount_points_are_decoded() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn a_refusal_gets_advice() {
        assert_eq!(explain("no such file"), "no such file");
        assert!(explain("creating a PID namespace: Operation not permitted").contains("namespaces"));
    }
}
