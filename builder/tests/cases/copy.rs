//! COPY and ADD cases: sources, destinations, owners and modes, the context's rules.

use super::{owner_mode, Case};

#[test]
fn copy_rules() {
    let c = Case::new("copy-rules");
    c.build(&["-t", "cp"]);
    assert_eq!(c.file("cp", "/file/renamed.txt"), "a");
    assert_eq!(c.file("cp", "/into/a.txt"), "a");
    assert_eq!(c.file("cp", "/contents/c.txt"), "c");
    assert_eq!(c.file("cp", "/contents/sub/d.txt"), "d");
    assert!(!c.exists("cp", "/contents/dir"));
    assert_eq!(c.file("cp", "/contents-slash/sub/d.txt"), "d");
    assert_eq!(c.ls("cp", "/glob"), ["a.txt", "b.txt"]);
    assert_eq!(c.ls("cp", "/two"), ["a.txt", "b.txt"]);
    assert_eq!(c.file("cp", "/work/a.txt"), "a");
    assert_eq!(c.file("cp", "/work/rel/a.txt"), "a");
    let into = c.entry("cp", "/into").unwrap();
    assert_eq!(owner_mode(&into), (0, 0, 0o755));
}

#[test]
fn copy_errors() {
    let c = Case::new("copy-errors");
    c.write("Dockerfile.missing", "FROM busybox\nCOPY missing.txt /m\n");
    let out = c.build_fails(&["-f", "Dockerfile.missing"]);
    for want in ["Dockerfile.missing:2:1", "missing.txt", "2 | COPY missing.txt /m", "  | ^^^^"] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    c.write("Dockerfile.ignored", "FROM busybox\nCOPY secret.txt /s\n");
    let out = c.build_fails(&["-f", "Dockerfile.ignored"]);
    assert!(out.contains("secret.txt (it is excluded by .dockerignore)"), "{out}");
    c.write("Dockerfile.many", "FROM busybox\nCOPY x.txt y.txt /notadir\n");
    let out = c.build_fails(&["-f", "Dockerfile.many"]);
    assert!(out.contains("the destination must be a directory and end with a /"), "{out}");
    c.build(&["-t", "fine"]);
    assert_eq!(c.file("fine", "/ok.txt"), "x");
}

#[test]
fn copy_owner_mode() {
    use std::os::unix::fs::PermissionsExt;
    let c = Case::new("copy-owner-mode");
    let mode = |f: &str, m: u32| {
        std::fs::set_permissions(c.dir.join(f), std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode("script.sh", 0o755);
    mode("plain.txt", 0o600);
    if !rbuild_builder::users::is_root() {
        // Without root, files cannot be given to other users: a clear refusal.
        let out = c.build_fails(&["-t", "own"]);
        assert!(out.contains("COPY --chown to a user other than root needs rbuild to run as root"));
        return;
    }
    c.build(&["-t", "own"]);
    let om = |p: &str| owner_mode(&c.entry("own", p).unwrap());
    assert_eq!(om("/keep/script.sh"), (0, 0, 0o755));
    assert_eq!(om("/keep/plain.txt"), (0, 0, 0o600));
    assert_eq!(om("/named/plain.txt").0, 65534);
    assert_eq!(om("/named/plain.txt").1, 65534);
    assert_eq!((om("/uid-only/plain.txt").0, om("/uid-only/plain.txt").1), (1234, 1234));
    assert_eq!((om("/numeric/f").0, om("/numeric/f").1), (42, 43));
    assert_eq!(om("/octal/script.sh").2, 0o640);
    assert_eq!(om("/symbolic/plain.txt").2, 0o700);
    assert_eq!(om("/both/f"), (65534, 65534, 0o750));
    c.write("Dockerfile.bad", "FROM busybox\nCOPY --chown=nosuchuser plain.txt /x\n");
    let out = c.build_fails(&["-f", "Dockerfile.bad"]);
    assert!(out.contains("unable to find user nosuchuser"), "{out}");
}

#[test]
fn context_symlinks() {
    let c = Case::new("context-symlinks");
    c.build(&["-t", "sl"]);
    assert_eq!(c.file("sl", "/x"), "real");
    assert_eq!(c.file("sl", "/d/inside"), "real");
    assert_eq!(c.file("sl", "/l"), "in-sub");
    assert_eq!(c.entry("sl", "/all/escape").unwrap().link, "/etc");
    assert_eq!(c.entry("sl", "/all/inside").unwrap().link, "real.txt");
    for src in ["escape/hostname", "climb", "escape/passwd"] {
        c.write("Dockerfile.escape", &format!("FROM busybox\nCOPY {src} /stolen\n"));
        let out = c.build_fails(&["-f", "Dockerfile.escape"]);
        assert!(out.contains("file not found in build context"), "{src}: {out}");
    }
}

#[test]
fn dockerfile_ignore() {
    let c = Case::new("dockerfile-ignore");
    c.build(&["-t", "di", "-f", "sub/Custom.Dockerfile"]);
    // The shell case lists with `ls`, which leaves out dot files.
    assert_eq!(c.ls("di", "/ctx"), [".dockerignore", "one.txt", "sub"]);
    c.write("Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    c.build(&["-t", "di2"]);
    let listed: Vec<String> =
        c.ls("di2", "/ctx").into_iter().filter(|n| !n.starts_with('.')).collect();
    assert_eq!(listed, ["Dockerfile", "sub", "two.txt"]);
}

#[test]
fn dockerignore() {
    let c = Case::new("dockerignore");
    c.build(&["-t", "ign"]);
    let mut files: Vec<String> = c
        .tree("ign")
        .iter()
        .filter(|(p, e)| p.starts_with("/ctx/") && e.kind == 'f')
        .map(|(p, _)| p.replacen("/ctx/", "./", 1))
        .collect();
    files.sort();
    assert_eq!(files, ["./README.md", "./docs/keep.md", "./keep.txt", "./src/main.c"]);
}

#[test]
fn copy_through_symlink() {
    let mut c = Case::new("copy-through-symlink");
    c.effect("mkdir -p /real/dir", "/real/dir", "dir:");
    c.effect("mkdir -p /real/dir", "/link", "symlink:/real/dir");
    c.effect("mkdir -p /real/dir", "/rel", "symlink:../real");
    c.build(&["-t", "sl"]);
    assert_eq!(c.file("sl", "/real/dir/v.txt"), "v");
    assert_eq!(c.file("sl", "/real/dir/w.txt"), "v");
    assert_eq!(c.entry("sl", "/link").unwrap().link, "/real/dir");
}

#[test]
fn copy_from_variable() {
    let mut c = Case::new("copy-from-variable");
    c.effect("built by a", "/out.txt", "built by a");
    c.effect("built by b", "/out.txt", "built by b");
    c.build(&["-t", "fv"]);
    assert_eq!(c.file("fv", "/from-env.txt"), "built by a");
    assert_eq!(c.file("fv", "/from-arg.txt"), "built by b");
    c.build(&["-t", "fv2", "--build-arg", "VARIANT=b", "--build-arg", "PICK=builder-a"]);
    assert_eq!(c.file("fv2", "/from-env.txt"), "built by b");
    assert_eq!(c.file("fv2", "/from-arg.txt"), "built by a");
    c.write(
        "Dockerfile.skip",
        "FROM busybox AS only\nRUN echo only > /o\nFROM busybox AS unused\nRUN exit 1\nFROM busybox\nARG S=only\nCOPY --from=$S /o /o\n",
    );
    c.effect("echo only", "/o", "only");
    let built = c.build(&["-t", "fv3", "-f", "Dockerfile.skip"]);
    assert_eq!(c.file("fv3", "/o"), "only");
    assert!(!built.commands().iter().any(|l| l.contains("exit 1")), "an unneeded stage ran");
}

#[test]
fn multistage() {
    let mut c = Case::new("multistage");
    c.effect("echo built > /out/artifact", "/out/artifact", "built");
    c.effect("echo \"$FROM_BUILD\" > /inherited.txt", "/inherited.txt", "yes");
    let built = c.build(&["-t", "ms"]);
    assert_eq!(c.file("ms", "/by-name"), "built");
    assert_eq!(c.file("ms", "/by-index/artifact"), "built");
    assert_eq!(c.file("ms", "/inherited.txt"), "yes");
    assert!(c.exists("ms", "/from-image/busybox"));
    assert!(super::has_env(built.run_with("/inherited.txt"), "FROM_BUILD=yes"));
    let env = c.inspect("ms")["Config"]["Env"].clone();
    assert!(!env.to_string().contains("FROM_BUILD"), "{env}");
}

#[test]
fn scratch() {
    let c = Case::new("scratch");
    c.write("hello.txt", "from scratch\n");
    c.build(&["-t", "scr"]);
    assert_eq!(c.file("scr", "/hello.txt"), "from scratch");
    let paths: Vec<String> =
        c.tree("scr").keys().filter(|p| p.starts_with("/bin")).cloned().collect();
    assert_eq!(paths, ["/bin", "/bin/busybox"]);
    let d = c.inspect("scr");
    assert_eq!(d["Os"], "linux");
    assert_eq!(d["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
    assert!(d["Config"]["Env"].to_string().contains("ONLY=scratch"));
}

#[test]
fn stdin_context_as_tar() {
    let c = Case::new("stdin-inputs");
    std::fs::create_dir(c.dir.join("ctx")).unwrap();
    std::fs::write(c.dir.join("ctx/in-tar.txt"), "from the tar\n").unwrap();
    std::fs::copy(c.dir.join("Dockerfile"), c.dir.join("ctx/Dockerfile")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", c.dir.join("ctx")).unwrap();
    let bytes = tar.into_inner().unwrap();
    let dir = rbuild_builder::engine::context::extract_tar(c.store(), &bytes[..]).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("in-tar.txt")).unwrap(), "from the tar\n");
    std::fs::remove_dir_all(c.dir.join("ctx")).unwrap();
    std::fs::rename(dir.path(), c.dir.join("ctx")).unwrap();
    c.build(&["-t", "tarctx", "--context", "ctx"]);
    assert_eq!(c.file("tarctx", "/in-tar.txt"), "from the tar");
}

#[test]
fn add_archives() {
    let c = Case::new("add-archives");
    let src = c.dir.join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/file.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink("dir/file.txt", src.join("link")).unwrap();
    let tar_of = |flags: &[&str], name: &str| {
        let ok = std::process::Command::new("tar")
            .args(["-C", src.to_str().unwrap()])
            .args(flags)
            .args([c.dir.join(name).to_str().unwrap(), "."])
            .status()
            .unwrap();
        assert!(ok.success(), "tar {flags:?} {name}");
    };
    tar_of(&["-cf"], "plain.tar");
    tar_of(&["-czf"], "tree.tar.gz");
    tar_of(&["-cjf"], "tree.tar.bz2");
    tar_of(&["-cJf"], "tree.tar.xz");
    tar_of(&["--zstd", "-cf"], "tree.tar.zst");
    c.write("notarchive.gz", "not gzip at all\n");
    if !rbuild_builder::users::is_root() {
        // Without root, files cannot be given to other users: a clear refusal.
        let out = c.build_fails(&["-t", "arch"]);
        assert!(out.contains("ADD --chown to a user other than root needs rbuild to run as root"));
        let text = std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap();
        c.write("Dockerfile", &text.replace("ADD --chown=nobody", "ADD"));
    }
    c.build(&["-t", "arch"]);
    for d in ["plain", "gz", "bz2", "xz", "zst"] {
        assert_eq!(c.file("arch", &format!("/{d}/dir/file.txt")), "inside", "{d}");
        assert_eq!(c.entry("arch", &format!("/{d}/link")).unwrap().link, "dir/file.txt");
    }
    assert_eq!(c.file("arch", "/file/notarchive.gz"), "not gzip at all");
    assert_eq!(c.file("arch", "/as-file-owner/dir/file.txt"), "inside");
}
