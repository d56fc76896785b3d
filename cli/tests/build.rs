//! End-to-end builds: every case under `testdata/build/` (a Dockerfile, its context and a
//! `case.sh` of assertions) built with the real binary into a fresh store holding the
//! busybox base image, its files checked through `rbuild run` and its config through
//! `rbuild inspect`. Run as root: RUN steps run in the sandbox.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{busybox_images, repo};

fn build_dir() -> PathBuf {
    repo().join("testdata/build")
}

fn run_case(name: &str) {
    assert!(
        rbuild_builder::users::is_root(),
        "the build cases run RUN steps in the sandbox, which needs root (CI runs as root)"
    );
    let archive = busybox_images().join("busybox-oci.tar");
    let out = Command::new("bash")
        .arg(build_dir().join("run-case.sh"))
        .arg(name)
        .env("RBUILD", assert_cmd::cargo::cargo_bin("rbuild"))
        .env("BUSYBOX_OCI", &archive)
        .output()
        .unwrap_or_else(|e| panic!("running the case {name}: {e}"));
    assert!(
        out.status.success(),
        "build case {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(&stringify!($name).replace('_', "-"));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

cases!(
    add_archives,
    add_git,
    add_url,
    arg_env_precedence,
    arg_scoping,
    basic_run,
    cache_base_image,
    cache_build_arg,
    cache_copy_from,
    cache_copy_source,
    cache_env,
    cache_instruction,
    cache_no_cache,
    context_symlinks,
    copy_errors,
    copy_flags,
    copy_from_variable,
    copy_hostile,
    copy_owner_mode,
    copy_rules,
    copy_staged,
    copy_through_symlink,
    directives,
    dockerfile_ignore,
    dockerignore,
    entrypoint_cmd,
    env_expansion,
    export_push,
    healthcheck,
    history_logs,
    killed_build,
    layer_reuse,
    layers_in_flight,
    metadata,
    multistage,
    network_none,
    onbuild,
    outputs,
    parallel_stages,
    platform_args,
    platform_flag,
    proxy_args,
    pull_base,
    repeated_layers,
    reproducible,
    run_failure,
    run_forms,
    run_heredoc,
    run_mounts,
    run_secrets,
    scratch,
    shared_cache,
    stdin_inputs,
    target,
    workdir,
);

/// Every case directory has a test above, so none is skipped silently.
#[test]
fn every_case_is_listed() {
    let listed: Vec<String> = CASES.iter().map(|c| c.replace('_', "-")).collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(build_dir()).unwrap_or_else(|e| panic!("testdata/build: {e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("testdata/build: {e}"));
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join("case.sh").exists() && !listed.contains(&name) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "cases without a test in cli/tests/build.rs: {missing:?}");
    assert!(
        CASES.len() >= 40,
        "the build issue asks for at least 40 cases; {} listed",
        CASES.len()
    );
}

/// A build as a normal user, through a user namespace: RUN, COPY and WORKDIR work, and
/// the layers record the caller's files as root's (the user namespace maps the caller to
/// root), never the caller's own ids.
#[test]
fn rootless_build() {
    assert!(rbuild_builder::users::is_root(), "the harness makes a user, which needs root");
    let user = "rbuild-rootless-build";
    let u = crate::util::AsUser::new(user);
    let (store, archive, ctx) = (&u.store, &u.archive, u.work.path().join("ctx"));
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nWORKDIR /app\nCOPY file.txt .\nRUN echo ran > /app/ran.txt && id -u > /app/uid.txt\n").unwrap();
    std::fs::write(ctx.join("file.txt"), "copied\n").unwrap();
    for entry in std::iter::once(ctx.clone())
        .chain(std::fs::read_dir(&ctx).unwrap().map(|e| e.unwrap().path()))
    {
        std::os::unix::fs::chown(&entry, Some(u.uid), Some(u.gid)).unwrap();
    }
    let as_user = |args: &[&str]| {
        let out = u.rbuild(args);
        assert!(
            out.status.success(),
            "rbuild {args:?} as {user}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    as_user(&["load", "-q", "-i", archive.to_str().unwrap()]);
    as_user(&["build", "--progress", "plain", "-t", "rootless", ctx.to_str().unwrap()]);
    assert_eq!(
        as_user(&[
            "run",
            "--rm",
            "rootless",
            "cat",
            "/app/file.txt",
            "/app/ran.txt",
            "/app/uid.txt"
        ]),
        "copied\nran\n0\n"
    );
    // Every entry of the three layers the build made belongs to root.
    let inspect: serde_json::Value =
        serde_json::from_str(&as_user(&["inspect", "rootless"])).unwrap();
    let manifest_digest = inspect[0]["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = |hex: &str| store.join("blobs/sha256").join(hex);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "the base layer and one each for WORKDIR, COPY and RUN");
    for layer in &layers[1..] {
        let hex = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let mut archive = tar::Archive::new(std::fs::File::open(blob(hex)).unwrap());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let h = entry.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path} in layer {hex}");
        }
    }
}

/// `--progress json` ends a failed build with the error and where it is in the
/// Dockerfile, so a CI tool can point at the line.
#[test]
fn json_progress_carries_the_failed_step() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY missing.txt /m\n").unwrap();
    let out = crate::util::rbuild_in(
        &dir.path().join("store"),
        &["build", "--progress", "json", ctx.to_str().unwrap()],
    );
    assert!(!out.status.success(), "the build should fail");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(last["event"], "failed", "{stdout}");
    assert_eq!((last["line"].as_u64(), last["column"].as_u64()), (Some(2), Some(1)), "{last}");
    assert!(last["file"].as_str().is_some_and(|f| f.ends_with("Dockerfile")), "{last}");
    assert!(last["error"].as_str().is_some_and(|e| e.contains("missing.txt")), "{last}");
}

/// A normal user with subordinate ids (newuidmap installed, ranges in /etc/subuid): rbuild
/// runs in a user namespace of them, so a build with USER, `--chown` and files of other
/// users gives the image root's build gives, file by file; `run -u` takes any user of
/// the image. Without them the same store is refused, and a store made without them has
/// its snapshots made again with owners.
#[test]
fn subordinate_ids_build_what_root_builds() {
    use std::os::unix::fs::PermissionsExt;
    assert!(rbuild_builder::users::is_root(), "the harness makes a user, which needs root");
    let u = crate::util::AsUser::with_subids("rbuild-subids");
    let ctx = u.work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \
         && mkdir -p /home/app && chown app:app /home/app && touch /daemon-file && chown 2:3 /daemon-file\n\
         COPY --chown=app:app file.txt /home/app/\n\
         USER app\n\
         WORKDIR /home/app/work\n\
         RUN id > id.txt && touch mine && ls -ln /daemon-file > seen.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("file.txt"), "copied\n").unwrap();
    for f in ["", "Dockerfile", "file.txt"] {
        let mode = if f.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(ctx.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out_dir = u.work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(u.uid), Some(u.gid)).unwrap();
    let user_out = out_dir.join("user.tar");
    let as_user = |args: &[&str]| {
        let out = u.rbuild(args);
        assert!(
            out.status.success(),
            "rbuild {args:?} as rbuild-subids: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    as_user(&["load", "-q", "-i", u.archive.to_str().unwrap()]);
    let map =
        as_user(&["run", "--rm", "--network", "none", "busybox", "cat", "/proc/self/uid_map"]);
    let lines: Vec<Vec<&str>> = map.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 2, "the caller and its range are mapped: {map}");
    assert_eq!(lines[0], ["0", &u.uid.to_string(), "1"], "{map}");
    assert_eq!(lines[1][0], "1", "{map}");
    assert_eq!(
        as_user(&["run", "--rm", "--network", "none", "-u", "1000:1000", "busybox", "id", "-u"])
            .trim(),
        "1000"
    );
    as_user(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "owners",
        "-o",
        &format!("type=oci,dest={}", user_out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        as_user(&["run", "--rm", "--network", "none", "owners", "cat", "id.txt", "seen.txt"])
            .split_whitespace()
            .take(1)
            .collect::<String>(),
        "uid=1000(app)"
    );
    // Signals sent to rbuild reach the command through the rbuild inside; killed
    // outright, rbuild leaves nothing running.
    for (signal, code) in [("-TERM", Some(3)), ("-KILL", None)] {
        use std::io::BufRead;
        let marker = format!("sleep 3{}", code.unwrap_or(9));
        let script = format!("trap 'echo got TERM; exit 3' TERM; echo ready; {marker} & wait");
        let mut child = u
            .command(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("ready"));
        let sent = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
        assert!(sent.unwrap().success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), code, "rbuild's exit after {signal}");
        if code.is_some() {
            assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("got TERM"));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Command::new("pgrep").args(["-f", &marker]).status().unwrap().success() {
            assert!(std::time::Instant::now() < deadline, "{marker} outlived rbuild ({signal})");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // Root's build of the same context: the same tree, config and history.
    let root_store = tempfile::tempdir().unwrap();
    let root_out = root_store.path().join("root.tar");
    crate::util::ok(root_store.path(), &["load", "-q", "-i", u.archive.to_str().unwrap()]);
    crate::util::ok(
        root_store.path(),
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-o",
            &format!("type=oci,dest={}", root_out.display()),
            ctx.to_str().unwrap(),
        ],
    );
    let compared = Command::new("python3")
        .arg(repo().join("testdata/differential/compare.py"))
        .arg(&user_out)
        .arg(&root_out)
        .output()
        .unwrap();
    assert!(
        compared.status.success(),
        "the user's image differs from root's:\n{}{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
    // Without the ids, the store's files are out of reach: refused, saying why.
    let mut off = u.command(&["images"]);
    off.env("RBUILD_SUBIDS", "off");
    let out = off.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("subordinate ids"), "{out:?}");
    // A store made without them: its snapshots are made again, with owners, with them.
    let store2 = u.work.path().join("store2");
    std::fs::create_dir(&store2).unwrap();
    std::os::unix::fs::chown(&store2, Some(u.uid), Some(u.gid)).unwrap();
    let with_store2 = |args: &[&str], subids: bool| {
        let mut c = std::process::Command::new(&u.binary);
        c.arg("--root").arg(&store2).args(args);
        u.apply(&mut c);
        if !subids {
            c.env("RBUILD_SUBIDS", "off");
        }
        c.output().unwrap()
    };
    assert!(with_store2(&["load", "-q", "-i", user_out.to_str().unwrap()], false).status.success());
    // The owner of a file the container's user made, as `ls -ln` in the image shows it.
    let owner = |subids: bool| {
        let args = ["run", "--rm", "--network", "none", "-u", "0", "owners", "ls", "-ln"];
        let mut args = args.to_vec();
        args.push("/home/app/work/mine");
        let out = with_store2(&args, subids);
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).map(String::from)
    };
    assert_eq!(owner(false).as_deref(), Some("0"), "mapped alone, every file is root's");
    assert_eq!(
        owner(true).as_deref(),
        Some("1000"),
        "with subordinate ids, the snapshot is made again with owners"
    );
}

/// Root without CAP_SYS_ADMIN (as in a container whose seccomp policy allows user
/// namespaces) may make a sandbox's namespaces only in a user namespace: rbuild enters
/// one of the same ids, says so, and builds what root builds, file by file; a store made
/// by the host's root has its snapshots made again for it.
#[test]
fn root_without_cap_sys_admin_builds_in_a_user_namespace() {
    assert!(rbuild_builder::users::is_root(), "dropping a capability needs root");
    crate::util::require_tool("capsh", "libcap2-bin");
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \
         && mkdir -p /home/app && chown app:app /home/app && mkdir /gone && touch /gone/f\n\
         COPY --chown=app:app file.txt /home/app/\n\
         RUN rm -r /gone && mkdir /gone && touch /gone/g\n\
         USER app\n\
         RUN touch /home/app/mine\n",
    )
    .unwrap();
    std::fs::write(ctx.join("file.txt"), "copied\n").unwrap();
    let archive = busybox_images().join("busybox-oci.tar");
    let built = |store: &std::path::Path, dest: &std::path::Path, drop: bool| {
        crate::util::ok(store, &["load", "-q", "-i", archive.to_str().unwrap()]);
        let args = format!(
            "'{}' --root '{}' build --network none -o type=oci,dest='{}' '{}'",
            assert_cmd::cargo::cargo_bin("rbuild").display(),
            store.display(),
            dest.display(),
            ctx.display()
        );
        let mut c = Command::new("capsh");
        if drop {
            c.arg("--drop=cap_sys_admin");
        }
        let out = c.args(["--", "-c", &args]).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    let (dropped, full) = (dir.path().join("dropped.tar"), dir.path().join("full.tar"));
    let text = built(&dir.path().join("a"), &dropped, true);
    assert!(text.contains("a sandbox in a user namespace of the same ids"), "{text}");
    let text = built(&dir.path().join("b"), &full, false);
    assert!(!text.contains("user namespace"), "{text}");
    let compared = Command::new("python3")
        .arg(repo().join("testdata/differential/compare.py"))
        .arg(&dropped)
        .arg(&full)
        .output()
        .unwrap();
    assert!(
        compared.status.success(),
        "the image differs from the one built with CAP_SYS_ADMIN:\n{}{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
    let owners = |s: &str| std::fs::read_to_string(dir.path().join(s).join("owners")).unwrap();
    assert_eq!((owners("a").trim(), owners("b").trim()), ("userns", "root"));
}
