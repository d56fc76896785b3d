//! Why a step missed the cache: each kind of input changed between two builds of the same
//! tag, and the reason said in the build output, `--progress json` and `history`.

use std::fs;
use std::path::Path;

use crate::util::{ok, rbuild_in};

struct Project {
    root: tempfile::TempDir,
    ctx: tempfile::TempDir,
}

impl Project {
    fn new(dockerfile: &str) -> Project {
        let root = crate::util::store_with_busybox();
        ok(root.path(), &["tag", "busybox", "base"]);
        let ctx = tempfile::tempdir().unwrap();
        fs::create_dir(ctx.path().join("src")).unwrap();
        for f in ["a.rs", "b.rs", "c.rs"] {
            fs::write(ctx.path().join("src").join(f), f).unwrap();
        }
        fs::create_dir(ctx.path().join("mnt")).unwrap();
        fs::write(ctx.path().join("mnt/m.txt"), "m").unwrap();
        fs::write(ctx.path().join("secret.txt"), "hunter2-the-secret").unwrap();
        let p = Project { root, ctx };
        p.dockerfile(dockerfile);
        p
    }

    fn dockerfile(&self, text: &str) {
        fs::write(self.ctx.path().join("Dockerfile"), text).unwrap();
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.ctx.path().join(name)
    }

    /// Builds as `app`; returns the plain output's cache-miss lines, by step.
    fn build(&self, extra: &[&str]) -> Vec<String> {
        let secret = format!("id=tok,src={}", self.file("secret.txt").display());
        let mut args = vec!["build", "--progress", "plain", "--network", "none", "-t", "app"];
        args.extend(["--secret", &secret]);
        args.extend(extra);
        args.push(self.ctx.path().to_str().unwrap());
        let o = rbuild_in(self.root.path(), &args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
        assert!(!out.contains("hunter2"), "the secret shows: {out}");
        let mut step = String::new();
        let mut misses = Vec::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("Step ") {
                step = rest.split('/').next().unwrap_or("").to_string();
            }
            if let Some(why) = line.strip_prefix(" ---> Cache miss: ") {
                misses.push(format!("{step}: {why}"));
            }
        }
        misses
    }

    fn root(&self) -> &Path {
        self.root.path()
    }
}

const DOCKERFILE: &str = "FROM base AS build\nARG VERSION=1\nENV MODE=fast\nCOPY src /src\nRUN --mount=type=secret,id=tok,target=/run/tok cat /src/a.rs > /out\nRUN --mount=type=bind,source=mnt,target=/m cat /m/m.txt > /b\nFROM base\nCOPY --from=build /out /out\n";

#[test]
fn each_kind_of_input_is_named() {
    crate::util::require_root();
    let p = Project::new(DOCKERFILE);
    assert!(p.build(&[]).is_empty(), "a first build explains nothing by default");
    assert!(p.build(&[]).is_empty(), "an unchanged build hits the cache");

    // Content, added and removed files, and a mode.
    fs::write(p.file("src/a.rs"), "changed").unwrap();
    fs::write(p.file("src/d.rs"), "new").unwrap();
    fs::remove_file(p.file("src/c.rs")).unwrap();
    let m = p.build(&[]);
    assert_eq!(
        m[0], "4: 1 file changed under src/ (src/a.rs), 1 added (src/d.rs), 1 removed (src/c.rs)",
        "{m:?}"
    );
    assert_eq!(m[1], "5: the step before missed (step 4)", "{m:?}");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p.file("src/b.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    let m = p.build(&[]);
    assert_eq!(m[0], "4: mode of src/b.rs 100644 -> 100755", "{m:?}");

    // ARG and ENV.
    let m = p.build(&["--build-arg", "VERSION=2"]);
    assert_eq!(m[0], "5: ARG VERSION 1 -> 2", "{m:?}");
    p.dockerfile(&DOCKERFILE.replace("MODE=fast", "MODE=slow"));
    let m = p.build(&["--build-arg", "VERSION=2"]);
    assert_eq!(m[0], "5: ENV MODE fast -> slow", "{m:?}");

    // A bind mount's source files.
    fs::write(p.file("mnt/m.txt"), "m changed").unwrap();
    let m = p.build(&["--build-arg", "VERSION=2"]);
    assert_eq!(m[0], "6: the source of the bind --mount at /m changed (from context)", "{m:?}");
    assert_eq!(m[1], "8: the stage it copies from (--from) changed", "{m:?}");

    // A secret's value is not an input (as in BuildKit); its mount's options are, and the
    // value is never shown (checked on every build above).
    fs::write(p.file("secret.txt"), "hunter2-the-secret-changed").unwrap();
    assert!(p.build(&["--build-arg", "VERSION=2"]).is_empty());
    p.dockerfile(&DOCKERFILE.replace("MODE=fast", "MODE=slow").replace("/run/tok", "/run/token"));
    let m = p.build(&["--build-arg", "VERSION=2"]);
    assert_eq!(m[0].split(": ").nth(1), Some("the instruction changed"), "{m:?}");
    assert!(
        m[0].contains("the secret --mount at /run/token was added") || m[0].contains("--mount"),
        "{m:?}"
    );

    // The base image moved.
    let ctx2 = tempfile::tempdir().unwrap();
    fs::write(ctx2.path().join("Dockerfile"), "FROM busybox\nLABEL moved=yes\n").unwrap();
    ok(p.root(), &["build", "-q", "-t", "base", ctx2.path().to_str().unwrap()]);
    let m = p.build(&["--build-arg", "VERSION=2"]);
    assert!(m[0].starts_with("4: base image base moved to sha256:"), "{m:?}");

    // --no-cache and --no-cache-filter.
    let m = p.build(&["--build-arg", "VERSION=2", "--no-cache-filter", "build"]);
    assert_eq!(
        m,
        ["4: --no-cache-filter build", "5: --no-cache-filter build", "6: --no-cache-filter build"]
    );
    let m = p.build(&["--build-arg", "VERSION=2", "--no-cache"]);
    assert_eq!(m.len(), 4, "{m:?}");
    assert!(m.iter().all(|l| l.ends_with(": --no-cache")), "{m:?}");

    // history and --progress json carry the same words.
    let why = ok(p.root(), &["history", "--format", "{{.Step}} {{.CacheMiss}}", "app"]);
    assert!(why.lines().any(|l| l == "8 --no-cache"), "{why}");
    fs::write(p.file("src/a.rs"), "again").unwrap();
    let o = rbuild_in(
        p.root(),
        &[
            "build",
            "--progress",
            "json",
            "--network",
            "none",
            "-t",
            "app",
            "--build-arg",
            "VERSION=2",
            "--secret",
            &format!("id=tok,src={}", p.file("secret.txt").display()),
            p.ctx.path().to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().any(|l| l.contains("\"event\":\"cache_miss\"")
            && l.contains("1 file changed under src/ (src/a.rs)")
            && l.contains("\"ran_before\":true")),
        "{out}"
    );
    let table = ok(p.root(), &["history", "app"]);
    assert!(table.lines().next().unwrap().contains("WHY IT RAN"), "{table}");
}

#[test]
fn explain_says_why_for_a_first_build_too() {
    crate::util::require_root();
    let p = Project::new("FROM base\nRUN true\n");
    let m = p.build(&["--explain"]);
    assert_eq!(m, ["2: no earlier build of it here to compare with"]);
    ok(p.root(), &["prune", "--build-cache"]);
    let m = p.build(&["--explain"]);
    assert_eq!(m, ["2: its cache record is gone (rbuild prune --build-cache?)"]);
}
