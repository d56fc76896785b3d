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
