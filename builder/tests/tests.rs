//! rbuild-builder's integration tests: the layer engine against hostile archives and OCI
//! whiteout semantics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use rbuild_builder::snapshot::{apply_layer, ApplyOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir`, relative, sorted (links not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_layers_are_refused_or_contained() {
    let dir = repo().join("testdata/hostile");
    let expectations = fs::read_to_string(dir.join("expectations.txt")).unwrap();
    let outside = Path::new("/tmp/rbuild-hostile-outside");
    let victim = Path::new("/tmp/rbuild-hostile-victim");
    let _ = fs::remove_dir_all(outside);
    fs::write(victim, b"must survive").unwrap();
    let mut n = 0;
    for line in expectations.lines() {
        let mut parts = line.splitn(3, ' ');
        let (file, verdict, detail) =
            (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let sandbox = tempfile::tempdir().unwrap();
        let root = sandbox.path().join("root");
        fs::create_dir(&root).unwrap();
        let input = fs::File::open(dir.join(file)).unwrap();
        let result = apply_layer(input, &root, ApplyOptions::default());
        match verdict {
            "refuse" => {
                let err = result.expect_err(file).to_string();
                assert!(err.contains(detail), "{file}: error {err:?} should mention {detail:?}");
            }
            "contain" => {
                result.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(
                    fs::symlink_metadata(root.join(detail)).is_ok(),
                    "{file}: {detail} should be inside the root: {:?}",
                    tree(&root)
                );
            }
            other => panic!("unknown verdict {other}"),
        }
        let beside: Vec<_> =
            fs::read_dir(sandbox.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(
            beside,
            vec![std::ffi::OsString::from("root")],
            "{file}: something was written next to the root"
        );
        assert!(!outside.exists(), "{file}: wrote to the host's {}", outside.display());
        assert!(victim.exists(), "{file}: removed the host's {}", victim.display());
        n += 1;
    }
    let _ = fs::remove_file(victim);
    assert!(n >= 12, "expected at least 12 hostile layers, found {n}");
}

/// Builds a layer tar from (path, kind, content) triples.
fn layer(entries: &[(&str, char, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            'l' => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, data).unwrap();
            }
            'h' => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, path, data).unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o640);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn whiteouts_and_opaque_directories() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let base = layer(&[
        ("etc", 'd', ""),
        ("etc/keep", 'f', "keep"),
        ("etc/gone", 'f', "gone"),
        ("var", 'd', ""),
        ("var/cache", 'd', ""),
        ("var/cache/old1", 'f', "1"),
        ("var/cache/old2", 'f', "2"),
        ("usr", 'd', ""),
        ("usr/lib", 'd', ""),
        ("lib", 'l', "usr/lib"),
        ("bin", 'd', ""),
        ("bin/busybox", 'f', "#!"),
        ("bin/sh", 'h', "bin/busybox"),
    ]);
    apply_layer(&base[..], r, ApplyOptions::default()).unwrap();
    let top = layer(&[
        ("etc/.wh.gone", 'f', ""),
        ("var/cache/.wh..wh..opq", 'f', ""),
        ("var/cache/new", 'f', "n"),
        ("lib/libx.so", 'f', "elf"),
        ("etc/keep", 'f', "changed"),
    ]);
    let report = apply_layer(&top[..], r, ApplyOptions::default()).unwrap();
    assert_eq!(report.whiteouts, 3);
    assert!(!r.join("etc/gone").exists());
    assert_eq!(fs::read_to_string(r.join("etc/keep")).unwrap(), "changed");
    assert_eq!(tree(&r.join("var/cache")), ["new"]);
    assert_eq!(
        fs::read_to_string(r.join("usr/lib/libx.so")).unwrap(),
        "elf",
        "written through the merged-usr link"
    );
    use std::os::unix::fs::MetadataExt;
    let a = fs::metadata(r.join("bin/busybox")).unwrap();
    let b = fs::metadata(r.join("bin/sh")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "hard links stay hard links");
    assert_eq!(a.mode() & 0o777, 0o640);
    assert_eq!(a.mtime(), 1_700_000_000);
    assert_eq!(
        fs::metadata(r.join("usr")).unwrap().mtime(),
        1_700_000_000,
        "directory times are restored last"
    );
}
