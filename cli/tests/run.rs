//! `rbuild run` and the sandbox, as root (CI runs as root; elsewhere these tests fail
//! with the reason): isolation, identity, capabilities, volumes, exit codes, reaping, and
//! what killing rbuild leaves behind.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{busybox_images, ok, require_root};

/// A store with the busybox image loaded.
fn store_with_busybox() -> tempfile::TempDir {
    require_root();
    let root = tempfile::tempdir().unwrap();
    ok(
        root.path(),
        &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()],
    );
    root
}

fn run(root: &Path, args: &[&str]) -> Output {
    crate::util::rbuild().arg("--root").arg(root).arg("run").args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn isolation() {
    let root = store_with_busybox();
    let r = root.path();
    let secret = format!("/tmp/rbuild-host-secret-{}", std::process::id());
    fs::write(&secret, b"host only").unwrap();
    let o = run(r, &["busybox", "cat", &secret]);
    assert_ne!(o.status.code(), Some(0), "a host file outside the rootfs is not visible");

    let o = run(r, &["busybox", "ps", "-o", "pid,comm"]);
    let ps = stdout(&o);
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert!(rows.len() <= 2, "only the sandbox's processes: {ps}");
    assert!(rows[0].trim_start().starts_with("1 rbuild"), "PID 1 is rbuild's init: {ps}");

    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = run(r, &["--hostname", "sandboxed", "busybox", "hostname"]);
    assert_eq!(stdout(&o).trim(), "sandboxed");
    assert_ne!(host.trim(), "sandboxed");

    let o = run(r, &["--network", "none", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(
        stdout(&o).split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "only the loopback interface"
    );

    assert_eq!(
        stdout(&run(r, &["-u", "nobody", "busybox", "id"])).trim(),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    );
    assert_eq!(stdout(&run(r, &["-u", "1000:1000", "busybox", "id", "-u"])).trim(), "1000");

    let marker = format!("/tmp/rbuild-written-inside-{}", std::process::id());
    let o = run(r, &["busybox", "sh", "-c", &format!("echo x > {marker} && cat {marker}")]);
    assert_eq!(stdout(&o).trim(), "x");
    assert!(!Path::new(&marker).exists(), "writes outside volumes never reach the host");

    let vol = tempfile::tempdir().unwrap();
    fs::write(vol.path().join("in"), b"from the host").unwrap();
    let spec = format!("{}:/data:ro", vol.path().display());
    let o = run(r, &["-v", &spec, "busybox", "sh", "-c", "cat /data/in; echo no > /data/out"]);
    assert_eq!(stdout(&o).trim(), "from the host");
    assert_ne!(o.status.code(), Some(0), "a read-only volume cannot be written");
    assert!(!vol.path().join("out").exists());
    let spec = format!("{}:/data", vol.path().display());
    assert!(run(r, &["-v", &spec, "busybox", "sh", "-c", "echo yes > /data/out"]).status.success());
    assert_eq!(
        fs::read_to_string(vol.path().join("out")).unwrap(),
        "yes\n",
        "a writable volume is written"
    );

    let o = run(r, &["busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(
        stdout(&o).split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "Docker's default capability set"
    );
    let o = run(r, &["-u", "nobody", "busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(
        stdout(&o).split_whitespace().nth(1),
        Some("0000000000000000"),
        "none for another user"
    );

    // Loading modules: the bounding set has no CAP_SYS_MODULE (bit 16), so the kernel
    // refuses (a kernel built without modules says "not supported" before it checks).
    let o = run(r, &["busybox", "grep", "CapBnd", "/proc/self/status"]);
    let bounding =
        u64::from_str_radix(stdout(&o).split_whitespace().nth(1).unwrap_or("ffff"), 16).unwrap();
    assert_eq!(bounding, 0xa80425fb, "the bounding set is Docker's default");
    assert_eq!(bounding & (1 << 16), 0);
    let o = run(r, &["busybox", "sh", "-c", "insmod /bin/busybox"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not permitted") || err.contains("does not support"),
        "loading a module must fail: {err}"
    );
    for (what, script) in
        [("mount", "mount -t tmpfs none /tmp"), ("setting the clock", "date -s 2000-01-01")]
    {
        let o = run(r, &["busybox", "sh", "-c", script]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("not permitted")
                || err.contains("Permission denied")
                || err.contains("permission denied"),
            "{what} must be denied: {err}"
        );
    }

    // A device node made (or shipped in a layer) on the root file system opens nothing
    // (here a copy of /dev/null's numbers), while /dev's own devices work.
    let o = run(r, &["busybox", "sh", "-c", "mknod /tmp/null c 1 3 && echo x > /tmp/null"]);
    assert_ne!(o.status.code(), Some(0), "a device node on the rootfs must not open");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(run(
        r,
        &["busybox", "sh", "-c", "echo ok > /dev/null && head -c 1 /dev/zero >/dev/null"]
    )
    .status
    .success());

    let o = run(r, &["busybox", "sh", "-c", "(sleep 0.2 &); sleep 0.8; ps -o stat | grep -c Z"]);
    assert_eq!(stdout(&o).trim(), "0", "orphaned children are reaped");

    assert_eq!(run(r, &["busybox", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(r, &["busybox", "no-such-command"]).status.code(), Some(127));
    let o = run(
        r,
        &["-e", "GREETING=hi", "-w", "/work/dir", "busybox", "sh", "-c", "echo $GREETING $(pwd)"],
    );
    assert_eq!(stdout(&o).trim(), "hi /work/dir");
    let _ = fs::remove_file(&secret);
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("rbuild") {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Starts a sandbox running `sleep NEEDLE` with `spawn` (once per signal), kills rbuild
/// with SIGKILL, SIGTERM and SIGINT in turn, and checks that no sandbox process survives.
fn kill_each_signal(prefix: &str, spawn: impl Fn(&str) -> std::process::Child) {
    for (i, signal) in ["KILL", "TERM", "INT"].iter().enumerate() {
        let needle = format!("{prefix}{i}");
        let mut child = spawn(&needle);
        let deadline = Instant::now() + Duration::from_secs(10);
        while processes_with(&needle).is_empty() {
            assert!(Instant::now() < deadline, "the sandbox did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_with(&needle).is_empty() {
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: sandbox processes survive: {:?}",
                processes_with(&needle)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[test]
fn killing_rbuild_leaves_nothing_behind() {
    let root = store_with_busybox();
    let before = mountinfo();
    kill_each_signal("31.4", |needle| {
        crate::util::rbuild()
            .arg("--root")
            .arg(root.path())
            .args(["run", "busybox", "sleep", needle])
            .spawn()
            .unwrap()
    });
    // Containers stay, as Docker keeps them: each killed one is listed as exited (the
    // one whose rbuild was killed outright with 137), and goes with `rm`.
    assert!(run(root.path(), &["busybox", "true"]).status.success());
    let listed = crate::util::ok(root.path(), &["ps", "-a", "--format", "{{.State}} {{.Status}}"]);
    let states: Vec<&str> = listed.lines().collect();
    assert_eq!(states.len(), 4, "{listed}");
    assert!(states.iter().all(|s| s.starts_with("exited ")), "{listed}");
    assert!(states.iter().any(|s| s.contains("Exited (137)")), "{listed}");
    let ids = crate::util::ok(root.path(), &["ps", "-aq"]);
    let ids: Vec<&str> = ids.lines().collect();
    let mut args = vec!["rm"];
    args.extend(ids);
    crate::util::ok(root.path(), &args);
    assert_eq!(
        fs::read_dir(root.path().join("containers")).unwrap().count(),
        0,
        "no container folder left"
    );
    assert_eq!(mountinfo(), before, "no mount behind");
}

#[test]
fn two_hundred_runs_leave_mountinfo_as_it_was() {
    let root = store_with_busybox();
    let before = mountinfo();
    for i in 0..200 {
        let o = run(root.path(), &["busybox", "true"]);
        assert!(o.status.success(), "run {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(mountinfo(), before);
}

#[test]
fn signals_reach_the_command() {
    let root = store_with_busybox();
    let child = crate::util::rbuild()
        .arg("--root")
        .arg(root.path())
        .args([
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 3' TERM; echo ready; sleep 30 & wait",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The sleep itself, started after the trap: the shell's own command line holds
    // "sleep 30" too, from before it set the trap (a TERM sent then ended the shell, a
    // failure seen on a loaded machine).
    while !processes_with("sleep 30").iter().any(|p| p.ends_with(": sleep 30 ")) {
        assert!(Instant::now() < deadline, "the sandbox did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "the command's own exit code after its trap");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot TERM\n");
}

#[test]
fn resource_limits_through_cgroups() {
    let root = store_with_busybox();
    let r = root.path();
    // Each limited run names its cgroup on stderr, to check afterwards that it went.
    let mut made = Vec::new();
    let mut run = |r: &Path, args: &[&str]| -> Output {
        let mut args = args.to_vec();
        let script;
        if let [.., "-c", last] = args.as_mut_slice() {
            script = format!(
                "grep -o 'rbuild-[0-9a-f]*' /proc/self/cgroup | head -n1 | sed 's/^/cgroup=/' >&2; {last}"
            );
            *last = &script;
        }
        let o = run(r, &args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        made.extend(err.lines().filter_map(|l| l.strip_prefix("cgroup=")).map(String::from));
        o
    };
    let o = run(
        r,
        &[
            "--pids-limit",
            "5",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("can't fork"),
        "the pids limit holds: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        r,
        &[
            "--memory",
            "16m",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=64M count=1; echo rc=$?",
        ],
    );
    assert_eq!(stdout(&o).trim(), "rc=137", "a 64 MiB buffer is killed under a 16 MiB limit");
    let o = run(
        r,
        &[
            "--memory",
            "64m",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo rc=$?",
        ],
    );
    assert_eq!(stdout(&o).trim(), "rc=0", "and an 8 MiB one fits under 64 MiB");
    assert!(run(r, &["--cpus", "0.5", "busybox", "true"]).status.success());
    let bad = run(r, &["--memory", "lots", "busybox", "true"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    // Every cgroup made for a run is gone afterwards (other tests' runs may be going on, so
    // only these runs' cgroups are looked for).
    assert_eq!(made.len(), 3, "each shell run named its cgroup");
    for id in made {
        let leftovers = Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", &id])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&leftovers.stdout), "", "no cgroup left behind");
    }
}

/// The same checks as a normal user, through a user namespace (the harness, as root,
/// creates the user), for what a user namespace allows: only root is mapped inside, and
/// cgroup limits are not available.
#[test]
fn rootless_through_a_user_namespace() {
    require_root();
    let user = "rbuild-rootless";
    // Everything the user touches lives in a world-readable place it owns.
    let u = crate::util::AsUser::new(user);
    let (work, archive, vol) = (&u.work, &u.archive, u.work.path().join("vol"));
    fs::create_dir(&vol).unwrap();
    std::os::unix::fs::chown(&vol, Some(u.uid), Some(u.gid)).unwrap();
    let as_user = |args: &[&str]| -> Output { u.rbuild(args) };
    let loaded = as_user(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));

    let secret = work.path().join("host-secret");
    fs::write(&secret, b"x").unwrap();
    assert_ne!(
        as_user(&["run", "busybox", "cat", secret.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let ps = stdout(&as_user(&["run", "busybox", "ps", "-o", "pid,comm"]));
    assert!(ps.lines().nth(1).unwrap_or("").trim_start().starts_with("1 rbuild"), "{ps}");
    assert_eq!(
        stdout(&as_user(&["run", "--hostname", "rootless", "busybox", "hostname"])).trim(),
        "rootless"
    );
    assert_eq!(
        stdout(&as_user(&["run", "--network", "none", "busybox", "ls", "/sys/class/net"])).trim(),
        "lo"
    );
    assert_eq!(
        stdout(&as_user(&["run", "busybox", "id", "-u"])).trim(),
        "0",
        "the caller is root inside"
    );
    let o = as_user(&["run", "busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(stdout(&o).split_whitespace().nth(1), Some("00000000a80425fb"));
    let marker = format!("/tmp/rbuild-rootless-{}", std::process::id());
    assert!(as_user(&["run", "busybox", "sh", "-c", &format!("echo x > {marker}")])
        .status
        .success());
    assert!(!Path::new(&marker).exists(), "writes stay inside");
    let spec = format!("{}:/data:ro", vol.display());
    assert_ne!(
        as_user(&["run", "-v", &spec, "busybox", "sh", "-c", "echo x > /data/f"]).status.code(),
        Some(0)
    );
    assert!(!vol.join("f").exists(), "a read-only volume cannot be written");
    let o = as_user(&["run", "busybox", "sh", "-c", "mount -t tmpfs none /tmp"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = as_user(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.2 &); sleep 0.8; ps -o stat | grep -c Z",
    ]);
    assert_eq!(stdout(&o).trim(), "0", "orphans are reaped");
    assert_eq!(as_user(&["run", "busybox", "sh", "-c", "exit 9"]).status.code(), Some(9));
    // What a user namespace does not allow, said clearly.
    let o = as_user(&["run", "-u", "nobody", "busybox", "id"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only root is mapped"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = as_user(&["run", "--memory", "64m", "busybox", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resource limits need root"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Killing the user's rbuild (any signal) leaves nothing behind, and 200 runs leave
    // mountinfo as it was.
    let before = mountinfo();
    kill_each_signal("33.3", |needle| {
        u.command(&["run", "busybox", "sleep", needle]).spawn().unwrap()
    });
    for i in 0..200 {
        let o = as_user(&["run", "busybox", "true"]);
        assert!(o.status.success(), "rootless run {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(mountinfo(), before);
}

/// `-t` gives the command a terminal (here fed from a pipe, relayed by rbuild).
#[test]
fn tty_gives_the_command_a_terminal() {
    use std::io::Write;
    let root = store_with_busybox();
    let with_tty = |tty: bool| -> Output {
        let mut args =
            vec!["--root".to_string(), root.path().display().to_string(), "run".to_string()];
        if tty {
            args.push("-t".into());
        }
        args.extend(["busybox".into(), "sh".into()]);
        let mut child = crate::util::rbuild()
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"test -t 0 && echo is-a-tty; exit 3\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let o = with_tty(true);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("is-a-tty"), "{}", stdout(&o));
    let o = with_tty(false);
    assert_eq!(o.status.code(), Some(3));
    assert!(!stdout(&o).contains("is-a-tty"), "no terminal without -t");
}

/// Images whose layers repeat (2, 100, 500 identical empty layers, and the same file
/// layer three times) run; an image of 500 distinct layers runs (more than one page of
/// overlay options holds), and one of 1,000 is refused up front with the reason.
#[test]
fn repeated_and_deep_layer_stacks() {
    let root = store_with_busybox();
    let r = root.path();
    let work = tempfile::tempdir().unwrap();
    let base = busybox_images().join("busybox-docker.tar");
    let make = |n: usize, name: &str, kind: Option<&str>| {
        let out = work.path().join(format!("{name}.tar"));
        let mut c = Command::new("python3");
        c.arg(crate::util::repo().join("testdata/images/repeat-layers.py"))
            .arg(&base)
            .arg(n.to_string())
            .arg(&out)
            .arg(name);
        if let Some(k) = kind {
            c.arg(k);
        }
        assert!(c.status().unwrap().success(), "repeat-layers.py {n} {name}");
        ok(r, &["load", "-q", "-i", out.to_str().unwrap()]);
    };
    for n in [2, 100, 500] {
        make(n, &format!("empty{n}"), None);
        let o = run(r, &[&format!("empty{n}"), "sh", "-c", "echo runs"]);
        assert_eq!(
            stdout(&o).trim(),
            "runs",
            "{n} empty layers: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    make(3, "file3", Some("--file"));
    assert_eq!(stdout(&run(r, &["file3", "cat", "/repeated"])).trim(), "x");
    // The busybox layer and 499 more: 500 lower directories, overlayfs's most.
    make(499, "distinct500", Some("--distinct"));
    let o = run(r, &["distinct500", "sh", "-c", "ls /layers | wc -l"]);
    assert_eq!(stdout(&o).trim(), "499", "{}", String::from_utf8_lossy(&o.stderr));
    make(999, "distinct1000", Some("--distinct"));
    let o = run(r, &["distinct1000", "true"]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1000 distinct layers") && err.contains("at most 500"), "{err}");
}
