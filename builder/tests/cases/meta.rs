//! Cases about the image config: metadata instructions, stages, targets, platforms.

use serde_json::{json, Value};

use super::Case;

#[test]
fn metadata() {
    let c = Case::new("metadata");
    c.build(&["-t", "meta"]);
    let d = c.inspect("meta");
    assert_eq!(d["Author"], "someone@example.com");
    assert_eq!(
        d["Config"]["Labels"],
        json!({"version": "1.0", "description": "a test image", "multi.word": "a b"})
    );
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&d["Config"]["ExposedPorts"]),
        ["443/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp", "80/tcp"]
    );
    assert_eq!(keys(&d["Config"]["Volumes"]), ["/cache", "/data", "/logs"]);
    assert_eq!(d["Config"]["User"], "nobody:nogroup");
    assert_eq!(d["Config"]["StopSignal"], "SIGINT");
    assert_eq!(d["Config"]["Entrypoint"], json!(["/bin/echo", "entry"]));
    assert_eq!(d["Config"]["Cmd"], json!(["default", "args"]));
    let history = d["History"].as_array().unwrap();
    let base = c.inspect("busybox")["History"].as_array().unwrap().len();
    assert_eq!(history.len(), base + 9);
    assert!(history[base..].iter().all(|h| h["empty_layer"] == true));
}

#[test]
fn entrypoint_cmd() {
    let c = Case::new("entrypoint-cmd");
    c.build(&["-t", "ec1", "--target", "entry-resets"]);
    assert_eq!(c.inspect("ec1")["Config"].get("Cmd"), None);
    c.build(&["-t", "ec2", "--target", "entry-keeps"]);
    assert_eq!(c.inspect("ec2")["Config"]["Cmd"], json!(["kept"]));
    c.build(&["-t", "ec3"]);
    let d = c.inspect("ec3");
    assert_eq!(d["Config"]["Entrypoint"], json!(["/bin/sh", "-c", "exec echo shell-entry"]));
    assert_eq!(d["Config"]["Cmd"], json!(["/bin/sh", "-c", "echo shell-cmd"]));
}

#[test]
fn healthcheck() {
    let c = Case::new("healthcheck");
    c.build(&["-t", "hc", "--target", "base"]);
    let d = c.inspect("hc");
    assert_eq!(
        d["Config"]["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
            "Interval": 5000000000u64, "Timeout": 3000000000u64, "StartPeriod": 60000000000u64,
            "StartInterval": 2000000000u64, "Retries": 4})
    );
    assert_eq!(d["Descriptor"]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    c.build(&["-t", "hc-exec", "--target", "exec"]);
    assert_eq!(
        c.inspect("hc-exec")["Config"]["Healthcheck"],
        json!({"Test": ["CMD", "/bin/true"]})
    );
    c.build(&["-t", "hc-none"]);
    assert_eq!(c.inspect("hc-none")["Config"]["Healthcheck"], json!({"Test": ["NONE"]}));
}

#[test]
fn env_expansion() {
    let c = Case::new("env-expansion");
    let built = c.build(&["-t", "envx"]);
    let run = built.run_with("/env.txt");
    for e in ["A=changed", "B=two words", "C=-x", "D=one", "E=fallback", "F=set"] {
        assert!(super::has_env(run, e), "{e} not in {:?}", run.env);
    }
    let d = c.inspect("envx");
    assert_eq!(d["Config"]["WorkingDir"], "/changed");
    assert_eq!(d["Config"]["Labels"]["from.env"], "two words");
    let env: Vec<Value> = d["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().starts_with("PATH="))
        .cloned()
        .collect();
    assert_eq!(
        env,
        ["A=changed", "B=two words", "C=-x", "D=one", "E=fallback", "F=set"].map(Value::from)
    );
}

#[test]
fn workdir() {
    let c = Case::new("workdir");
    let built = c.build(&["-t", "wd"]);
    assert_eq!(built.run_with("pwd").cwd, "/a/b/c/d");
    let e = c.entry("wd", "/a/b/c/d").unwrap();
    assert_eq!((e.kind, e.uid, e.mode), ('d', 0, 0o755));
    let d = c.inspect("wd");
    assert_eq!(d["Config"]["WorkingDir"], "/tmp");
    let workdirs: Vec<&str> = d["History"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .filter(|b| b.starts_with("WORKDIR"))
        .collect();
    assert_eq!(workdirs, ["WORKDIR /a/b", "WORKDIR /a/b/c", "WORKDIR /a/b/c/d", "WORKDIR /tmp"]);
    // An existing directory: an empty layer all the same, as BuildKit commits one.
    assert_eq!(d["History"].as_array().unwrap().last().unwrap()["empty_layer"], Value::Null);
}

#[test]
fn target() {
    let mut c = Case::new("target");
    c.effect("echo test > /test.txt", "/test.txt", "test");
    c.effect("echo base > /base.txt", "/base.txt", "base");
    let built = c.build(&["-t", "tg", "--target", "test"]);
    assert_eq!(c.file("tg", "/test.txt"), "test");
    assert_eq!(c.file("tg", "/base.txt"), "base");
    assert!(!built.commands().iter().any(|l| l.contains("not needed")));
    assert!(built.output().contains("Step 4/4 : RUN echo test > /test.txt"), "{}", built.output());
    let out = c.build_fails(&["--target", "nosuch"]);
    assert!(out.contains("target stage \"nosuch\" could not be found"), "{out}");
}

#[test]
fn platform_flag() {
    let c = Case::new("platform-flag");
    let arch = rbuild_builder::engine::Platform::host().architecture;
    let built =
        c.build(&["-t", "pf", "--platform", &format!("linux/{arch}"), "-f", "Containerfile"]);
    assert!(super::has_env(built.run_with("TARGETARCH"), &format!("TARGETARCH={arch}")));
    let d = c.inspect("pf");
    let by: Vec<&str> =
        d["History"].as_array().unwrap().iter().filter_map(|h| h["created_by"].as_str()).collect();
    assert_eq!(
        by[by.len() - 3..],
        [
            "ARG TARGETARCH".to_string(),
            "ARG ONE=1 TWO".to_string(),
            format!(
                "RUN |3 TARGETARCH={arch} ONE=1 TWO= /bin/sh -c echo \"$TARGETARCH\" > /arch.txt # buildkit"
            ),
        ]
    );
    let other = if arch == "s390x" { "amd64" } else { "s390x" };
    let platform = rbuild_builder::engine::Platform::parse(&format!("linux/{other}")).unwrap();
    let refused = rbuild_builder::engine::flags::check_platform(&platform).unwrap_err();
    assert!(refused.to_string().contains(&format!("cannot build for linux/{other}")), "{refused}");
}

#[test]
fn onbuild() {
    let mut c = Case::new("onbuild");
    c.write("trigger.txt", "context of the child\n");
    c.effect("trigger ran", "/trigger-ran.txt", "trigger ran");
    c.effect("echo child", "/child.txt", "child");
    c.build(&["-t", "parent"]);
    assert_eq!(
        c.inspect("parent")["Config"]["OnBuild"],
        json!([
            "COPY trigger.txt /from-trigger.txt",
            "RUN echo \"trigger ran\" > /trigger-ran.txt"
        ])
    );
    assert!(!c.exists("parent", "/trigger-ran.txt"));
    c.write("Dockerfile.child", "FROM parent\nRUN echo child > /child.txt\n");
    let built = c.build(&["-t", "child", "-f", "Dockerfile.child"]);
    assert!(built.output().contains("# Executing 2 build triggers"), "{}", built.output());
    assert_eq!(c.file("child", "/from-trigger.txt"), "context of the child");
    assert_eq!(c.file("child", "/trigger-ran.txt"), "trigger ran");
    assert_eq!(c.file("child", "/child.txt"), "child");
    assert_eq!(c.inspect("child")["Config"].get("OnBuild"), None);
}

#[test]
fn directives() {
    let mut c = Case::new("directives");
    c.write("a.txt", "a\n");
    c.effect("echo one", "/joined.txt", "one two");
    let built = c.build(&["-t", "dir"]);
    assert!(!built.output().contains("syntax image"));
    assert_eq!(built.run_with("echo one").args.last().unwrap(), "echo one     two > /joined.txt");
    assert_eq!(c.file("dir", "/back\\slash/a.txt"), "a");
    let text = std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap();
    c.write("Dockerfile", &text.replace("docker/dockerfile:1.7", "example.com/custom/frontend:2"));
    // The syntax warning belongs to the workflow around the engine.
    let df =
        rbuild_builder::parse(&std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap()).unwrap();
    let syntax = df.tree.directive("syntax").unwrap();
    assert!(!rbuild_builder::engine::flags::builtin_syntax(syntax));
}

#[test]
fn arg_scoping() {
    let mut c = Case::new("arg-scoping");
    c.effect("> /args.txt", "/args.txt", "from the first stage");
    let built = c.build(&["-t", "args"]);
    let first = built.run_with("/args.txt");
    assert!(super::has_env(first, "GLOBAL=global-default"));
    assert!(super::has_env(first, "LOCAL=local-default"));
    let unseen = built.run_with("/unseen.txt");
    assert!(!unseen.env.iter().any(|e| e.starts_with("GLOBAL=") || e.starts_with("LOCAL=")));
    let built = c.build(&[
        "-t",
        "args2",
        "--build-arg",
        "GLOBAL=g2",
        "--build-arg",
        "LOCAL=l2",
        "--build-arg",
        "NOBODY=x",
    ]);
    let first = built.run_with("/args.txt");
    assert!(super::has_env(first, "GLOBAL=g2") && super::has_env(first, "LOCAL=l2"));
    assert!(built.output().contains("One or more build-args [NOBODY] were not consumed"));
    let env = c.inspect("args2")["Config"]["Env"].to_string();
    assert!(!env.contains("GLOBAL") && !env.contains("LOCAL"), "{env}");
}

#[test]
fn arg_env_precedence() {
    let c = Case::new("arg-env-precedence");
    let built = c.build(&["-t", "prec", "--build-arg", "NAME=cli"]);
    assert!(super::has_env(built.run_with("/name.txt"), "NAME=from-env"));
    assert!(super::has_env(built.run_with("/other.txt"), "OTHER=arg-only"));
    let d = c.inspect("prec");
    assert!(!d["Config"]["Env"].to_string().contains("OTHER=arg-only"));
    assert_eq!(
        d["History"].as_array().unwrap().last().unwrap()["created_by"],
        "RUN |2 NAME=from-env OTHER=arg-only /bin/sh -c echo \"$OTHER\" > /other.txt # buildkit"
    );
}

#[test]
fn proxy_args() {
    let c = Case::new("proxy-args");
    let built = c.build(&[
        "-t",
        "px",
        "--build-arg",
        "HTTP_PROXY=http://proxy.invalid:3128",
        "--build-arg",
        "no_proxy=localhost",
    ]);
    let run = built.run_with("/proxy.txt");
    assert!(super::has_env(run, "HTTP_PROXY=http://proxy.invalid:3128"));
    assert!(super::has_env(run, "no_proxy=localhost"));
    let d = c.inspect("px");
    assert!(!d["History"].to_string().contains("proxy.invalid"));
    assert!(!d["Config"]["Env"].to_string().to_uppercase().contains("PROXY"));
    assert!(!built.output().contains("were not consumed"));
}
