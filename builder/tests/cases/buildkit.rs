//! Behaviours where rbuild now does what BuildKit v0.13 does (issue 15's list of
//! divergences), each checked on the image the library builds.

use serde_json::json;

use super::{has_env, owner_mode, Case};

/// Makes `RUN add-app-user` write an `/etc/passwd` with the user app (1000, group 1001).
fn add_app_user(c: &mut Case) {
    c.effect(
        "add-app-user",
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh",
    );
}

#[test]
fn a_wildcard_matching_one_file_names_the_destination() {
    let c = Case::inline(&[
        ("Dockerfile", "FROM busybox\nCOPY app-*.conf /etc/app.conf\n"),
        ("app-1.conf", "one\n"),
    ]);
    c.build(&["-t", "w"]);
    assert_eq!(c.entry("w", "/etc/app.conf").unwrap().kind, 'f');
    assert_eq!(c.file("w", "/etc/app.conf"), "one");
}

#[test]
fn a_wildcard_matching_several_files_still_needs_a_directory() {
    let c = Case::inline(&[
        ("Dockerfile", "FROM busybox\nCOPY *.txt /dst\n"),
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
    ]);
    let out = c.build_fails(&["-t", "w"]);
    assert!(out.contains("the destination must be a directory and end with a /"), "{out}");
}

#[test]
fn a_wildcard_matching_nothing_copies_nothing() {
    let c = Case::inline(&[
        ("Dockerfile", "FROM busybox\nCOPY *.none /dst/\nCOPY *.none real.txt /both/\n"),
        ("real.txt", "real\n"),
    ]);
    c.build(&["-t", "w"]);
    assert!(!c.exists("w", "/dst"), "no match makes no destination (an empty layer)");
    assert_eq!(c.ls("w", "/both"), ["real.txt"]);
}

#[test]
fn copy_from_a_stage_expands_wildcards_and_keeps_link_names() {
    let mut c = Case::inline(&[(
        "Dockerfile",
        "FROM busybox AS base\nRUN make-outputs\nFROM busybox\nCOPY --from=base /out/app* /dst/\nCOPY --from=base /bin/sh /bin2/\nCOPY --from=base /out/none* /empty/\n",
    )]);
    c.effect("make-outputs", "/out/app-1", "1");
    c.effect("make-outputs", "/out/app-2", "2");
    c.effect("make-outputs", "/out/other", "x");
    c.build(&["-t", "f"]);
    assert_eq!(c.ls("f", "/dst"), ["app-1", "app-2"]);
    // /bin/sh is a link to busybox: the copy is the file, under the name `sh`.
    let sh = c.entry("f", "/bin2/sh").unwrap();
    assert_eq!(sh.kind, 'f');
    assert!(!c.exists("f", "/bin2/busybox"));
}

#[test]
fn chown_without_a_group_takes_the_primary_group() {
    let mut c = Case::inline(&[
        ("Dockerfile", "FROM busybox\nRUN add-app-user\nCOPY --chown=app f /named\nCOPY --chown=${UNSET}:${UNSET} f /nobody-named\n"),
        ("f", "f\n"),
    ]);
    add_app_user(&mut c);
    if !rbuild_builder::users::is_root() {
        // Without root, files cannot be given to other users: a clear refusal.
        let out = c.build_fails(&["-t", "o"]);
        assert!(out.contains("needs rbuild to run as root"), "{out}");
        return;
    }
    c.build(&["-t", "o"]);
    let named = c.entry("o", "/named").unwrap();
    assert_eq!((named.uid, named.gid), (1000, 1001));
    assert_eq!(owner_mode(&c.entry("o", "/nobody-named").unwrap()).0, 0);
    assert_eq!(c.entry("o", "/nobody-named").unwrap().gid, 0);
}

#[test]
fn run_has_no_hostname_variable_and_an_empty_from_is_the_context() {
    let c = Case::inline(&[
        ("Dockerfile", "FROM busybox\nRUN --mount=type=bind,from=,source=f,target=/f cat /f\n"),
        ("f", "f\n"),
    ]);
    let built = c.build(&["-t", "h"]);
    let run = built.run_with("cat /f");
    assert!(!run.env.iter().any(|e| e.starts_with("HOSTNAME=")), "{:?}", run.env);
    assert!(run.volumes.iter().any(|v| v.target == "/f"), "the context's f is bound");
    assert!(!has_env(run, "HOSTNAME="));
}

#[test]
fn empty_exec_forms_leave_cmd_and_entrypoint_null() {
    let c = Case::inline(&[("Dockerfile", "FROM busybox\nENTRYPOINT []\nCMD []\n")]);
    c.build(&["-t", "e"]);
    let config = c.inspect("e")["Config"].clone();
    assert_eq!(config.get("Entrypoint").cloned().unwrap_or(json!(null)), json!(null));
    assert_eq!(config.get("Cmd").cloned().unwrap_or(json!(null)), json!(null));
}

#[test]
fn a_scratch_stage_has_the_root_as_working_directory() {
    let c = Case::inline(&[("Dockerfile", "FROM scratch\nLABEL a=b\n")]);
    c.build(&["-t", "s"]);
    assert_eq!(c.inspect("s")["Config"]["WorkingDir"], json!("/"));
}

#[test]
fn new_parents_and_workdirs_belong_to_the_step_owner() {
    let mut c = Case::inline(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN add-app-user\nCOPY --chown=1234:5678 f /new/parent/f\nUSER app\nWORKDIR /srv/app\n",
        ),
        ("f", "f\n"),
    ]);
    add_app_user(&mut c);
    if !rbuild_builder::users::is_root() {
        let out = c.build_fails(&["-t", "p"]);
        assert!(out.contains("needs rbuild to run as root"), "{out}");
        return;
    }
    c.build(&["-t", "p"]);
    for dir in ["/new", "/new/parent"] {
        let e = c.entry("p", dir).unwrap();
        assert_eq!((e.uid, e.gid), (1234, 5678), "{dir}");
    }
    let srv = c.entry("p", "/srv").unwrap();
    let app = c.entry("p", "/srv/app").unwrap();
    assert_eq!((srv.uid, srv.gid, app.uid, app.gid), (1000, 1001, 1000, 1001));
}

#[test]
fn an_empty_directory_makes_its_destination() {
    let c = Case::inline(&[("Dockerfile", "FROM busybox\nCOPY empty /made\n"), ("empty/", "")]);
    c.build(&["-t", "d"]);
    assert_eq!(c.entry("d", "/made").map(|e| e.kind), Some('d'));
}

#[test]
fn add_copies_a_compressed_file_that_is_no_tar_as_it_is() {
    let c = Case::inline(&[("Dockerfile", "FROM busybox\nADD notes.gz /n/\n")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"just some text, not a tar\n").unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(c.dir.join("notes.gz"), &bytes).unwrap();
    c.build(&["-t", "g"]);
    assert_eq!(c.entry("g", "/n/notes.gz").unwrap().data, bytes);
}

#[test]
fn a_stage_from_a_stage_inherits_its_args() {
    let c = Case::inline(&[(
        "Dockerfile",
        "FROM busybox AS base\nARG V=from-base\nFROM base\nRUN echo \"$V\" > /v\n",
    )]);
    let built = c.build(&["-t", "a"]);
    assert!(has_env(built.run_with("/v"), "V=from-base"));
    let history = c.inspect("a")["History"].clone();
    let last = history.as_array().unwrap().last().unwrap()["created_by"].clone();
    // Its environment, not its history: BuildKit lists the ARGs the stage declared.
    assert_eq!(last, json!("RUN /bin/sh -c echo \"$V\" > /v # buildkit"));
}

#[test]
fn dockerignore_patterns_as_buildkit_reads_them() {
    let c = Case::inline(&[
        (".dockerignore", "**/tmp\nsubdir\n!*/sub1*\n"),
        ("Dockerfile", "FROM busybox\nCOPY x /x/\nCOPY subdir ./s/\n"),
        ("x/y/tmp/h", "hidden\n"),
        ("x/y/kept", "kept\n"),
        ("subdir/sub1.txt", "one\n"),
        ("subdir/sub2.txt", "two\n"),
    ]);
    c.build(&["-t", "i"]);
    assert!(!c.exists("i", "/x/y/tmp/h"), "**/tmp excludes at any depth");
    assert_eq!(c.file("i", "/x/y/kept"), "kept");
    assert_eq!(c.ls("i", "/s"), ["sub1.txt"], "the exception re-includes sub1.txt only");
}

#[test]
fn hard_links_of_the_context_stay_one_file() {
    let c =
        Case::inline(&[("Dockerfile", "FROM busybox\nCOPY data/ /data/\n"), ("data/a", "same\n")]);
    std::fs::hard_link(c.dir.join("data/a"), c.dir.join("data/b")).unwrap();
    c.build(&["-t", "l"]);
    let (a, b) = (c.entry("l", "/data/a").unwrap(), c.entry("l", "/data/b").unwrap());
    // The layer holds the file once and a hard link to it.
    assert_eq!((a.kind, b.kind), ('f', 'h'), "{a:?} {b:?}");
    assert_eq!(b.link.trim_start_matches('/'), "data/a");
}

#[test]
fn history_entries_are_written_as_buildkit_writes_them() {
    let c = Case::inline(&[
        (
            "Dockerfile",
            "FROM busybox\nEXPOSE 80 53/udp\nVOLUME /data\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nENTRYPOINT [\"/bin/echo\", \"entry\"]\nCMD echo \"hi\"\nONBUILD RUN true\nCOPY --from=busybox --chmod=755 /bin/busybox /bb\n",
        ),
    ]);
    c.build(&["-t", "h"]);
    let d = c.inspect("h");
    let by: Vec<String> = d["History"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str().map(str::to_string))
        .collect();
    let base = c.inspect("busybox")["History"].as_array().unwrap().len();
    assert_eq!(
        by[base..],
        [
            "EXPOSE map[53/udp:{} 80/tcp:{}]",
            "VOLUME [/data]",
            "SHELL [/bin/sh -e -c]",
            "ENTRYPOINT [\"/bin/echo\" \"entry\"]",
            "CMD [\"/bin/sh\" \"-e\" \"-c\" \"echo \\\"hi\\\"\"]",
            "COPY --chmod=755 /bin/busybox /bb # buildkit",
        ]
    );
    assert_eq!(d["Config"]["ArgsEscaped"], json!(true));
}
