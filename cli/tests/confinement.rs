//! The sandbox against hostile Dockerfiles and images. Each attack is a shell script that
//! prints `BREACH: ...` and exits 1 when the attack works, and ends with `confined`
//! otherwise; every attack runs four ways: in `rbuild run` and in a build's RUN, as root
//! and as a normal user (rootless, through a user namespace). Host state an attack aims
//! at is checked unchanged afterwards. Needs root (CI runs as root); elsewhere each test
//! fails with the reason.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::util::{busybox_images, ok, require_root, require_tool, AsUser};

/// The stores every attack runs against: one of root's and one of the test user's, each
/// holding busybox, and the static system-call probe.
struct Arena {
    root_store: tempfile::TempDir,
    user: AsUser,
    /// A user whose rbuild runs in a user namespace of its subordinate ids.
    ids_user: AsUser,
    probe: PathBuf,
}

fn arena() -> &'static Arena {
    static ARENA: OnceLock<Arena> = OnceLock::new();
    ARENA.get_or_init(|| {
        require_root();
        let root_store = tempfile::tempdir().unwrap();
        let archive = busybox_images().join("busybox-oci.tar");
        ok(root_store.path(), &["load", "-q", "-i", archive.to_str().unwrap()]);
        let user = AsUser::new("rbuild-confined");
        let o = user.rbuild(&["load", "-q", "-i", user.archive.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ids_user = AsUser::with_subids("rbuild-confined-ids");
        let o = ids_user.rbuild(&["load", "-q", "-i", ids_user.archive.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The probe: a static program that tries the system calls Docker's profile refuses.
        require_tool("gcc", "gcc and libc6-dev");
        let probe = user.work.path().join("probe");
        let built = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&probe)
            .arg(crate::util::repo().join("testdata/confinement/probe.c"))
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "gcc -static testdata/confinement/probe.c (needs libc6-dev): {}",
            String::from_utf8_lossy(&built.stderr)
        );
        Arena { root_store, user, ids_user, probe }
    })
}

/// What every attack script starts with.
const PRELUDE: &str = "breach() { echo \"BREACH: $*\"; exit 1; }\n";

/// One way of running an attack.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    RunAsRoot,
    RunRootless,
    RunSubids,
    BuildAsRoot,
    BuildRootless,
    BuildSubids,
}

/// As root; as a normal user mapped alone; as a normal user with subordinate ids.
const WAYS: [Way; 6] = [
    Way::RunAsRoot,
    Way::RunRootless,
    Way::RunSubids,
    Way::BuildAsRoot,
    Way::BuildRootless,
    Way::BuildSubids,
];

/// An attack: its script, and what it needs besides the context at `/ctx` (which holds
/// the script and the probe): a writable directory at `/w` (a volume for `run`, a cache
/// mount for RUN), and a command prefix (`sh -c 'exec 7<...; exec "$@"'` style) around
/// rbuild.
#[derive(Default)]
struct Attack<'a> {
    script: &'a str,
    writable: bool,
    wrapper: Option<&'a str>,
    tmpfs: bool,
    /// The RUN names apt (an argument the script ignores): only such a RUN's apt is
    /// pointed at the download cache's proxy.
    apt: bool,
}

/// Runs `attack` every way; each must end `confined`.
fn assert_confined(attack: &Attack) {
    let a = arena();
    for way in WAYS {
        let (out, ctx) = run_way(a, attack, way);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("confined") && !text.contains("BREACH"),
            "{way:?}: the attack was not held (exit {:?}):\n{text}",
            out.status.code()
        );
        drop(ctx);
    }
}

/// A context directory readable by the test user: the script and the probe.
fn context(a: &Arena, script: &str, dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(a.user.work.path()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.path().join("attack.sh"), format!("{PRELUDE}{script}\necho confined\n")).unwrap();
    crate::util::copy_executable(&a.probe, &dir.path().join("probe"));
    fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for f in ["attack.sh", "probe", "Dockerfile"] {
        fs::set_permissions(dir.path().join(f), fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn run_way(a: &Arena, attack: &Attack, way: Way) -> (Output, tempfile::TempDir) {
    let mut flags = String::from("--mount=type=bind,target=/ctx");
    if attack.writable {
        flags.push_str(" --mount=type=cache,target=/w");
    }
    if attack.tmpfs {
        flags.push_str(" --mount=type=tmpfs,target=/t");
    }
    let apt = if attack.apt { " apt-get" } else { "" };
    let dockerfile = format!("FROM busybox\nRUN {flags} sh /ctx/attack.sh{apt}\n");
    let ctx = context(a, attack.script, &dockerfile);
    let writable = ctx.path().join("w");
    fs::create_dir(&writable).unwrap();
    let user = match way {
        Way::RunAsRoot | Way::BuildAsRoot => None,
        Way::RunRootless | Way::BuildRootless => Some(&a.user),
        Way::RunSubids | Way::BuildSubids => Some(&a.ids_user),
    };
    if let Some(u) = user {
        std::os::unix::fs::chown(&writable, Some(u.uid), Some(u.gid)).unwrap();
    }
    let (binary, store) = match user {
        None => (assert_cmd::cargo::cargo_bin("rbuild"), a.root_store.path().to_path_buf()),
        Some(u) => (u.binary.clone(), u.store.clone()),
    };
    let mut args: Vec<String> = vec!["--root".into(), store.display().to_string()];
    match way {
        Way::RunAsRoot | Way::RunRootless | Way::RunSubids => {
            args.extend(["run".into(), "-v".into(), format!("{}:/ctx:ro", ctx.path().display())]);
            if attack.writable {
                args.extend(["-v".into(), format!("{}:/w", writable.display())]);
            }
            args.extend(["busybox".into(), "sh".into(), "/ctx/attack.sh".into()]);
        }
        Way::BuildAsRoot | Way::BuildRootless | Way::BuildSubids => {
            // The RUN's output is in the plain progress; a failed RUN fails the build.
            args.extend(["build", "--no-cache", "--progress", "plain"].map(String::from));
            args.push(ctx.path().display().to_string());
        }
    }
    let mut cmd = match attack.wrapper {
        Some(wrapper) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{wrapper}; exec \"$@\"")).arg("sh").arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    cmd.args(&args);
    if let Some(u) = user {
        u.apply(&mut cmd);
    }
    (cmd.output().unwrap(), ctx)
}

/// The host's value of a file, to check that it did not change.
fn host(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("unreadable: {e}"))
}

// ---- /proc and /sys --------------------------------------------------------------------

#[test]
fn proc_sys_cannot_be_written() {
    let before = (host("/proc/sys/kernel/core_pattern"), host("/proc/sys/vm/overcommit_memory"));
    assert_confined(&Attack {
        script: r#"
for f in kernel/core_pattern vm/drop_caches vm/overcommit_memory net/ipv4/ip_forward kernel/hostname; do
  old="$(cat /proc/sys/$f 2>/dev/null)"
  if echo "$old" > /proc/sys/$f 2>/dev/null; then breach "wrote /proc/sys/$f"; fi
done
echo '|/tmp/rbuild-pwned %p' > /proc/sys/kernel/core_pattern 2>/dev/null && breach core_pattern
mount | grep -q ' /proc/sys type proc (ro,' || breach "/proc/sys is not mounted read-only"
"#,
        ..Default::default()
    });
    assert_eq!(
        (host("/proc/sys/kernel/core_pattern"), host("/proc/sys/vm/overcommit_memory")),
        before,
        "the host's sysctls are unchanged"
    );
}

macro_rules! read_only_path {
    ($name:ident, $path:literal, $write:literal) => {
        #[test]
        fn $name() {
            assert_confined(&Attack {
                script: concat!(
                    "p=", $path, "\n",
                    "[ -e $p ] || { echo \"$p does not exist here\"; echo confined; exit 0; }\n",
                    "mount | grep -q \" $p type proc (ro,\" || breach \"$p is not mounted read-only\"\n",
                    $write, " 2>/dev/null && breach \"wrote under $p\"\n",
                ),
                ..Default::default()
            });
        }
    };
}

read_only_path!(proc_sysrq_trigger_is_read_only, "/proc/sysrq-trigger", "echo h > $p");
read_only_path!(proc_irq_is_read_only, "/proc/irq", "echo 1 > $p/default_smp_affinity");
read_only_path!(proc_bus_is_read_only, "/proc/bus", "touch $p/x");
read_only_path!(proc_fs_is_read_only, "/proc/fs", "touch $p/x");
read_only_path!(proc_sys_is_read_only, "/proc/sys", "echo 3 > $p/vm/drop_caches");

macro_rules! masked_path {
    ($name:ident, $path:literal) => {
        #[test]
        fn $name() {
            assert_confined(&Attack {
                script: concat!(
                    "p=", $path, "\n",
                    "if [ -d $p ]; then [ -z \"$(ls -A $p 2>/dev/null)\" ] || breach \"$p lists: $(ls -A $p | head -3)\"\n",
                    "  touch $p/x 2>/dev/null && breach \"$p is writable\"\n",
                    "elif [ -e $p ]; then n=\"$(head -c 4096 $p 2>/dev/null | wc -c)\"; [ \"$n\" = 0 ] || breach \"$p gave $n bytes\"\n",
                    "fi\n",
                ),
                ..Default::default()
            });
        }
    };
}

masked_path!(proc_kcore_is_masked, "/proc/kcore");
masked_path!(proc_keys_is_masked, "/proc/keys");
masked_path!(proc_timer_list_is_masked, "/proc/timer_list");
masked_path!(proc_timer_stats_is_masked, "/proc/timer_stats");
masked_path!(proc_sched_debug_is_masked, "/proc/sched_debug");
masked_path!(proc_latency_stats_is_masked, "/proc/latency_stats");
masked_path!(proc_interrupts_is_masked, "/proc/interrupts");
masked_path!(proc_scsi_is_masked, "/proc/scsi");
masked_path!(proc_acpi_is_masked, "/proc/acpi");
masked_path!(proc_asound_is_masked, "/proc/asound");
masked_path!(sys_firmware_is_masked, "/sys/firmware");
masked_path!(sys_powercap_is_masked, "/sys/devices/virtual/powercap");

#[test]
fn the_masks_hide_what_the_host_shows() {
    // The masked files are not empty on the host, or the masks above prove nothing.
    require_root();
    assert!(!host("/proc/keys").is_empty() || !host("/proc/timer_list").is_empty());
    assert!(fs::read_dir("/sys/firmware").is_ok_and(|mut d| d.next().is_some()));
}

// ---- device nodes -----------------------------------------------------------------------

#[test]
fn device_nodes_open_nothing_on_writable_mounts() {
    // 1,3 is /dev/null's number: harmless should the attack work; 1,11 is /dev/kmsg.
    assert_confined(&Attack {
        script: r#"
for d in /w /tmp /dev/shm /t; do
  [ -d $d ] || continue
  rm -f $d/null $d/kmsg
  if mknod $d/null c 1 3 2>/dev/null; then
    echo probe > $d/null 2>/dev/null && breach "a device node made in $d opened"
  fi
  if mknod $d/kmsg c 1 11 2>/dev/null; then
    echo "rbuild-confinement-test" > $d/kmsg 2>/dev/null && breach "wrote to the kernel log through $d/kmsg"
  fi
  rm -f $d/null $d/kmsg
done
"#,
        writable: true,
        tmpfs: true,
        ..Default::default()
    });
}

// ---- system calls -----------------------------------------------------------------------

#[test]
fn seccomp_refuses_what_dockers_default_profile_refuses() {
    assert_confined(&Attack {
        script: r#"
grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status || breach "no seccomp filter: $(grep Seccomp /proc/self/status)"
out="$(/ctx/probe)"
echo "$out"
for call in keyctl add_key request_key bpf perf_event_open unshare_user unshare_mount \
    clone_newuser clone_newns setns mount umount2 pivot_root kexec_load init_module \
    finit_module delete_module open_by_handle_at userfaultfd reboot swapon syslog acct \
    sethostname settimeofday iopl socket_vsock personality_bad fsopen open_tree quotactl \
    lookup_dcookie; do
  echo "$out" | grep -qx "$call 1" || breach "$call was not refused with EPERM"
done
echo "$out" | grep -qx "clone3 38" || breach "clone3 does not answer ENOSYS"
for call in getpid clone_plain personality_query socket_inet chroot; do
  echo "$out" | grep -qx "$call 0" || breach "$call should work"
done
"#,
        ..Default::default()
    });
}

// ---- network ----------------------------------------------------------------------------

#[test]
fn the_default_network_hides_the_host() {
    // A service on the host's loopback, which no sandbox may reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        r#"
ifaces="$(ls /sys/class/net | tr '\n' ' ')"
[ "$ifaces" = "lo tap0 " ] || breach "interfaces: $ifaces"
for h in 10.0.2.2 127.0.0.1; do
  echo x | timeout 5 nc $h {port} 2>/dev/null && breach "reached the host's loopback service through $h"
done
grep -q tap0 /proc/net/dev || breach "not the sandbox's own network"
"#
    );
    assert_confined(&Attack { script: &script, ..Default::default() });
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "no connection reached the host's loopback service");
}

/// The download cache's proxy (each RUN's apt is pointed at it) is a way out of the
/// sandbox's network too: it reaches no service on the host's loopback, by address or by
/// name, and answers malformed, oversized and unsupported requests with an error, serving
/// on afterwards. Every way of building (as root, rootless, with subordinate ids).
#[test]
fn the_download_proxy_reaches_no_loopback_service_and_refuses_bad_requests() {
    let a = arena();
    // A service on the host's loopback that answers whoever reaches it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = reached.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret",
            );
        }
    });
    let script = format!(
        r#"
[ -n "$APT_CONFIG" ] || breach "no APT_CONFIG in a RUN's environment"
grep -q 'Acquire::http::Proxy "http://127.0.0.1:3142/";' "$APT_CONFIG" || breach "apt's configuration: $(cat "$APT_CONFIG")"
for h in 127.0.0.1 127.1.2.3 localhost 0.0.0.0 '[::1]' '[::ffff:127.0.0.1]'; do
  out="$(http_proxy=http://127.0.0.1:3142 timeout 10 wget -q -O - "http://$h:{port}/" 2>&1)" \
    && breach "the proxy reached the host's loopback service through $h: $out"
done
ask() {{ timeout 10 nc 127.0.0.1 3142 | head -1; }}
answer="$(printf 'NOT HTTP\r\n\r\n' | ask)"
case "$answer" in "HTTP/1.1 400"*) ;; *) breach "a malformed request got: $answer" ;; esac
answer="$({{ printf 'GET http://x.invalid/ HTTP/1.1\r\nX: '; head -c 70000 /dev/zero | tr '\0' a; }} | ask)"
case "$answer" in "HTTP/1.1 431"*) ;; *) breach "an endless head got: $answer" ;; esac
answer="$(printf 'POST http://x.invalid/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello' | ask)"
case "$answer" in "HTTP/1.1 501"*) ;; *) breach "a request with a body got: $answer" ;; esac
answer="$(printf 'GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n' | ask)"
case "$answer" in "HTTP/1.1 400"*) ;; *) breach "a relative target got: $answer" ;; esac
answer="$(printf 'GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n' | ask)"
case "$answer" in "HTTP/1.1 403"*) ;; *) breach "the host's loopback got: $answer" ;; esac
echo "the proxy answered every request"
"#
    );
    for way in [Way::BuildAsRoot, Way::BuildRootless, Way::BuildSubids] {
        let attack = Attack { script: &script, apt: true, ..Default::default() };
        let (out, ctx) = run_way(a, &attack, way);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success()
                && text.contains("the proxy answered every request")
                && !text.contains("BREACH"),
            "{way:?}: exit {:?}:\n{text}",
            out.status.code()
        );
        drop(ctx);
    }
    let reached = reached.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reached, 0, "connections that reached the host's loopback service");
}

// ---- descriptors and the init -----------------------------------------------------------

#[test]
fn inherited_descriptors_do_not_reach_the_command() {
    require_root();
    let secret = tempfile::tempdir().unwrap();
    fs::set_permissions(secret.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(secret.path().join("file"), "host secret").unwrap();
    fs::set_permissions(secret.path().join("file"), fs::Permissions::from_mode(0o644)).unwrap();
    let wrapper =
        format!("exec 7<{}; exec 8<{}/file", secret.path().display(), secret.path().display());
    assert_confined(&Attack {
        script: r#"
for fd in 7 8; do
  [ -e /proc/self/fd/$fd ] && breach "descriptor $fd reached the command: $(ls -l /proc/self/fd/$fd)"
done
cat /proc/self/fd/7/file 2>/dev/null && breach "read a host file through descriptor 7"
n="$(ls /proc/self/fd | wc -l)"
[ "$n" -le 4 ] || breach "descriptors open: $(ls /proc/self/fd | tr '\n' ' ')"
"#,
        wrapper: Some(&wrapper),
        ..Default::default()
    });
}

#[test]
fn the_init_cannot_be_read_or_traced() {
    assert_confined(&Attack {
        script: r#"
cat /proc/1/environ >/dev/null 2>&1 && breach "read the init's environment"
for fd in 0 1 2 3 4 5 6; do
  readlink /proc/1/fd/$fd >/dev/null 2>&1 && breach "followed the init's descriptor $fd"
done
cat /proc/1/mem >/dev/null 2>&1 && breach "read the init's memory"
"#,
        ..Default::default()
    });
}

// ---- the store --------------------------------------------------------------------------

/// Every folder of a store, and the store's own files, give nothing to group or others.
fn assert_private(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", dir.display());
        seen += 1;
        // What snapshots and cache mounts hold are the images' and RUNs' own files, with
        // their own modes (a cache mount is 0755 inside the RUN): the folder above closes
        // them off.
        if ["snapshots", "cache-mounts"].iter().any(|c| dir == root.join(c)) {
            continue;
        }
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let m = meta.permissions().mode() & 0o777;
                assert_eq!(m & 0o077, 0, "{} is {m:o}", path.display());
            }
        }
    }
    assert!(seen > 5, "the store has its folders");
}

#[test]
fn the_store_is_private_and_its_setuid_files_out_of_reach() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let r = root.path().join("store");
    ok(&r, &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()]);
    // An image whose layer holds a setuid-root shell, and a build that logs its output.
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN cp /bin/busybox /suid-sh && chmod 4755 /suid-sh && echo logged-output\nRUN --mount=type=cache,target=/c touch /c/x\n",
    )
    .unwrap();
    ok(&r, &["build", "-t", "suid", ctx.path().to_str().unwrap()]);
    assert_private(&r);
    let suid: Vec<PathBuf> =
        walk(&r.join("snapshots")).into_iter().filter(|p| p.ends_with("suid-sh")).collect();
    assert!(!suid.is_empty(), "the layer's snapshot holds the setuid file");
    let user = AsUser::new("rbuild-confined");
    // A rootless store is as private (its own user namespace maps its owner to root).
    let o = user.rbuild(&["load", "-q", "-i", user.archive.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let user_ctx = tempfile::tempdir_in(user.work.path()).unwrap();
    fs::set_permissions(user_ctx.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(ctx.path().join("Dockerfile"), user_ctx.path().join("Dockerfile")).unwrap();
    fs::set_permissions(user_ctx.path().join("Dockerfile"), fs::Permissions::from_mode(0o644))
        .unwrap();
    let o = user.rbuild(&["build", "-t", "suid", user_ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_private(&user.store);
    // Regression: a rootless RUN's directory (with the overlay's mode-0 work/work, and
    // any secret file) used to stay behind.
    let left: Vec<_> = fs::read_dir(user.store.join("containers")).unwrap().flatten().collect();
    assert!(left.is_empty(), "sandbox directories left behind: {left:?}");
    for file in &suid {
        let o = Command::new(file).args(["sh", "-c", "id -u"]).uid_gid(user.uid, user.gid).output();
        let gained = o.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        assert!(!gained, "another user ran {} and became root", file.display());
        assert!(o.is_err(), "another user could even start {}", file.display());
    }
}

trait UidGid {
    fn uid_gid(&mut self, uid: u32, gid: u32) -> &mut Self;
}

impl UidGid for Command {
    fn uid_gid(&mut self, uid: u32, gid: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(uid).gid(gid)
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

// ---- inputs read whole ------------------------------------------------------------------

#[test]
fn endless_or_huge_inputs_fail_at_once() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let ctx = tempfile::tempdir().unwrap();
    let says = |args: &[&str], what: &str| {
        let o = crate::util::rbuild_in(r, args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "rbuild {args:?}: {err}");
        assert!(err.contains(what), "rbuild {args:?} should say {what:?}: {err}");
    };
    let dir = ctx.path().to_str().unwrap();
    says(&["build", "-f", "/dev/zero", dir], "/dev/zero is larger than 8 MiB");
    says(&["parse", "/dev/urandom"], "/dev/urandom is larger than 8 MiB");
    // A .dockerignore of 5 MiB, in a context whose Dockerfile is fine.
    fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    fs::write(ctx.path().join(".dockerignore"), "x\n".repeat(5 << 19)).unwrap();
    says(&["build", dir], ".dockerignore is larger than 4 MiB");
    // Just under the cap is read.
    let big = format!("FROM scratch\n{}", "# comment line\n".repeat((7 << 20) / 15));
    fs::write(ctx.path().join("Dockerfile.big"), big).unwrap();
    let o =
        crate::util::rbuild_in(r, &["parse", ctx.path().join("Dockerfile.big").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

// ---- what must keep working -------------------------------------------------------------

/// A Debian base (debootstrap) and `apt-get install` on the default network, under the
/// filter: `testdata/confinement/apt.sh`.
#[test]
fn apt_get_install_works_on_the_default_network() {
    require_root();
    require_tool("debootstrap", "debootstrap");
    let o = Command::new("bash")
        .arg(crate::util::repo().join("testdata/confinement/apt.sh"))
        .arg(assert_cmd::cargo::cargo_bin("rbuild"))
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "testdata/confinement/apt.sh failed:\n{text}");
    assert!(text.contains("== the image has curl "), "{text}");
}

/// Where cgroups are used (resource limits), cgroup v1's device controller allows only
/// Docker's default devices.
#[test]
fn the_device_cgroup_allows_only_dockers_devices() {
    use std::io::BufRead;
    let a = arena();
    assert!(
        Path::new("/sys/fs/cgroup/devices").is_dir(),
        "this test needs cgroup v1's device controller (as on this project's machines)"
    );
    let mut child = crate::util::rbuild()
        .arg("--root")
        .arg(a.root_store.path())
        .args(["run", "--memory", "256m", "busybox", "sh", "-c", "cat /proc/self/cgroup; sleep 5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut path = None;
    for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
        if let Some(p) = line.split_once(":devices:").map(|(_, p)| p.to_string()) {
            path = Some(p);
            break;
        }
    }
    let path = path.expect("the sandbox's /proc/self/cgroup names its devices cgroup");
    let list = fs::read_to_string(format!("/sys/fs/cgroup/devices{path}/devices.list"))
        .unwrap_or_else(|e| panic!("devices.list of {path}: {e}"));
    // rbuild killed outright leaves its cgroups; the next rbuild on the store removes them.
    let _ = child.kill();
    let _ = child.wait();
    let next = crate::util::rbuild().arg("--root").arg(a.root_store.path()).arg("images").output();
    assert!(next.unwrap().status.success());
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/devices{path}")).exists(),
        "the killed run's cgroup {path} is gone after the next rbuild"
    );
    let rules: Vec<&str> = list.lines().collect();
    assert!(!rules.contains(&"a *:* rwm"), "every device is allowed: {list}");
    for rule in ["c 1:3 rwm", "c 1:9 rwm", "c 136:* rwm", "c *:* m"] {
        assert!(rules.contains(&rule), "{rule} missing: {list}");
    }
    assert!(!list.contains("c 1:11"), "/dev/kmsg is not allowed: {list}");
    assert!(
        !rules.iter().any(|r| r.starts_with("b ") && r.ends_with("rwm")),
        "no block device: {list}"
    );
}

/// Without slirp4netns the default network is refused, saying what to install or choose;
/// the other networks work.
#[test]
fn without_slirp4netns_the_default_network_says_what_to_do() {
    let a = arena();
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    let run = |network: Option<&str>| {
        let mut c = Command::new(&bin);
        c.arg("--root").arg(a.root_store.path()).arg("run").env("PATH", "/nonexistent");
        if let Some(n) = network {
            c.args(["--network", n]);
        }
        c.args(["busybox", "/bin/true"]).output().unwrap()
    };
    let o = run(None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("slirp4netns") && err.contains("--network none"), "{err}");
    assert!(run(Some("none")).status.success());
}
