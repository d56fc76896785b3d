//! rbuild-builder's integration tests: the layer engine against hostile archives and OCI
//! whiteout semantics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use rbuild_builder::snapshot::{apply_layer, ApplyOptions};

mod cases;
mod library;

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

mod round_trip {
    use std::fs;
    use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::process::Command;

    use rbuild_builder::snapshot::{
        apply_layer, diff_trees, overlay_changes, write_layer, ApplyOptions, Change, Compression,
        LayerOptions,
    };

    fn is_root() -> bool {
        fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
    }

    fn write(path: &Path, content: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The base tree: directories, modes, links of both kinds, a deep path.
    fn base_tree(root: &Path) {
        write(&root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644);
        write(&root.join("etc/shadow"), "root:*:1::::::\n", 0o600);
        write(&root.join("bin/busybox"), "#!/fake\n", 0o755);
        fs::hard_link(root.join("bin/busybox"), root.join("bin/sh")).unwrap();
        symlink("busybox", root.join("bin/ls")).unwrap();
        write(&root.join("var/cache/a"), "a", 0o644);
        write(&root.join("var/cache/b"), "b", 0o644);
        write(&root.join("opt/app/config"), "v1", 0o640);
        let deep = "x/".repeat(60) + "leaf";
        write(&root.join("deep").join(deep), "deep", 0o644);
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    }

    /// The changes a RUN might make.
    fn modify(root: &Path) {
        fs::remove_file(root.join("etc/shadow")).unwrap();
        write(
            &root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
            0o644,
        );
        fs::remove_dir_all(root.join("var/cache")).unwrap();
        write(&root.join("var/cache/fresh"), "new", 0o644);
        fs::remove_dir_all(root.join("opt/app")).unwrap();
        write(&root.join("opt/app"), "now a file", 0o600);
        symlink("/etc/passwd", root.join("etc/passwd.link")).unwrap();
        write(&root.join("usr/local/bin/tool"), "tool", 0o4755);
        fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// A comparable listing: path, type, mode, owner, content or link target, and which
    /// paths share an inode.
    pub fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut inodes = std::collections::HashMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut names: Vec<_> =
                fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            for p in names {
                let m = fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let what = if m.file_type().is_symlink() {
                    format!("link -> {}", fs::read_link(&p).unwrap().display())
                } else if m.is_dir() {
                    stack.push(p.clone());
                    "dir".to_string()
                } else if m.file_type().is_char_device() || m.file_type().is_block_device() {
                    // Never read: a device's content is not the layer's.
                    let kind = if m.file_type().is_char_device() { "char" } else { "block" };
                    format!("{kind} device {:x}", m.rdev())
                } else {
                    let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                    let content =
                        rbuild_builder::digest::sha256(&fs::read(&p).unwrap()).to_string();
                    if first == rel {
                        format!("file {content:?}")
                    } else {
                        format!("file {content:?} same inode as {first}")
                    }
                };
                let mode = if m.file_type().is_symlink() { 0 } else { m.mode() & 0o7777 };
                out.push(format!("{rel} {what} mode={mode:o} owner={}:{}", m.uid(), m.gid()));
            }
        }
        out.sort();
        out
    }

    fn apply(blob: &[u8], target: &Path) {
        apply_layer(blob, target, ApplyOptions::default()).unwrap();
    }

    #[test]
    fn tree_compare_round_trip_with_each_compression() {
        for compression in [Compression::None, Compression::Gzip(6), Compression::Zstd(3)] {
            let dirs = tempfile::tempdir().unwrap();
            let (empty, a, b, x) = (
                dirs.path().join("empty"),
                dirs.path().join("a"),
                dirs.path().join("b"),
                dirs.path().join("x"),
            );
            for d in [&empty, &a, &b, &x] {
                fs::create_dir(d).unwrap();
            }
            base_tree(&a);
            assert!(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", a.display()))
                .arg(&b)
                .status()
                .unwrap()
                .success());
            modify(&b);
            let options = LayerOptions { compression, source_date_epoch: None, root_ids: None };

            let mut base = Vec::new();
            let base_blob =
                write_layer(&a, &diff_trees(&empty, &a).unwrap(), options, &mut base).unwrap();
            apply(&base, &x);
            assert_eq!(
                listing(&x),
                listing(&a),
                "{compression:?}: the base layer reproduces the tree"
            );
            assert_eq!(base_blob.size, base.len() as u64);
            assert_eq!(base_blob.digest, rbuild_builder::digest::sha256(&base));

            let changes = diff_trees(&a, &b).unwrap();
            assert!(changes.contains(&Change::Delete("etc/shadow".into())), "{changes:?}");
            let mut top = Vec::new();
            write_layer(&b, &changes, options, &mut top).unwrap();
            apply(&top, &x);
            assert_eq!(
                listing(&x),
                listing(&b),
                "{compression:?}: the diff layer reproduces the change"
            );
        }
    }

    #[test]
    fn equal_trees_give_equal_digests() {
        let dirs = tempfile::tempdir().unwrap();
        let (empty, one, two) =
            (dirs.path().join("empty"), dirs.path().join("one"), dirs.path().join("two"));
        for d in [&empty, &one, &two] {
            fs::create_dir(d).unwrap();
        }
        base_tree(&one);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        base_tree(&two);
        let options = LayerOptions {
            compression: Compression::Gzip(6),
            source_date_epoch: Some(1_000_000_000),
            root_ids: None,
        };
        let blob = |root: &Path| {
            write_layer(root, &diff_trees(&empty, root).unwrap(), options, std::io::sink()).unwrap()
        };
        let (b1, b2) = (blob(&one), blob(&two));
        assert_eq!(
            b1, b2,
            "same content, different times and inodes: clamped times give equal digests"
        );
        let unclamped = LayerOptions { source_date_epoch: None, ..options };
        let d1 = write_layer(&one, &diff_trees(&empty, &one).unwrap(), unclamped, std::io::sink())
            .unwrap();
        assert_ne!(d1.diff_id, b1.diff_id, "without SOURCE_DATE_EPOCH the files' own times count");
    }

    /// A file's capabilities (`security.capability`) and a device node go into the layer
    /// and come back out of it; setting either needs root.
    #[test]
    fn capabilities_and_devices_round_trip() {
        assert!(is_root(), "setting security.capability and mknod need root, as CI has");
        let dirs = tempfile::tempdir().unwrap();
        let (empty, a, x) = (dirs.path().join("e"), dirs.path().join("a"), dirs.path().join("x"));
        for d in [&empty, &a, &x] {
            fs::create_dir(d).unwrap();
        }
        write(&a.join("usr/bin/ping"), "#!/fake\n", 0o755);
        fs::hard_link(a.join("usr/bin/ping"), a.join("usr/bin/ping4")).unwrap();
        // vfs_cap_data version 2, effective, permitted CAP_NET_RAW (13).
        let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
        for word in [1u32 << 13, 0, 0, 0] {
            cap.extend_from_slice(&word.to_le_bytes());
        }
        xattr::set(a.join("usr/bin/ping"), "security.capability", &cap).unwrap();
        let made = Command::new("mknod").arg(a.join("null")).args(["c", "1", "3"]).status();
        assert!(made.unwrap().success(), "mknod failed");
        let options = LayerOptions::default();
        let mut blob = Vec::new();
        write_layer(&a, &diff_trees(&empty, &a).unwrap(), options, &mut blob).unwrap();
        apply(&blob, &x);
        let back = xattr::get(x.join("usr/bin/ping"), "security.capability").unwrap();
        assert_eq!(back.as_deref(), Some(&cap[..]), "the capability comes back");
        assert_eq!(listing(&x), listing(&a));
    }

    /// The overlay path needs overlayfs, which needs root (CI runs as root).
    #[test]
    fn overlay_upper_round_trip() {
        assert!(
            is_root(),
            "this test mounts overlayfs and needs root; run the suite as root, as CI does"
        );
        let dirs = tempfile::tempdir().unwrap();
        let p = |n: &str| dirs.path().join(n);
        for d in ["lower", "upper", "work", "merged", "x", "expected"] {
            fs::create_dir(p(d)).unwrap();
        }
        base_tree(&p("lower"));
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            p("lower").display(),
            p("upper").display(),
            p("work").display()
        );
        let mounted = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(p("merged"))
            .status()
            .unwrap();
        assert!(mounted.success(), "mounting overlayfs failed");
        modify(&p("merged"));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", p("merged").display()))
            .arg(p("expected"))
            .status()
            .unwrap();
        assert!(Command::new("umount").arg(p("merged")).status().unwrap().success());
        assert!(copied.success());

        let changes = overlay_changes(&p("upper")).unwrap();
        assert!(changes.contains(&Change::Delete("etc/shadow".into())), "{changes:?}");
        assert!(changes.contains(&Change::Opaque("var/cache".into())), "{changes:?}");
        let mut base = Vec::new();
        write_layer(
            &p("lower"),
            &diff_trees(&p("x"), &p("lower")).unwrap(),
            LayerOptions::default(),
            &mut base,
        )
        .unwrap();
        apply(&base, &p("x"));
        let mut top = Vec::new();
        write_layer(&p("upper"), &changes, LayerOptions::default(), &mut top).unwrap();
        apply(&top, &p("x"));
        assert_eq!(listing(&p("x")), listing(&p("expected")));
    }
}

/// rbuild's extraction of an image equals umoci's, for the image as umoci made it and as
/// rbuild saved it.
#[test]
fn unpack_matches_umoci() {
    use std::process::Command;

    use rbuild_builder::archive::{load, save, ArchiveFormat};
    use rbuild_builder::store::Store;

    for tool in ["umoci", "skopeo", "busybox"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "this test needs {tool} (Debian packages umoci, skopeo, busybox-static); .ci/run installs them");
    }
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("images");
    let made = Command::new("bash")
        .arg(repo().join("testdata/images/make-busybox.sh"))
        .arg(&images)
        .output()
        .unwrap();
    assert!(made.status.success(), "make-busybox.sh: {}", String::from_utf8_lossy(&made.stderr));
    let store = Store::open(work.path().join("store")).unwrap();
    load(&store, fs::File::open(images.join("busybox-oci.tar")).unwrap()).unwrap();
    let image = store.resolve("busybox").unwrap();
    let ours = work.path().join("ours");
    store.unpack(&image, &ours).unwrap();

    let umoci_unpack = |layout: &Path, bundle: &Path| {
        let out = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", layout.display()))
            .arg(bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
        bundle.join("rootfs")
    };
    let theirs = umoci_unpack(&images.join("layout"), &work.path().join("bundle1"));
    assert_eq!(round_trip::listing(&ours), round_trip::listing(&theirs));
    assert!(round_trip::listing(&ours).len() > 100, "busybox and its applet links");

    let saved = work.path().join("saved.tar");
    save(
        &store,
        &[(image.clone(), image.entry.names.clone())],
        ArchiveFormat::Oci,
        fs::File::create(&saved).unwrap(),
    )
    .unwrap();
    let layout = work.path().join("saved-layout");
    fs::create_dir(&layout).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap()
        .success());
    let theirs = umoci_unpack(&layout, &work.path().join("bundle2"));
    assert_eq!(round_trip::listing(&ours), round_trip::listing(&theirs));
}

/// The hostile layers again, this time inside image archives: `load` takes or refuses
/// each, and unpacking what it took is refused or contained, with nothing written beside
/// the target or the store, and the store still readable.
#[test]
fn hostile_layers_inside_images() {
    use rbuild_builder::archive::load;
    use rbuild_builder::digest::sha256;
    use rbuild_builder::store::Store;
    use std::io::Read;

    let dir = repo().join("testdata/hostile");
    let expectations = fs::read_to_string(dir.join("expectations.txt")).unwrap();
    let outside = Path::new("/tmp/rbuild-hostile-outside");
    for line in expectations.lines() {
        let mut parts = line.splitn(3, ' ');
        let (file, verdict, detail) =
            (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let layer = fs::read(dir.join(file)).unwrap();
        let mut plain = Vec::new();
        let decompressed = rbuild_builder::snapshot::decompress(&layer[..]).and_then(|mut r| {
            r.read_to_end(&mut plain).map_err(|e| rbuild_builder::Error::BadArchive(e.to_string()))
        });
        let diff_id = if decompressed.is_ok() { sha256(&plain) } else { sha256(&layer) };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        }))
        .unwrap();
        let manifest =
            serde_json::to_vec(&serde_json::json!([{"Config": "c.json", "RepoTags": ["hostile:latest"], "Layers": ["l.tar"]}]))
                .unwrap();
        let mut archive = tar::Builder::new(Vec::new());
        for (name, bytes) in [("c.json", &config), ("l.tar", &layer), ("manifest.json", &manifest)]
        {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            archive.append_data(&mut h, name, &bytes[..]).unwrap();
        }
        let archive = archive.into_inner().unwrap();

        let sandbox = tempfile::tempdir().unwrap();
        let store = Store::open(sandbox.path().join("store")).unwrap();
        let root = sandbox.path().join("root");
        match load(&store, &archive[..]) {
            Err(e) => assert!(
                verdict == "refuse",
                "{file}: load refused a layer that should be contained: {e}"
            ),
            Ok(_) => {
                let image = store.resolve("hostile").unwrap();
                let result = store.unpack(&image, &root);
                match verdict {
                    "refuse" => {
                        let err = result.expect_err(file).to_string();
                        assert!(err.contains(detail), "{file}: {err:?} should mention {detail:?}");
                    }
                    _ => {
                        result.unwrap_or_else(|e| panic!("{file}: {e}"));
                        assert!(
                            fs::symlink_metadata(root.join(detail)).is_ok(),
                            "{file}: {detail} missing"
                        );
                    }
                }
            }
        }
        let mut beside: Vec<_> =
            fs::read_dir(sandbox.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        beside.sort();
        beside.retain(|n| n != "root");
        assert_eq!(
            beside,
            vec![std::ffi::OsString::from("store")],
            "{file}: written beside the store and target"
        );
        assert!(!outside.exists(), "{file}: wrote to the host");
        store.images().unwrap();
        // Nothing half-made stays: this process's folder of tmp/ is empty, and nothing
        // else is there but it and its lock file.
        let own = store.tmp_dir();
        assert_eq!(fs::read_dir(&own).unwrap().count(), 0, "{file}: partial blobs");
        let own_name = own.file_name().unwrap().to_string_lossy().into_owned();
        let others: Vec<_> = fs::read_dir(sandbox.path().join("store/tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(&own_name))
            .collect();
        assert!(others.is_empty(), "{file}: partial blobs: {others:?}");
    }
}

/// Layer snapshots stacked by overlayfs give the same tree as a flat unpack; a snapshot
/// is made once. Mounting overlayfs and making whiteouts need root (CI runs as root).
#[test]
fn snapshots_stack_like_a_flat_unpack() {
    use std::process::Command;

    use rbuild_builder::digest::sha256;
    use rbuild_builder::store::Store;

    assert!(
        fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false),
        "this test makes overlay whiteouts and mounts overlayfs: it needs root, as in CI"
    );
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let l1 = layer(&[
        ("a", 'f', "a"),
        ("gone", 'f', "gone"),
        ("d", 'd', ""),
        ("d/x", 'f', "x"),
        ("d/y", 'f', "y"),
        ("keep", 'd', ""),
        ("keep/k", 'f', "k"),
    ]);
    let l2 = layer(&[
        ("d/.wh..wh..opq", 'f', ""),
        ("d/z", 'f', "z"),
        (".wh.gone", 'f', ""),
        ("keep/new", 'f', "n"),
    ]);
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for l in [&l1, &l2] {
        let (digest, size) = store.put_blob(&l[..], None).unwrap();
        diff_ids.push(sha256(l).to_string());
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.to_string(), "size": size}));
    }
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let manifest_digest = store.put_bytes(&manifest).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        manifest.len() as u64,
        manifest_digest,
    );
    store.add_image(&desc, &["stacked".parse().unwrap()]).unwrap();
    let image = store.resolve("stacked").unwrap();

    let flat = work.path().join("flat");
    store.unpack(&image, &flat).unwrap();
    let snaps = store.snapshots(&image).unwrap();
    assert_eq!(snaps.len(), 2);
    fs::write(snaps[0].join("marker-made-once"), b"").unwrap();
    assert_eq!(store.snapshots(&image).unwrap(), snaps, "made once, then shared");
    assert!(snaps[0].join("marker-made-once").exists());
    fs::remove_file(snaps[0].join("marker-made-once")).unwrap();

    let merged = work.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = format!("lowerdir={}:{}", snaps[1].display(), snaps[0].display());
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lower])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting overlayfs failed");
    let stacked = round_trip::listing(&merged);
    assert!(Command::new("umount").arg(&merged).status().unwrap().success());
    assert_eq!(stacked, round_trip::listing(&flat));
    assert!(!flat.join("gone").exists() && !flat.join("d/x").exists() && flat.join("d/z").exists());

    assert_eq!(store.remove_snapshots(false).unwrap(), 0, "snapshots in use are kept");
    store.remove("stacked", false).unwrap();
    assert!(store.remove_snapshots(false).unwrap() > 0);
    assert_eq!(
        fs::read_dir(store.root().join("snapshots")).unwrap().count(),
        0,
        "unused snapshots are removed"
    );
}

/// Every input the store fuzzers (`builder/fuzz/`) ever crashed on, kept in
/// `builder/fuzz/regressions/<target>/`, plus the hostile fixtures the targets start
/// from, replayed through the same calls: none may panic, nothing may be written outside
/// the layer's directory, and a hostile archive is refused.
#[test]
fn fuzz_regressions_and_hostile_inputs_do_not_panic() {
    use rbuild_builder::snapshot::WhiteoutMode;
    use rbuild_builder::store::{FsckOptions, Store};
    let files = |dir: PathBuf| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> =
            fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        out.sort();
        out
    };
    let regressions = repo().join("builder/fuzz/regressions");
    let mut apply_inputs = files(regressions.join("apply"));
    apply_inputs.extend(
        files(repo().join("testdata/hostile"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tar" || e == "gz")),
    );
    assert!(apply_inputs.len() >= 15, "the hostile layers are there: {apply_inputs:?}");
    for input in &apply_inputs {
        let bytes = fs::read(input).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("root");
        fs::create_dir(&target).unwrap();
        for whiteouts in [WhiteoutMode::Overlay, WhiteoutMode::Remove] {
            let _ = apply_layer(
                &bytes[..],
                &target,
                ApplyOptions { whiteouts, ..ApplyOptions::default() },
            );
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "{}: wrote outside",
            input.display()
        );
    }
    let mut load_inputs = files(regressions.join("load"));
    let hostile_archive = repo().join("testdata/hostile/wrong-digest.oci-archive");
    load_inputs.push(hostile_archive.clone());
    for input in &load_inputs {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let loaded = rbuild_builder::archive::load(&store, fs::File::open(input).unwrap());
        if *input == hostile_archive {
            assert!(loaded.is_err(), "a blob that does not match its digest is refused");
        }
        let report = store.fsck(FsckOptions::default()).unwrap();
        assert!(report.problems.is_empty(), "{}: {report:?}", input.display());
    }
    for input in files(regressions.join("image_json")) {
        let data = fs::read(&input).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let (manifest, config) = match data.iter().position(|b| *b == 0xff) {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (&data[..], &[][..]),
        };
        store.put_bytes(config).unwrap();
        let digest = store.put_bytes(manifest).unwrap();
        // Named as a manifest and as an image index, as the fuzz target does.
        store
            .update_index(|entries| {
                for media in [
                    oci_spec::image::MediaType::ImageManifest,
                    oci_spec::image::MediaType::ImageIndex,
                ] {
                    let size = manifest.len() as u64;
                    entries.push(oci_spec::image::Descriptor::new(media, size, digest.clone()));
                }
                Ok(())
            })
            .unwrap();
        for entry in store.images().unwrap_or_default() {
            if let Ok(image) = store.image(&entry) {
                let _ = store.snapshots(&image);
            }
        }
        let _ = store.fsck(FsckOptions::default());
        let _ = store.collect_garbage();
    }
}

/// A hard link entry's header mode applies to the file it links (as containerd and
/// BuildKit unpack it).
#[test]
fn a_hard_link_header_sets_the_mode() {
    use std::os::unix::fs::MetadataExt;
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "a", &b"abc"[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Link);
    l.set_size(0);
    l.set_mode(0o755);
    tar.append_link(&mut l, "b", "a").unwrap();
    let bytes = tar.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&bytes[..], dir.path(), ApplyOptions::default()).unwrap();
    let (a, b) =
        (fs::metadata(dir.path().join("a")).unwrap(), fs::metadata(dir.path().join("b")).unwrap());
    assert_eq!(a.ino(), b.ino(), "one file, two names");
    assert_eq!(b.mode() & 0o7777, 0o755);
}
