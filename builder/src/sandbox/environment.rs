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
            " It runs in a container ({why}): start the container with `--cap-add \
             SYS_ADMIN --security-opt seccomp=unconfined --security-opt \
             apparmor=unconfined` (as root), or run rbuild as a non-root user in a \
             container with seccomp and AppArmor unconfined (a user namespace then isolates \
             each RUN)."
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
    fn a_refusal_gets_advice() {
        assert_eq!(explain("no such file"), "no such file");
        assert!(explain("creating a PID namespace: Operation not permitted").contains("namespaces"));
    }
}
