//! Containers as Docker's tutorials use them: `run -d -p` served to the host, `ps`,
//! `logs`, `stop`, `start`, `rm`, `port`, restart policies. Root: each runs a sandbox.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{busybox_images, ok, rbuild_in, require_root, require_tool};

/// A store holding busybox, and an image `web` that serves `/www` with busybox's httpd
/// on port 80 (EXPOSEd) and says which page it serves.
fn store_with_web() -> tempfile::TempDir {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    ok(r, &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()]);
    let ctx = r.join("web-context");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir /www && echo 'hello from httpd' > /www/index.html\n\
         EXPOSE 80\n\
         CMD [\"httpd\", \"-f\", \"-v\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    ok(r, &["build", "-q", "-t", "web", ctx.to_str().unwrap()]);
    root
}

/// What `curl` gets from the host's `port` (tried for 10 s while the server starts).
fn curl(port: u16) -> String {
    require_tool("curl", "curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/")])
            .output()
            .unwrap();
        if out.status.success() && !out.stdout.is_empty() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() >= deadline {
            return format!("curl failed: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (10 s at most, else fails saying `what`) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port of the host nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn stopped(r: &Path, name: &str) -> bool {
    let states = ok(r, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    states.lines().any(|l| l == format!("{name} exited"))
}

#[test]
fn a_detached_server_answers_on_its_published_port() {
    let root = store_with_web();
    let r = root.path();
    let id = ok(r, &["run", "-d", "--name", "web1", "-p", "18080:80", "web"]);
    assert_eq!(id.trim().len(), 64, "run -d prints the ID: {id}");
    assert_eq!(curl(18080), "hello from httpd\n");
    // ps shows it running, with its port and name.
    let ps = ok(r, &["ps"]);
    let line = ps.lines().nth(1).unwrap_or_default();
    assert!(line.starts_with(&id.trim()[..12]), "{ps}");
    assert!(
        line.contains("Up ") && line.contains("0.0.0.0:18080->80/tcp") && line.ends_with("web1"),
        "{ps}"
    );
    assert_eq!(ok(r, &["ps", "-q"]).trim(), &id.trim()[..12]);
    assert_eq!(ok(r, &["port", "web1"]).trim(), "80/tcp -> 0.0.0.0:18080");
    // A second container of the image on another port, and one with -P.
    let second = free_port();
    ok(r, &["run", "-d", "--name", "web2", "-p", &format!("{second}:80"), "web"]);
    assert_eq!(curl(second), "hello from httpd\n");
    ok(r, &["run", "-d", "--name", "web3", "-P", "web"]);
    let published = ok(r, &["port", "web3"]);
    let host_port: u16 = published
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("-P published the EXPOSEd port: {published:?}"));
    assert!(published.starts_with("80/tcp -> 0.0.0.0:"), "{published}");
    assert_eq!(curl(host_port), "hello from httpd\n");
    // httpd -v logs each request on its standard error.
    let logs = rbuild_in(r, &["logs", "web1"]);
    assert!(String::from_utf8_lossy(&logs.stderr).contains("response:200"), "{logs:?}");
    // A name is unique.
    let again = rbuild_in(r, &["run", "-d", "--name", "web1", "web"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in use"), "{again:?}");
    // rm refuses a running container, rm -f removes it; its port is free again.
    assert!(!rbuild_in(r, &["rm", "web2"]).status.success());
    ok(r, &["rm", "-f", "web1", "web2", "web3"]);
    assert_eq!(ok(r, &["ps", "-aq"]), "");
    assert!(std::net::TcpListener::bind(("0.0.0.0", 18080)).is_ok(), "18080 is free again");
    assert!(std::net::TcpListener::bind(("0.0.0.0", second)).is_ok());
}

#[test]
fn logs_follow_new_lines_and_start_keeps_the_files() {
    let root = store_with_web();
    let r = root.path();
    busybox_sh(r, &["-d", "--name", "ticker"], "echo run >> /runs; wc -l < /runs; i=0; while [ $i -lt 4 ]; do echo tick $i; i=$((i+1)); sleep 0.3; done");
    // -f prints what comes while it runs and ends when the container does.
    let started = Instant::now();
    let followed = ok(r, &["logs", "-f", "ticker"]);
    assert_eq!(followed, "1\ntick 0\ntick 1\ntick 2\ntick 3\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ok(r, &["logs", "--tail", "2", "ticker"]), "tick 2\ntick 3\n");
    let stamped = ok(r, &["logs", "-t", "--tail", "1", "ticker"]);
    assert!(stamped.starts_with("20") && stamped.ends_with(" tick 3\n"), "{stamped}");
    assert!(ok(r, &["ps"]).lines().count() == 1, "no running container");
    let all = ok(r, &["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(all.starts_with("ticker|Exited (0) "), "{all}");
    // start runs the same container again: the file it wrote is still there.
    ok(r, &["start", "ticker"]);
    assert_eq!(ok(r, &["wait", "ticker"]).trim(), "0");
    let logs = ok(r, &["logs", "ticker"]);
    assert!(logs.contains("\n2\n"), "the second run counted two runs: {logs}");
    // start -a prints this run's output and exits with its code.
    let attached = rbuild_in(r, &["start", "-a", "ticker"]);
    assert_eq!(String::from_utf8_lossy(&attached.stdout), "3\ntick 0\ntick 1\ntick 2\ntick 3\n");
    assert_eq!(attached.status.code(), Some(0));
}

#[test]
fn stop_kills_a_command_that_ignores_the_stop_signal_after_the_timeout() {
    let root = store_with_web();
    let r = root.path();
    busybox_sh(
        r,
        &["-d", "--name", "stubborn"],
        "trap '' TERM; echo ready; while true; do sleep 1; done",
    );
    wait_until("the container did not start", || ok(r, &["logs", "stubborn"]) == "ready\n");
    let started = Instant::now();
    ok(r, &["stop", "-t", "2", "stubborn"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "the timeout was waited for: {took:?}");
    assert!(took < Duration::from_secs(3), "stopped within the timeout and a second: {took:?}");
    let status = ok(r, &["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (137)"), "{status}");
    // A command that ends on SIGTERM ends at once, with 143.
    ok(r, &["run", "-d", "--name", "polite", "busybox", "sleep", "60"]);
    let started = Instant::now();
    ok(r, &["stop", "polite"]);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ok(r, &["wait", "polite"]).trim(), "143");
    assert!(stopped(r, "polite"));
    // restart starts a stopped container again; kill sends the signal asked for, SIGKILL
    // by default.
    ok(r, &["restart", "-t", "1", "polite"]);
    assert!(ok(r, &["ps", "--format", "{{.Names}} {{.State}}"]).contains("polite running"));
    busybox_sh(
        r,
        &["-d", "--name", "hup"],
        "trap 'echo got HUP' HUP; echo ready; while true; do sleep 0.1; done",
    );
    wait_until("the container did not start", || ok(r, &["logs", "hup"]) == "ready\n");
    ok(r, &["kill", "-s", "HUP", "hup"]);
    wait_until("HUP did not reach the command", || ok(r, &["logs", "hup"]).contains("got HUP"));
    ok(r, &["kill", "hup", "polite"]);
    assert_eq!(ok(r, &["wait", "hup"]).trim(), "137");
    assert!(stopped(r, "polite"));
    // A detached container with a terminal: its output is logged as a terminal gives it.
    ok(r, &["run", "-d", "-t", "--name", "tty", "busybox", "echo", "on a terminal"]);
    assert_eq!(ok(r, &["wait", "tty"]).trim(), "0");
    assert_eq!(ok(r, &["logs", "tty"]), "on a terminal\r\n");
}

#[test]
fn restart_on_failure_restarts_as_often_as_asked() {
    let root = store_with_web();
    let r = root.path();
    busybox_sh(r, &["-d", "--name", "flaky", "--restart", "on-failure:2"], "echo attempt; exit 3");
    assert_eq!(ok(r, &["wait", "flaky"]).trim(), "3");
    assert_eq!(
        ok(r, &["logs", "flaky"]),
        "attempt\nattempt\nattempt\n",
        "the first run and two restarts"
    );
    // A container stopped on purpose is not restarted.
    ok(r, &["run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "60"]);
    ok(r, &["stop", "always"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(stopped(r, "always"), "{}", ok(r, &["ps", "-a"]));
}

#[test]
fn bad_container_arguments_are_refused_clearly() {
    let root = store_with_web();
    let r = root.path();
    for (args, says) in [
        (vec!["logs", "nothing-here"], "no such container"),
        (vec!["stop", "nothing-here"], "no such container"),
        (vec!["run", "-d", "--name", "bad name", "web"], "invalid container name"),
        (vec!["run", "-d", "-p", "99999:80", "web"], "invalid port"),
        (vec!["run", "-d", "--network", "none", "-p", "8080:80", "web"], "default network"),
        (vec!["run", "-d", "--restart", "sometimes", "web"], "invalid restart policy"),
        (vec!["kill", "-s", "SIGNOPE", "x"], "invalid signal"),
    ] {
        let out = rbuild_in(r, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(ok(r, &["ps", "-aq"]), "", "nothing was left made");
}

#[test]
fn exec_joins_the_running_container() {
    let root = store_with_web();
    let r = root.path();
    busybox_sh(r, &["-d", "--name", "box"], "echo data > /made-here; exec sleep 60");
    wait_until("the container did not write its file", || {
        rbuild_in(r, &["exec", "box", "test", "-e", "/made-here"]).status.success()
    });
    // The container's processes (its init, its command, and this one) and files.
    let ps = ok(r, &["exec", "box", "ps", "-o", "pid,comm"]);
    let comms: Vec<&str> = ps.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(comms, ["rbuild", "sleep", "ps"], "{ps}");
    assert_eq!(ok(r, &["exec", "box", "cat", "/made-here"]), "data\n");
    // Its user, directory and environment as asked; confined as the command is.
    let out = ok(
        r,
        &["exec", "-u", "nobody", "-w", "/tmp", "-e", "GREETING=hi", "box", "sh", "-c",
          "id -u; pwd; echo $GREETING; hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["65534", "/tmp", "hi"], "{out}");
    let id = ok(r, &["ps", "-q"]);
    assert_eq!(lines[3], id.trim(), "the container's host name");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"), "{out}");
    let as_root = ok(r, &["exec", "box", "grep", "CapEff", "/proc/self/status"]);
    assert!(as_root.contains("00000000a80425fb"), "Docker's capabilities: {as_root}");
    // top lists its processes; inspect shows it as Docker's inspect does.
    let top = ok(r, &["top", "box"]);
    assert!(top.starts_with("UID") && top.contains("sleep 60"), "{top}");
    let inspect: serde_json::Value = serde_json::from_str(&ok(r, &["inspect", "box"])).unwrap();
    assert_eq!(inspect[0]["Name"], "/box");
    assert_eq!(inspect[0]["State"]["Running"], true, "{inspect}");
    assert!(inspect[0]["State"]["Pid"].as_i64().unwrap_or(0) > 1, "{inspect}");
    // Its exit code; a missing program is 127; a stopped container is refused.
    assert_eq!(rbuild_in(r, &["exec", "box", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(rbuild_in(r, &["exec", "box", "no-such-program"]).status.code(), Some(127));
    ok(r, &["stop", "-t", "1", "box"]);
    let refused = rbuild_in(r, &["exec", "box", "true"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not running"), "{refused:?}");
    let inspect: serde_json::Value = serde_json::from_str(&ok(r, &["inspect", "box"])).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "exited", "{inspect}");
    assert_eq!(inspect[0]["State"]["ExitCode"], 143, "{inspect}");
    // attach prints what a running container writes from then on, and its exit code.
    busybox_sh(r, &["-d", "--name", "talker"], "sleep 0.5; echo later; exit 4");
    let attached = rbuild_in(r, &["attach", "talker"]);
    assert_eq!(String::from_utf8_lossy(&attached.stdout), "later\n");
    assert_eq!(attached.status.code(), Some(4));
}

#[test]
fn volumes_outlive_their_containers() {
    let root = store_with_web();
    let r = root.path();
    // A named volume, made on first use, survives rm and serves the next container.
    busybox_sh(r, &["--name", "writer", "-v", "keep:/kept"], "echo persisted > /kept/f");
    ok(r, &["rm", "writer"]);
    assert_eq!(
        ok(r, &["run", "--rm", "-v", "keep:/kept:ro", "busybox", "cat", "/kept/f"]),
        "persisted\n"
    );
    assert!(!rbuild_in(r, &["run", "--rm", "-v", "keep:/kept:ro", "busybox", "touch", "/kept/g"])
        .status
        .success());
    // An image's VOLUME gets an anonymous volume that starts with the image's files (and
    // their owner); rm -v removes it, rm alone keeps it.
    let ctx = r.join("vol-context");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir /data && echo seeded > /data/seed && chown 1:2 /data\nVOLUME /data\n",
    )
    .unwrap();
    ok(r, &["build", "-q", "-t", "vol", ctx.to_str().unwrap()]);
    let seen =
        ok(r, &["run", "--name", "v1", "vol", "sh", "-c", "stat -c '%u:%g' /data; cat /data/seed"]);
    assert_eq!(seen, "1:2\nseeded\n");
    assert_eq!(ok(r, &["volume", "ls", "-q"]).lines().count(), 2, "keep and v1's");
    ok(r, &["rm", "-v", "v1"]);
    assert_eq!(ok(r, &["volume", "ls", "-q"]), "keep\n");
    // A volume in use is not removed; an unused one is.
    ok(r, &["run", "--name", "user", "-v", "keep:/kept", "busybox", "true"]);
    let refused = rbuild_in(r, &["volume", "rm", "keep"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use by container(s) user"),
        "{refused:?}"
    );
    ok(r, &["rm", "user"]);
    let info = ok(r, &["volume", "inspect", "keep"]);
    assert!(
        info.contains("\"Driver\": \"local\"") && info.contains("volumes/keep/_data"),
        "{info}"
    );
    ok(r, &["volume", "rm", "keep"]);
    assert_eq!(ok(r, &["volume", "ls", "-q"]), "");
}

#[test]
fn commit_makes_an_image_of_the_container_changes() {
    let root = store_with_web();
    let r = root.path();
    busybox_sh(r, &["--name", "changer"], "echo changed > /new-file; rm /bin/vi; mkdir /made");
    let id = ok(
        r,
        &[
            "commit",
            "-m",
            "my change",
            "-a",
            "someone",
            "-c",
            "CMD [\"cat\", \"/new-file\"]",
            "-c",
            "ENV A=b",
            "changer",
            "committed:1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(ok(r, &["run", "--rm", "committed:1"]), "changed\n", "the new CMD sees the change");
    let seen = rbuild_in(
        r,
        &[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "echo $A; test -d /made && echo made; ls /bin/vi",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&seen.stdout), "b\nmade\n");
    assert!(!seen.status.success(), "the removed file stays removed");
    let history = ok(r, &["history", "--no-trunc", "committed:1"]);
    assert!(history.contains("my change"), "{history}");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(r, &["inspect", "committed:1"])).unwrap();
    assert_eq!(inspect[0]["Author"], "someone", "{inspect}");
    assert!(
        ok(r, &["images"]).lines().all(|l| !l.starts_with("rbuild-commit-")),
        "no temporary name left"
    );
    // The image a container was made from is not removed unless forced.
    let kept = rbuild_in(r, &["rmi", "busybox"]);
    assert!(String::from_utf8_lossy(&kept.stderr).contains("container changer"), "{kept:?}");
    // A build instruction is refused as a change.
    let refused = rbuild_in(r, &["commit", "-c", "RUN true", "changer", "x"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("commit -c takes"), "{refused:?}");
}

/// A pseudo-random number below `n` (a small LCG; the seed is printed, so a failing run
/// can be repeated).
fn next(state: &mut u64, n: u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*state >> 33) % n
}

fn sandbox_processes(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// SIGKILL of `run -d` and of a container's supervisor at random moments, ten times each:
/// afterwards no process, mount or port is left, and `ps -a` tells the truth (a container
/// whose supervisor was killed is listed exited, with 137).
#[test]
fn killing_the_cli_or_the_supervisor_at_random_leaves_nothing_behind() {
    let root = store_with_web();
    let r = root.path();
    // Mounts of this store only: tests beside this one mount and unmount their own.
    let store_mounts = || {
        let all = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let r = r.display().to_string();
        all.lines().filter(|l| l.contains(&r)).map(str::to_string).collect::<Vec<_>>()
    };
    let before = store_mounts();
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64;
    println!("seed {seed}");
    for trial in 0..20 {
        let port = free_port();
        let needle = format!("sleep 4242.{trial}");
        let mut cli = crate::util::rbuild()
            .arg("--root")
            .arg(r)
            .args(["run", "-d", "-p", &format!("{port}:80"), "busybox", "sh", "-c"])
            .arg(format!("httpd -p 80 -h /; {needle}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(next(&mut seed, 400)));
        if trial < 10 {
            let _ = cli.kill();
            let _ = cli.wait();
        } else {
            let _ = cli.wait();
            // The supervisor, from the record, killed a moment later.
            std::thread::sleep(Duration::from_millis(next(&mut seed, 200)));
            for dir in std::fs::read_dir(r.join("containers")).unwrap().flatten() {
                let text =
                    std::fs::read_to_string(dir.path().join("container.json")).unwrap_or_default();
                let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                // Only a live supervisor of this container (process numbers are reused).
                let id = record["id"].as_str().unwrap_or("-").to_string();
                let pid = record["state"]["supervisor"].as_i64().filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
                });
                if let Some(pid) = pid {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
            }
        }
        // Whatever survived is listed as running; what is not running is gone for good.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listed = ok(r, &["ps", "-a", "--format", "{{.State}} {{.Status}}"]);
            let running = listed.lines().any(|l| l.starts_with("running"));
            let alive = !sandbox_processes(&needle).is_empty();
            if running == alive || Instant::now() >= deadline {
                assert_eq!(
                    running,
                    alive,
                    "trial {trial}: ps -a says {listed:?}, processes: {:?}",
                    sandbox_processes(&needle)
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let listed = ok(r, &["ps", "-a", "--format", "{{.State}} {{.Status}}"]);
        if trial >= 10 {
            assert!(
                listed.lines().all(|l| l.starts_with("exited") || l.starts_with("created")),
                "trial {trial}: the supervisor was killed: {listed}"
            );
        }
        // Remove everything; then nothing of it remains.
        let ids = ok(r, &["ps", "-aq"]);
        if !ids.trim().is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.lines());
            ok(r, &args);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sandbox_processes(&needle).is_empty() {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: left running: {:?}",
                sandbox_processes(&needle)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
            "trial {trial}: port {port} still taken"
        );
        assert_eq!(std::fs::read_dir(r.join("containers")).unwrap().count(), 0, "trial {trial}");
    }
    assert_eq!(store_mounts(), before, "no mount left");
}

#[test]
fn cp_copies_both_ways_and_never_through_the_containers_links() {
    let root = store_with_web();
    let r = root.path();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    busybox_sh(
        r,
        &["-d", "--name", "box"],
        "mkdir -p /d/sub && echo inner > /d/sub/f && ln -s /etc /d/etc-link && ln -s / /escape && echo ready > /ready; exec sleep 60",
    );
    wait_until("the container did not start", || {
        rbuild_in(r, &["exec", "box", "test", "-e", "/ready"]).status.success()
    });
    // Out: a folder into an existing host folder, a file to a new name; links stay links.
    ok(r, &["cp", "box:/d", h.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(h.join("d/sub/f")).unwrap(), "inner\n");
    assert_eq!(std::fs::read_link(h.join("d/etc-link")).unwrap(), Path::new("/etc"));
    ok(r, &["cp", "box:/d/sub/f", h.join("copied").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(h.join("copied")).unwrap(), "inner\n");
    // A path through the container's link to / stays in the container: its /etc/group.
    ok(r, &["cp", "box:/escape/etc/group", h.join("group").to_str().unwrap()]);
    let theirs = ok(r, &["exec", "box", "cat", "/etc/group"]);
    assert_eq!(std::fs::read_to_string(h.join("group")).unwrap(), theirs);
    assert_ne!(theirs, std::fs::read_to_string("/etc/group").unwrap(), "not the host's");
    // In: a file into a folder (its mode kept, root's), a folder to a new name; through
    // the container's link, the write lands in the container, not on the host.
    let file = h.join("script.sh");
    std::fs::write(&file, "echo hi\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    ok(r, &["cp", file.to_str().unwrap(), "box:/d/"]);
    assert_eq!(ok(r, &["exec", "box", "stat", "-c", "%a %u %g", "/d/script.sh"]).trim(), "750 0 0");
    ok(r, &["cp", h.join("d").to_str().unwrap(), "box:/copy-of-d"]);
    assert_eq!(ok(r, &["exec", "box", "cat", "/copy-of-d/sub/f"]), "inner\n");
    let marker = format!("rbuild-cp-{}", std::process::id());
    std::fs::write(h.join(&marker), "x").unwrap();
    ok(r, &["cp", h.join(&marker).to_str().unwrap(), "box:/escape/tmp/"]);
    assert!(!Path::new("/tmp").join(&marker).exists(), "the container's link led onto the host");
    assert_eq!(ok(r, &["exec", "box", "cat", &format!("/tmp/{marker}")]), "x");
    // Refused: a missing path, two host paths, a missing folder inside.
    assert!(!rbuild_in(r, &["cp", "box:/nothing", h.to_str().unwrap()]).status.success());
    assert!(!rbuild_in(r, &["cp", "/a", "/b"]).status.success());
    // A stopped container: out of it, and into it (through its link to /, into a folder
    // of its image, over a file its command removed); the next start sees the files.
    ok(r, &["exec", "box", "rm", "/bin/vi"]);
    ok(r, &["stop", "-t", "1", "box"]);
    ok(r, &["cp", "box:/d/script.sh", h.join("back").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(h.join("back")).unwrap(), "echo hi\n");
    ok(r, &["cp", file.to_str().unwrap(), "box:/escape/etc/"]);
    ok(r, &["cp", file.to_str().unwrap(), "box:/bin/vi"]);
    assert!(!rbuild_in(r, &["cp", file.to_str().unwrap(), "box:/no/such/dir/x"]).status.success());
    assert!(
        !Path::new("/etc/script.sh").exists()
            || std::fs::read_to_string("/etc/script.sh").unwrap() != "echo hi\n"
    );
    ok(r, &["start", "box"]);
    assert_eq!(ok(r, &["exec", "box", "cat", "/etc/script.sh", "/bin/vi"]), "echo hi\necho hi\n");
    assert_eq!(ok(r, &["exec", "box", "cat", "/d/sub/f"]), "inner\n", "the image's files stay");
    assert!(
        ok(r, &["exec", "box", "ls", "/etc"]).contains("group"),
        "a folder is merged, not replaced"
    );
    ok(r, &["rm", "-f", "box"]);
}

/// `rbuild run FLAGS... busybox sh -c SCRIPT` to its end; its standard output.
fn busybox_sh(r: &Path, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend(["busybox", "sh", "-c", script]);
    ok(r, &args)
}
