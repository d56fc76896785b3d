//! Cases about RUN and the cache: what each RUN is given (command, environment, user,
//! directory, network, mounts), when a step is taken from the cache, and the layers the
//! steps make.

use super::{has_env, Case};

#[test]
fn basic_run() {
    let mut c = Case::new("basic-run");
    c.effect("echo hello > /hello.txt", "/hello.txt", "hello");
    let built = c.build(&["-t", "basic"]);
    assert!(built.output().contains("Step 2/3 : RUN echo hello > /hello.txt"));
    assert!(built.ran(2));
    assert_eq!(built.run_with("echo hello").args, ["/bin/sh", "-c", "echo hello > /hello.txt"]);
    assert_eq!(c.file("basic", "/hello.txt"), "hello");
    let d = c.inspect("basic");
    assert_eq!(d["Config"]["Cmd"], serde_json::json!(["cat", "/hello.txt"]));
    let history = d["History"].as_array().unwrap();
    assert_eq!(history[history.len() - 1]["empty_layer"], true);
    assert_eq!(history[history.len() - 2].get("empty_layer"), None);
    let again = c.build(&["-t", "basic"]);
    assert!(again.cached(2) && again.runs.is_empty());
    c.write("Dockerfile.only", "FROM busybox\n");
    let same = c.build(&["-t", "same", "-f", "Dockerfile.only"]);
    assert_eq!(same.id(), c.inspect("busybox")["Id"]);
}

#[test]
fn run_forms() {
    let c = Case::new("run-forms");
    let built = c.build(&["-t", "rf"]);
    assert_eq!(built.run_with("exec-form").args, ["/bin/sh", "-c", "echo exec-form > /exec.txt"]);
    assert_eq!(
        built.run_with("shell-form").args,
        ["/bin/sh", "-c", "echo shell-form     continued > /shell.txt"]
    );
    assert_eq!(built.run_with("shell-name").args[..3], ["/bin/sh", "-e", "-c"]);
    let exec_env = built.run_with("exec-env");
    assert_eq!(exec_env.args, ["sh", "-c", "echo hello $WHO > /exec-env.txt"]);
    assert!(has_env(exec_env, "WHO=world"));
    assert_eq!(built.run_with("id -u").user, "nobody");
    let pwd = built.run_with("pwd");
    assert_eq!((pwd.cwd.as_str(), pwd.user.as_str()), ("/wd", "root"));
    assert_eq!(c.inspect("rf")["Config"]["Shell"], serde_json::json!(["/bin/sh", "-e", "-c"]));
}

#[test]
fn run_failure() {
    let mut c = Case::new("run-failure");
    c.exit("about to fail", 3);
    c.run_output = b"about to fail\non stderr\n".to_vec();
    let out = c.build_fails(&["-t", "fail"]);
    for want in [
        "Dockerfile:3:1",
        "returned a non-zero code: 3",
        "/bin/sh -c echo \"about to fail\"",
        "--- the end of its output:",
        "on stderr",
        "3 | RUN echo",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    assert!(!out.contains("Step 4/4"), "{out}");
    c.write("Dockerfile.ok", "FROM busybox\nRUN echo fine\n");
    let built = c.build(&["-t", "ok", "-f", "Dockerfile.ok"]);
    assert!(built.cached(2), "the step that ran before the failure is cached");
}

#[test]
fn network_none() {
    use rbuild_builder::sandbox::Network;
    let c = Case::new("network-none");
    let refused = c.try_build(&["-t", "nn"]);
    let out = refused.output();
    assert!(out.contains("RUN --network=host needs --allow network.host"), "{out}");
    assert_eq!(refused.run_with("ifaces-default").network, Network::Private);
    assert_eq!(refused.run_with("ifaces-none").network, Network::None);
    let built = c.build(&["-t", "nn", "--allow", "network.host"]);
    assert!(built.cached(2) && built.cached(3));
    assert_eq!(built.run_with("ifaces-host").network, Network::Host);
    let built =
        c.build(&["-t", "nn2", "--network", "none", "--allow", "network.host", "--no-cache"]);
    assert_eq!(built.run_with("ifaces-default").network, Network::None);
    assert_eq!(built.run_with("ifaces-host").network, Network::Host);
}

#[test]
fn parallel_stages() {
    let mut c = Case::new("parallel-stages");
    c.effect("nc -l", "/received.txt", "hello over the loopback");
    let built = c.build(&["-t", "par", "--allow", "network.host", "--build-arg", "PORT=4242"]);
    assert_eq!(c.file("par", "/received.txt"), "hello over the loopback");
    assert!(has_env(built.run_with("nc -l"), "PORT=4242"));
    assert!(has_env(built.run_with("nc 127.0.0.1"), "PORT=4242"));
    assert_eq!(built.runs.len(), 2);
}

#[test]
fn cache_build_arg() {
    let c = Case::new("cache-build-arg");
    assert!(c.build(&["-t", "cb"]).ran(3));
    let b = c.build(&["-t", "cb", "--build-arg", "V=default"]);
    assert!(b.cached(3) && b.cached(4));
    let b = c.build(&["-t", "cb", "--build-arg", "V=other"]);
    assert!(b.ran(3) && b.ran(4));
    assert!(has_env(b.run_with("/v.txt"), "V=other"));
    let b = c.build(&["-t", "cb"]);
    assert!(b.cached(3) && b.cached(4));
}

#[test]
fn cache_copy_from() {
    let mut c = Case::new("cache-copy-from");
    c.effect("$CONTENT", "/gen.txt", "one");
    c.build(&["-t", "cf"]);
    let b = c.build(&["-t", "cf"]);
    assert!(b.cached(6) && b.cached(7));
    let mut c = c;
    c.effect("$CONTENT", "/gen.txt", "two");
    let b = c.build(&["-t", "cf", "--build-arg", "CONTENT=two"]);
    assert!(!b.cached(6) && b.ran(7));
    assert_eq!(c.file("cf", "/gen.txt"), "two");
}

#[test]
fn cache_copy_source() {
    use std::os::unix::fs::PermissionsExt;
    let c = Case::new("cache-copy-source");
    let src = c.dir.join("src");
    for f in ["file.txt", "ignored.txt", "other.txt"] {
        std::fs::set_permissions(src.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let b = c.build(&["-t", "cc"]);
    assert!(!b.cached(2) && b.ran(3));
    let b = c.build(&["-t", "cc"]);
    assert!(b.cached(2) && b.cached(3));
    let old = filetime::FileTime::from_unix_time(978_307_200, 0);
    filetime::set_file_mtime(src.join("file.txt"), old).unwrap();
    let b = c.build(&["-t", "cc"]);
    assert!(b.cached(2) && b.cached(3), "a new mtime alone changes nothing");
    std::fs::write(src.join("ignored.txt"), "changed but ignored\n").unwrap();
    let b = c.build(&["-t", "cc"]);
    assert!(b.cached(2) && b.cached(3), "an ignored file changes nothing");
    std::fs::set_permissions(src.join("other.txt"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    let b = c.build(&["-t", "cc"]);
    assert!(!b.cached(2) && b.ran(3));
    assert_eq!(c.entry("cc", "/src/other.txt").unwrap().mode, 0o600);
    std::fs::write(src.join("file.txt"), "v2\n").unwrap();
    let b = c.build(&["-t", "cc"]);
    assert!(!b.cached(2) && b.ran(3));
    assert_eq!(c.file("cc", "/src/file.txt"), "v2");
    std::fs::write(src.join("file.txt"), "v1\n").unwrap();
    let b = c.build(&["-t", "cc"]);
    assert!(b.cached(2) && b.cached(3));
    std::fs::write(src.join("added.txt"), "new\n").unwrap();
    assert!(!c.build(&["-t", "cc"]).cached(2));
}

#[test]
fn cache_env() {
    let c = Case::new("cache-env");
    assert!(c.build(&["-t", "ce"]).ran(3));
    assert!(c.build(&["-t", "ce"]).cached(3));
    let text = std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap();
    c.write("Dockerfile", &text.replace("MODE=one", "MODE=two"));
    let b = c.build(&["-t", "ce"]);
    assert!(b.ran(3) && has_env(b.run_with("/mode.txt"), "MODE=two"));
}

#[test]
fn cache_instruction() {
    let c = Case::new("cache-instruction");
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap();
        c.write("Dockerfile", &text.replace(from, to));
    };
    let b = c.build(&["-t", "ci"]);
    assert!(b.ran(3) && b.ran(4));
    let b = c.build(&["-t", "ci"]);
    assert!(b.cached(3) && b.cached(4));
    edit("echo b", "echo B");
    let b = c.build(&["-t", "ci"]);
    assert!(b.cached(3) && b.ran(4));
    edit("note=one", "note=two");
    let b = c.build(&["-t", "ci"]);
    assert!(b.cached(3) && b.cached(4), "a LABEL does not change a RUN's cache key");
    edit("echo a >", "echo  a >");
    let b = c.build(&["-t", "ci"]);
    assert!(b.ran(3) && b.ran(4));
}

#[test]
fn cache_no_cache() {
    use rbuild_builder::workflow::{prune, PruneOptions};
    let c = Case::new("cache-no-cache");
    c.build(&["-t", "nc"]);
    assert!(c.build(&["-t", "nc", "--no-cache"]).ran(3));
    let b = c.build(&["-t", "nc"]);
    assert!(b.cached(2) && b.cached(3));
    prune(c.store(), PruneOptions::default()).unwrap();
    assert!(c.build(&["-t", "nc"]).cached(3), "prune keeps the build cache");
    prune(c.store(), PruneOptions { build_cache: true, ..Default::default() }).unwrap();
    assert!(c.build(&["-t", "nc"]).ran(3), "prune --build-cache empties it");
}

#[test]
fn layer_reuse() {
    let c = Case::new("layer-reuse");
    c.write("a.txt", "one\n");
    c.write("big.txt", &"z".repeat(100_000));
    c.build(&["-t", "lr"]);
    let layer = |c: &Case| c.inspect("lr")["RootFS"]["Layers"][3].clone();
    let before = layer(&c);
    c.write("a.txt", "two\n");
    let b = c.build(&["-t", "lr"]);
    assert!(!b.cached(3) && !b.cached(4) && b.ran(5));
    assert_eq!(layer(&c), before, "COPY big.txt made a new layer");
    c.write("a.txt", "three\n");
    filetime::set_file_mtime(c.dir.join("big.txt"), filetime::FileTime::now()).unwrap();
    c.build(&["-t", "lr"]);
    assert_eq!(layer(&c), before, "a touched big.txt made a new layer");
}

#[test]
fn repeated_layers() {
    let mut c = Case::new("repeated-layers");
    c.effect("echo x > /a", "/a", "x");
    c.effect("cat /a > /seen", "/seen", "x");
    c.build(&["-t", "rep", "--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
    assert_eq!(c.file("rep", "/a"), "x");
    assert_eq!(c.file("rep", "/seen"), "x");
    let layers = c.inspect("rep")["RootFS"]["Layers"].clone();
    assert_eq!(layers.as_array().unwrap().len(), 5, "{layers}");
    assert_eq!(layers[2], layers[3], "the two RUNs made one layer twice");
}

#[test]
fn reproducible() {
    let mut c = Case::new("reproducible");
    c.effect("mkdir /out", "/out/artifact", "built");
    std::fs::create_dir_all(c.dir.join("data")).unwrap();
    c.write("data/one.txt", "one\n");
    c.write("data/two.txt", "two\n");
    let mut other = Case::new("reproducible");
    other.effect("mkdir /out", "/out/artifact", "built");
    std::fs::create_dir_all(other.dir.join("data")).unwrap();
    other.write("data/one.txt", "one\n");
    other.write("data/two.txt", "two\n");
    let digest = |c: &Case, tag: &str| c.inspect(tag)["Descriptor"]["digest"].clone();
    for df in ["single", "multi", "scratch"] {
        let file = format!("Dockerfile.{df}");
        let args = ["-t", df, "-f", &file, "--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
        c.build(&args);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        other.build(&args);
        assert_eq!(digest(&c, df), digest(&other, df), "Dockerfile.{df}");
    }
    assert_eq!(c.inspect("multi")["Created"], "2023-11-14T22:13:20Z");
    let b = c.build(&["-t", "unclamped", "-f", "Dockerfile.single"]);
    assert!(b.ran(4));
    assert_ne!(digest(&c, "unclamped"), digest(&c, "single"));
}

#[test]
fn history_logs() {
    let mut c = Case::new("history-logs");
    c.run_output = b"first line of the log\n1\n2\nlast line of the log\n".to_vec();
    c.build(&["-t", "hl"]);
    let image = c.store().resolve("hl").unwrap();
    let (rows, built_here) = c.store().history(&image);
    assert!(built_here);
    let run = rows.iter().find(|r| r.created_by.starts_with("RUN")).unwrap();
    let step = run.step.as_ref().unwrap();
    assert_eq!((step.number, step.cached), (2, false));
    let mut log = String::new();
    use std::io::Read;
    c.store().open_step_log(&image, "hl", 2).unwrap().read_to_string(&mut log).unwrap();
    assert_eq!(log.lines().next(), Some("first line of the log"));
    assert_eq!(log.lines().last(), Some("last line of the log"));
    c.build(&["-t", "hl"]);
    let image = c.store().resolve("hl").unwrap();
    let (rows, _) = c.store().history(&image);
    let run = rows.iter().find(|r| r.created_by.starts_with("RUN")).unwrap();
    let step = run.step.as_ref().unwrap();
    assert!(step.cached && step.cache_key.as_ref().is_some_and(|k| k.0.len() == 64));
    let label = rows.iter().find(|r| r.created_by.starts_with("LABEL")).unwrap();
    assert!(label.step.as_ref().is_some_and(|s| s.cache_key.is_none()));
    assert!(c.store().open_step_log(&image, "hl", 4).is_err(), "a LABEL step has no log");
}

#[test]
fn run_mounts() {
    let mut c = Case::new("run-mounts");
    c.effect("mkdir -p /opt/tools", "/opt/tools/tool.txt", "from a stage");
    let built = c.build(&["-t", "m"]);
    let cache = built.run_with("/var/cache/app/log");
    assert!(cache.volumes.iter().any(|v| v.target == "/var/cache/app" && !v.readonly));
    let bind = built.run_with("/mnt/src/bound.txt");
    assert!(bind.volumes.iter().any(|v| v.target == "/mnt/src" && v.readonly));
    let rw = built.run_with("/mnt/rw/bound.txt");
    // A writable bind is an overlay of the source: writes stay out of the context.
    assert!(rw.layer_mounts.iter().any(|m| m.target == "/mnt/rw" && !m.readonly));
    assert!(!rw.volumes.iter().any(|v| v.target == "/mnt/rw"));
    let tmpfs = built.run_with("/scratch");
    assert!(tmpfs.tmpfs.iter().any(|t| t.target == "/scratch" && t.size == Some(1 << 20)));
    let ro = built.run_with("/readonly");
    assert!(ro.volumes.iter().any(|v| v.target == "/readonly" && v.readonly));
    for p in ["/var/cache/app/log", "/a", "/b", "/mnt", "/tools", "/bb", "/scratch"] {
        assert!(!c.exists("m", p), "{p} is in the image");
    }
    std::fs::write(c.dir.join("src/bound.txt"), "bound changed\n").unwrap();
    let b = c.build(&["-t", "m", "--build-arg", "RUNID=2"]);
    let b2 = c.build(&["-t", "m", "--build-arg", "RUNID=2"]);
    assert!(b.ran(7) && b2.cached(5) && b2.cached(6) && b2.cached(7));
    std::fs::write(c.dir.join("src/bound.txt"), "bound changed again\n").unwrap();
    let b = c.build(&["-t", "m", "--build-arg", "RUNID=2"]);
    assert!(b.cached(5) && b.cached(6) && b.ran(7), "a bound file is part of the key");
    std::fs::write(c.dir.join("src/hidden.txt"), "hidden changed\n").unwrap();
    assert!(c.build(&["-t", "m", "--build-arg", "RUNID=2"]).cached(7));
}
