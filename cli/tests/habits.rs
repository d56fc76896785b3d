//! Docker's script habits: Go templates in `--format` (images, inspect, history, ps) and
//! the filters of `images` and `ps`, on a real image and a build made here.

use std::path::Path;

use serde_json::Value;

use crate::util::{ok, rbuild_in};

/// A store holding busybox (as `busybox` and `mine:1`) and `built`, built here from it
/// with a label, and one exited container.
fn store() -> tempfile::TempDir {
    let root = crate::util::store_with_busybox();
    let r = root.path();
    ok(r, &["tag", "busybox", "mine:1"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nLABEL team=web\nRUN echo hi > /hi\nENV A=1 B=2\n",
    )
    .unwrap();
    ok(r, &["build", "-q", "--network", "none", "-t", "built", ctx.path().to_str().unwrap()]);
    ok(r, &["run", "--name", "done", "--network", "none", "busybox", "true"]);
    root
}

fn lines(r: &Path, args: &[&str]) -> Vec<String> {
    ok(r, args).lines().map(String::from).collect()
}

#[test]
fn templates_and_filters_as_docker_takes_them() {
    crate::util::require_root();
    let root = store();
    let r = root.path();
    let id = ok(r, &["inspect", "-f", "{{.Id}}", "busybox"]).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    // images: fields, table, json lines, filters.
    let names = lines(r, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(names, ["busybox:latest", "mine:1", "built:latest"]);
    let table = lines(r, &["images", "--format", "table {{.Repository}}\\t{{.ID}}"]);
    assert!(table[0].starts_with("REPOSITORY   IMAGE ID"), "{table:?}");
    assert!(table[1].starts_with("busybox      ") && table[1].ends_with(&id[7..19]), "{table:?}");
    for line in lines(r, &["images", "--format", "json"]) {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v["Repository"].is_string() && v["Size"].as_str().unwrap().ends_with('B'), "{v}");
    }
    let only =
        |filter: &str| lines(r, &["images", "--filter", filter, "--format", "{{.Repository}}"]);
    assert_eq!(only("label=team=web"), ["built"]);
    assert_eq!(only("label=team"), ["built"]);
    assert!(only("label=team=db").is_empty());
    assert_eq!(only("reference=mi*"), ["mine"]);
    assert_eq!(only("reference=*:latest"), ["busybox", "built"]);
    assert!(only("dangling=true").is_empty());
    assert_eq!(only("dangling=false").len(), 3);
    assert_eq!(only("since=busybox"), ["built"]);
    assert_eq!(only("before=built"), ["busybox", "mine"]);
    let bad = rbuild_in(r, &["images", "--filter", "colour=red"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown filter \"colour\""));
    // Tagging `built` away leaves an untagged (dangling) image once its name moves.
    ok(r, &["tag", "busybox", "built"]);
    assert_eq!(only("dangling=true"), ["<none>"]);

    // inspect: nested fields, Go's printing of lists and maps, json, index, range.
    let env = ok(r, &["inspect", "--format", "{{.Config.Env}}", "mine:1"]);
    assert_eq!(env.trim(), "[PATH=/bin]");
    let tags = ok(r, &["inspect", "-f", "{{json .RepoTags}} {{index .RepoTags 0}}", "mine:1"]);
    assert_eq!(tags.trim(), r#"["busybox:latest","mine:1","built:latest"] busybox:latest"#);
    let each = ok(r, &["inspect", "-f", "{{range .RepoTags}}<{{.}}>{{end}}", "busybox"]);
    assert_eq!(each.trim(), "<busybox:latest><mine:1><built:latest>");
    let two = lines(r, &["inspect", "-f", "{{.Os}}", "busybox", "done"]);
    assert_eq!(two.len(), 2, "one line per object: {two:?}");
    let state = ok(r, &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "done"]);
    assert_eq!(state.trim(), "exited 0");
    let wrong = rbuild_in(r, &["inspect", "-f", "{{.Id", "busybox"]);
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("template"));
    let typed = rbuild_in(r, &["inspect", "--type", "container", "busybox"]);
    assert!(!typed.status.success(), "busybox is no container");
}

#[test]
fn history_and_ps_templates() {
    crate::util::require_root();
    let root = store();
    let r = root.path();
    let by = lines(
        r,
        &["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Step}}|{{.Cache}}", "built"],
    );
    assert_eq!(by.len(), 5, "{by:?}");
    assert!(by[0].starts_with("ENV A=1 B=2|4|"), "{by:?}");
    assert_eq!(by[1], "RUN /bin/sh -c echo hi > /hi # buildkit|3|ran", "{by:?}");
    let json: Vec<Value> = lines(r, &["history", "--format", "json", "built"])
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json[1]["Cached"], Value::Bool(false));
    assert_eq!(json[1]["CacheKey"].as_str().map(str::len), Some(64));
    let bytes = lines(r, &["history", "--human=false", "--format", "{{.Size}}", "busybox"]);
    assert!(bytes[1].parse::<u64>().unwrap() > 500_000, "{bytes:?}");
    assert_eq!(lines(r, &["history", "-q", "busybox"])[1], "<missing>");

    let ps = lines(r, &["ps", "-a", "--format", "{{.Names}} {{.Image}} {{.State}}"]);
    assert_eq!(ps, ["done busybox exited"]);
    assert!(lines(r, &["ps", "--format", "{{.Names}}"]).is_empty(), "nothing runs");
    assert_eq!(lines(r, &["ps", "--filter", "status=exited", "--format", "{{.Names}}"]), ["done"]);
    assert_eq!(lines(r, &["ps", "-a", "--filter", "exited=0", "-q"]).len(), 1);
    assert!(lines(r, &["ps", "-a", "--filter", "exited=1", "-q"]).is_empty());
    assert_eq!(
        lines(r, &["ps", "-a", "--filter", "ancestor=mine:1", "--format", "{{.Names}}"]),
        ["done"]
    );
    let header = lines(r, &["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}"]);
    assert!(header[0].starts_with("NAMES   STATUS"), "{header:?}");
    let one: Value = serde_json::from_str(&ok(r, &["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(one["Names"], "done");
}

/// A context holding `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    ctx
}

#[test]
fn build_checks_in_builds_and_alone() {
    crate::util::require_root();
    let root = crate::util::store_with_busybox();
    let r = root.path();
    let ctx =
        context("FROM busybox as Builder\nENV A 1\nCOPY $NOPE /x\nRUN echo ran\nCMD echo hi\n");
    let dir = ctx.path().to_str().unwrap();

    // A build says what it found at its end, on standard error, and succeeds.
    let o = rbuild_in(r, &["build", "--progress", "plain", "--network", "none", dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(" 5 warnings found (use rbuild build --check to expand):"), "{err}");
    for line in [
        " - StageNameCasing: Stage name 'Builder' should be lowercase (line 1)",
        " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
        " - LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
        " - UndefinedVar: Usage of undefined variable '$NOPE' (line 3)",
        " - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 5)",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }

    // --check: each finding in full, nothing built, exit 1; --call=check is the same.
    for flag in ["--check", "--call=check"] {
        let o = rbuild_in(r, &["build", flag, dir]);
        assert_eq!(o.status.code(), Some(1));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(
                "WARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/"
            ),
            "{out}"
        );
        assert!(out.contains("   3 | >>> COPY $NOPE /x"), "{out}");
        assert!(out.ends_with("Check complete, 5 warnings have been found!\n"), "{out}");
        assert!(!out.contains("Step 1/"), "nothing runs: {out}");
    }

    // The build argument replaces the directive; skip=all finds nothing.
    let quiet = rbuild_in(
        r,
        &["build", "--check", "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all", dir],
    );
    assert_eq!(quiet.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("Check complete, no warnings found."));

    // error=true fails the build before any step runs.
    let strict = context("# check=error=true;skip=JSONArgsRecommended\nFROM busybox\nMAINTAINER me\nRUN echo ran-a-step\nCMD echo\n");
    let o = rbuild_in(
        r,
        &["build", "--progress", "plain", "--network", "none", strict.path().to_str().unwrap()],
    );
    assert!(!o.status.success());
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(err.contains("lint violation found for rules: MaintainerDeprecated"), "{err}");
    assert!(!err.contains("JSONArgsRecommended"), "skipped: {err}");
    assert!(!out.contains("ran-a-step"), "{out}");

    // --progress json carries each finding.
    let o = rbuild_in(r, &["build", "--progress", "json", "--network", "none", dir]);
    let events: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["event"] == "check")
        .collect();
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["rule"], "StageNameCasing");
    assert_eq!(events[0]["url"], "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/");
}

#[test]
fn call_outline_and_targets() {
    let root = tempfile::tempdir().unwrap();
    let ctx = context(
        "ARG VERSION=1.2\n# build compiles the program\nFROM busybox AS build\n# VERSION of the program\nARG VERSION\nRUN --mount=type=secret,id=token true\nFROM busybox AS test\nRUN --mount=type=ssh true\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let targets = ok(root.path(), &["build", "--call=targets", dir]);
    let lines: Vec<&str> = targets.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["TARGET", "DESCRIPTION"]);
    assert!(
        lines[1].starts_with("build ") && lines[1].ends_with("compiles the program"),
        "{targets}"
    );
    assert!(lines[2].starts_with("test (default)"), "{targets}");
    let outline = ok(
        root.path(),
        &["build", "--call=outline", "--target", "build", "--build-arg", "VERSION=2", dir],
    );
    assert!(
        outline.starts_with("TARGET:      build\nDESCRIPTION: compiles the program\n"),
        "{outline}"
    );
    assert!(
        outline.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["VERSION", "2", "of", "the", "program"]),
        "{outline}"
    );
    assert!(outline.contains("SECRET\ntoken\n"), "{outline}");
    let test = ok(root.path(), &["build", "--call=outline", dir]);
    assert!(test.contains("SSH\ndefault\n"), "{test}");
    // hadolint's rules join --check when asked for.
    let o = rbuild_in(root.path(), &["build", "--check", "--hadolint", dir]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "Dockerfile:3 DL3006 warning: Always tag the version of an image explicitly\n"
        ),
        "{out}"
    );
    let plain = rbuild_in(root.path(), &["build", "--check", dir]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("DL3006"), "opt-in only");
}

#[test]
fn shell_completion_loads_and_completes_and_man_pages_are_written() {
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    let script = format!(
        "source <({bin} completion bash) && complete -p rbuild && \
         COMP_WORDS=(rbuild ima) COMP_CWORD=1 COMP_LINE='rbuild ima' COMP_POINT=10 && _rbuild rbuild ima rbuild && echo \"${{COMPREPLY[@]}}\" && \
         COMP_WORDS=(rbuild build --no-ca) COMP_CWORD=2 && _rbuild rbuild --no-ca build && echo \"${{COMPREPLY[@]}}\"",
        bin = bin.display()
    );
    let o = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("-F _rbuild") && lines[0].ends_with(" rbuild"), "{out}");
    assert_eq!(lines[1], "images", "{out}");
    assert_eq!(lines[2], "--no-cache --no-cache-filter", "{out}");
    for shell in ["zsh", "fish"] {
        let o = crate::util::rbuild().args(["completion", shell]).output().unwrap();
        assert!(o.status.success() && o.stdout.len() > 1000, "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let o = crate::util::rbuild().arg("man").arg(dir.path()).output().unwrap();
    assert!(o.status.success());
    let page = std::fs::read_to_string(dir.path().join("rbuild-build.1")).unwrap();
    assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH rbuild-build 1"), "{page}");
    assert!(page.contains("no\\-cache\\-filter"), "the build page lists the flags");
    assert!(dir.path().join("rbuild-system-prune.1").exists());
    assert!(!dir.path().join("rbuild-__sandbox.1").exists(), "hidden commands have no page");
}

#[test]
fn prune_system_and_builder_as_docker_names_them() {
    crate::util::require_root();
    let root = store();
    let r = root.path();
    // `built` loses its name to busybox: dangling, listed, then pruned by filter.
    ok(r, &["tag", "busybox", "built"]);
    let dangling = lines(r, &["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.len(), 1);
    let kept = ok(r, &["prune", "-f", "--filter", "until=2000-01-01T00:00:00Z"]);
    assert!(kept.contains("Deleted 0 untagged images"), "{kept}");
    let none = ok(r, &["prune", "--filter", "label=team=db"]);
    assert!(none.contains("Deleted 0 untagged images"), "{none}");
    let gone = ok(r, &["prune", "--filter", "label=team=web"]);
    assert!(gone.contains("Deleted 1 untagged image;"), "{gone}");
    let bad = rbuild_in(r, &["prune", "--filter", "colour=red"]);
    assert!(!bad.status.success());
    // On a terminal prune asks first; "n" leaves everything.
    crate::util::require_tool("script", "bsdutils");
    let line = format!(
        "{} --root {} prune",
        assert_cmd::cargo::cargo_bin("rbuild").display(),
        r.display()
    );
    let mut asked = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    asked.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let said = String::from_utf8_lossy(&asked.wait_with_output().unwrap().stdout).into_owned();
    assert!(said.contains("Are you sure you want to continue? [y/N]"), "{said}");
    assert!(!said.contains("Deleted"), "answered no: {said}");

    // system df counts the build cache that builder prune then frees.
    let ctx = context("FROM busybox\nRUN echo x > /x\n");
    ok(r, &["build", "-q", "--network", "none", ctx.path().to_str().unwrap()]);
    let df = ok(r, &["system", "df"]);
    let cache_line = df.lines().find(|l| l.starts_with("Build cache")).unwrap().to_string();
    assert!(!cache_line.ends_with(" 0B"), "{df}");
    let freed = ok(r, &["builder", "prune", "-f"]);
    assert!(freed.starts_with("Total:\t") && !freed.trim().ends_with("\t0B"), "{freed}");
    let df = ok(r, &["system", "df"]);
    assert!(df.lines().any(|l| l.starts_with("Build cache") && l.ends_with(" 0B")), "{df}");

    // system prune: stopped containers, dangling images; -a images without containers.
    let out = ok(r, &["system", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(lines(r, &["ps", "-a", "-q"]).is_empty());
    let out = ok(r, &["system", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted Images:"), "{out}");
    assert!(lines(r, &["images", "-q"]).is_empty(), "no container uses any image");
}

#[test]
fn buildx_flags_take_effect() {
    crate::util::require_root();
    let root = crate::util::store_with_busybox();
    let r = root.path();
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(extra.path().join("e.txt"), "from the named context\n").unwrap();
    let ctx = context(
        "FROM img AS first\nRUN (tail -1 /etc/hosts; df -k /dev/shm | tail -1; ulimit -n; ulimit -Hn) > /facts\nCOPY --from=extra e.txt /e.txt\nFROM busybox\nCOPY --from=first /facts /e.txt /\n",
    );
    let meta = r.join("meta.json");
    let extra_arg = format!("extra={}", extra.path().display());
    let args = [
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "bx",
        "-t",
        "bx:2",
        "--add-host",
        "db:10.1.2.3",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=512:1024",
        "--build-context",
        &extra_arg,
        "--build-context",
        "img=docker-image://busybox",
        "--metadata-file",
        meta.to_str().unwrap(),
        "--annotation",
        "org.example.team=web",
        "--load",
        "--provenance=false",
        ctx.path().to_str().unwrap(),
    ];
    let id = ok(r, &args).trim().to_string();
    let facts = ok(r, &["run", "--rm", "--network", "none", "bx", "cat", "/facts", "/e.txt"]);
    let lines: Vec<&str> = facts.lines().collect();
    assert_eq!(lines[0], "10.1.2.3\tdb", "{facts}");
    assert!(lines[1].split_whitespace().nth(1) == Some("131072"), "/dev/shm of 128m: {facts}");
    assert_eq!(&lines[2..5], ["512", "1024", "from the named context"], "{facts}");
    // The metadata file as buildx writes it.
    let m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.as_str());
    let digest = m["containerimage.digest"].as_str().unwrap();
    assert_eq!(m["containerimage.descriptor"]["digest"], digest);
    assert_eq!(m["image.name"], "docker.io/library/bx:latest,docker.io/library/bx:2");
    // The annotation is on the manifest (read back from an OCI archive).
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("bx.tar");
    ok(r, &["save", "--format", "oci", "-o", tar.to_str().unwrap(), "bx"]);
    crate::util::untar(&tar, out.path());
    let manifest = out.path().join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(manifest["annotations"]["org.example.team"], "web");
    // A named context takes the place of a stage of its name: the stage is not built.
    let over = context(
        "FROM busybox AS src\nRUN false\nFROM busybox AS base\nRUN false\nFROM base\nCOPY --from=src e.txt /e.txt\n",
    );
    let src_arg = format!("src={}", extra.path().display());
    let replaced = ok(
        r,
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "over",
            "--build-context",
            &src_arg,
            "--build-context",
            "base=docker-image://busybox",
            over.path().to_str().unwrap(),
        ],
    );
    assert!(replaced.starts_with("sha256:"), "{replaced}");
    assert_eq!(
        ok(r, &["run", "--rm", "--network", "none", "over", "cat", "/e.txt"]),
        "from the named context\n"
    );
    // A changed named context is a changed input.
    std::fs::write(extra.path().join("e.txt"), "changed\n").unwrap();
    let again = ok(r, &args).trim().to_string();
    assert_ne!(again, id);
    // Refusals say why.
    for (flag, value) in [
        ("--provenance", "mode=max"),
        ("--ulimit", "nofile=10:5"),
        ("--add-host", "db:nowhere"),
        ("--build-context", "x=oci-layout:///tmp/l"),
        ("--annotation", "index:k=v"),
    ] {
        let o = rbuild_in(r, &["build", flag, value, ctx.path().to_str().unwrap()]);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(flag.trim_start_matches("--")),
            "{flag}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // run: a missing working directory is made before the switch to the user; errors of
    // the sandbox keep their cause and errno; a missing program is said as docker says it.
    let o = ok(
        r,
        &["run", "--rm", "--network", "none", "-u", "nobody", "-w", "/work", "busybox", "pwd"],
    );
    assert_eq!(o, "/work\n");
    let o =
        rbuild_in(r, &["run", "--rm", "--network", "none", "-w", "/etc/passwd", "busybox", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/etc/passwd: Not a directory (os error 20)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = rbuild_in(r, &["run", "--rm", "--network", "none", "busybox", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("nosuchcmd: executable file not found in $PATH"));
    // run takes the same three.
    let o = ok(
        r,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--add-host",
            "api:10.9.9.9",
            "--ulimit",
            "nproc=77",
            "busybox",
            "sh",
            "-c",
            "tail -1 /etc/hosts; ulimit -u",
        ],
    );
    assert_eq!(o, "10.9.9.9\tapi\n77\n");
}
