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
        rbuild_builder::snapshot::is_root(),
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
    copy_hostile,
    copy_owner_mode,
    copy_rules,
    copy_through_symlink,
    directives,
    dockerfile_ignore,
    dockerignore,
    entrypoint_cmd,
    env_expansion,
    healthcheck,
    history_logs,
    killed_build,
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
    run_failure,
    run_forms,
    run_heredoc,
    scratch,
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
