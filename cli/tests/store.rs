//! The store under concurrent use and under `kill -9`: two processes loading, tagging and
//! removing at once, and loads killed at random moments, must leave a consistent store.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{busybox_images, ok, rbuild, rbuild_in};

/// Checks the store by hand: every image in index.json has its manifest, config and
/// layers, each blob hashes to its name, and the index parses.
fn check_store(root: &Path) {
    let index: Value = serde_json::from_slice(&fs::read(root.join("index.json")).unwrap())
        .expect("index.json parses");
    let blob = |digest: &str| -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = fs::read(root.join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), hex, "blob {digest} is corrupt");
        bytes
    };
    for entry in index["manifests"].as_array().unwrap() {
        let manifest: Value =
            serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
        blob(manifest["config"]["digest"].as_str().unwrap());
        for layer in manifest["layers"].as_array().unwrap() {
            blob(layer["digest"].as_str().unwrap());
        }
    }
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap().flatten() {
        assert!(
            !e.file_name().to_string_lossy().starts_with('.'),
            "a temporary file among the blobs"
        );
    }
}

#[test]
fn two_processes_load_tag_and_remove_at_once() {
    let images = busybox_images();
    let root = tempfile::tempdir().unwrap();
    let run = |archive: &'static str, prefix: &'static str| {
        let root = root.path().to_path_buf();
        let archive = images.join(archive);
        std::thread::spawn(move || {
            for i in 0..12 {
                ok(&root, &["load", "-q", "-i", archive.to_str().unwrap()]);
                let name = format!("localhost/{prefix}:{i}");
                ok(&root, &["tag", "busybox", &name]);
                ok(&root, &["images", "-q"]);
                ok(&root, &["rmi", &name]);
            }
        })
    };
    let a = run("busybox-docker.tar", "a");
    let b = run("busybox-oci.tar", "b");
    a.join().expect("loop a");
    b.join().expect("loop b");
    check_store(root.path());
    let list = ok(root.path(), &["images"]);
    assert!(list.contains("busybox      latest"), "{list}");
    assert!(!list.contains("localhost/"), "every extra name was removed: {list}");
    ok(root.path(), &["prune"]);
    check_store(root.path());
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

/// A `docker save` archive with one incompressible layer of `mib` MiB (48 lets a load
/// take long enough to be killed in the middle).
pub fn big_archive(path: &Path, mib: usize) {
    let mut data = vec![0u8; mib << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    layer.append_data(&mut h, "big.bin", &data[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    use sha2::Digest;
    let diff_id = hex::encode(sha2::Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "big"}],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex::encode(sha2::Sha256::digest(&config)));
    let manifest =
        serde_json::to_vec(&serde_json::json!([{"Config": config_name, "RepoTags": ["big:latest"], "Layers": ["layer/layer.tar"]}]))
            .unwrap();
    let mut out = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, bytes) in
        [(config_name.as_str(), &config), ("layer/layer.tar", &layer), ("manifest.json", &manifest)]
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    out.into_inner().unwrap().flush().unwrap();
}

#[test]
fn loads_killed_at_random_moments_leave_a_consistent_store() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.tar");
    big_archive(&archive, 48);
    let root = work.path().join("store");
    let mut rng: u64 = 12345;
    for round in 0..10 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(5 + (rng >> 33) % 300);
        let mut child = rbuild()
            .arg("--root")
            .arg(&root)
            .args(["load", "-q", "-i"])
            .arg(&archive)
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // Whatever happened, the store answers and is consistent.
        let images = rbuild_in(&root, &["images", "-q"]);
        assert!(images.status.success(), "round {round} ({delay:?}, {status}): images failed");
        check_store(&root);
        let _ = Command::new("true").status();
    }
    ok(&root, &["prune"]);
    assert_eq!(
        fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "prune clears what killed loads left"
    );
    ok(&root, &["load", "-q", "-i", archive.to_str().unwrap()]);
    check_store(&root);
    let inspect: Value = serde_json::from_str(&ok(&root, &["inspect", "big"])).unwrap();
    assert_eq!(inspect[0]["RepoTags"], serde_json::json!(["big:latest"]));
}

/// What is in `tmp/` and `snapshots/.tmp-*`: the folders of processes (live or dead) and
/// anything else.
fn leftovers(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| format!("tmp/{}", e.file_name().to_string_lossy()))
        .collect();
    out.extend(
        fs::read_dir(root.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .map(|n| format!("snapshots/{n}")),
    );
    out
}

/// Starts `rbuild --root R build --no-cache ARGS` (standard error kept for a failure).
fn spawn_build(r: &Path, args: &[&str]) -> std::process::Child {
    rbuild()
        .arg("--root")
        .arg(r)
        .args(["build", "--no-cache"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ten builds killed (SIGKILL) at moments spread over their COPY of 200 files leave their
/// half-made things behind; the next `rbuild images` removes them all, while a build that
/// is still running keeps its own and finishes.
#[test]
fn leftovers_of_killed_builds_go_with_the_next_rbuild_but_a_live_build_keeps_its_own() {
    use std::os::unix::process::ExitStatusExt;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    ok(r, &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()]);
    let ctx = tempfile::tempdir().unwrap();
    fs::create_dir(ctx.path().join("data")).unwrap();
    for i in 0..200 {
        let body: Vec<u8> = (0..64 * 1024).map(|b| ((b * 31 + i * 7) % 251) as u8).collect();
        fs::write(ctx.path().join("data").join(format!("f{i}")), body).unwrap();
    }
    fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nCOPY data /data\nRUN sleep 2\n")
        .unwrap();
    let context = ctx.path().to_str().unwrap();
    let mut killed_with_leftovers = 0;
    for trial in 0..10u64 {
        let mut child = spawn_build(r, &["--progress", "plain", context]);
        // Moments from the start of the COPY to the RUN: 0 to 450 ms after the build's
        // folder appears.
        let started = std::time::Instant::now();
        while leftovers(r).is_empty() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let wait = Duration::from_millis(trial * 50);
        println!(
            "trial {trial}: SIGKILL {} ms after the build's folder appeared",
            wait.as_millis()
        );
        std::thread::sleep(wait);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.signal().is_some() && !leftovers(r).is_empty() {
            killed_with_leftovers += 1;
        }
    }
    assert!(
        killed_with_leftovers >= 5,
        "the killed builds left something to clean: {killed_with_leftovers}"
    );
    assert!(!leftovers(r).is_empty());

    // A live build, in its RUN (after its COPY made its folder), when `rbuild images` runs.
    let live = spawn_build(r, &["-t", "live", context]);
    let started = std::time::Instant::now();
    let live_dir = format!("tmp/proc-{}-", live.id());
    while !leftovers(r).iter().any(|l| l.starts_with(&live_dir))
        || fs::read_dir(r.join("containers")).unwrap().count() == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the live build did not reach its RUN"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    ok(r, &["images"]);
    let left = leftovers(r);
    assert!(
        left.iter().all(|l| l.starts_with(&live_dir)),
        "only the live build's folder stays: {left:?}"
    );
    assert!(!left.is_empty(), "the live build's folder was not touched");
    let out = live.wait_with_output().unwrap();
    assert!(out.status.success(), "the live build: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(leftovers(r), Vec::<String>::new(), "a build that ends removes its folder");
    check_store(r);
}

/// A store holding busybox and `big` (a RUN layer of 50 files), for the fsck tests.
fn store_with_big() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    ok(r, &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()]);
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN mkdir /data && for i in $(seq 50); do echo $i > /data/f$i; done\n",
    )
    .unwrap();
    ok(r, &["build", "-q", "-t", "big", ctx.path().to_str().unwrap()]);
    root
}

/// The digest (hex) of `name`'s manifest, config and top layer.
fn blobs_of(r: &Path, name: &str) -> (String, String, String) {
    let index: Value = serde_json::from_slice(&fs::read(r.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["annotations"]["io.containerd.image.name"].as_str().is_some_and(|n| n.contains(name))
        })
        .unwrap_or_else(|| panic!("{name} in {index}"));
    let hex = |d: &Value| d.as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest_hex = hex(&entry["digest"]);
    let manifest: Value =
        serde_json::from_slice(&fs::read(r.join("blobs/sha256").join(&manifest_hex)).unwrap())
            .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    (manifest_hex, hex(&manifest["config"]["digest"]), hex(&layers[layers.len() - 1]["digest"]))
}

fn fsck(r: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["fsck"];
    all.extend_from_slice(args);
    let o = rbuild_in(r, &all);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// `rbuild fsck` finds a flipped byte in a blob, a deleted blob, a file deleted from a
/// snapshot, a truncated manifest and a name whose image is gone; `--repair` mends the
/// store so that a second `fsck` is clean and every image left runs with all its files.
#[test]
fn fsck_finds_each_kind_of_damage_and_repair_mends_it() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 5] = [
        (
            "a flipped byte in a layer blob",
            |r| {
                let (_, _, layer) = blobs_of(r, "big");
                let p = r.join("blobs/sha256").join(layer);
                let mut b = fs::read(&p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 1;
                fs::write(&p, b).unwrap();
            },
            "does not match its digest",
        ),
        (
            "a deleted config blob",
            |r| {
                let (_, config, _) = blobs_of(r, "big");
                fs::remove_file(r.join("blobs/sha256").join(config)).unwrap();
            },
            "its config sha256:",
        ),
        (
            "a file deleted from a snapshot",
            |r| {
                let (_, _, layer) = blobs_of(r, "big");
                // A built layer is a plain tar: its digest is its diff ID.
                fs::remove_file(r.join("snapshots").join(layer).join("data/f7")).unwrap();
            },
            "entries and",
        ),
        (
            "a truncated manifest",
            |r| {
                let (manifest, _, _) = blobs_of(r, "big");
                let p = r.join("blobs/sha256").join(manifest);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            "its manifest",
        ),
        (
            "a name whose image is gone",
            |r| {
                let (manifest, _, _) = blobs_of(r, "big");
                fs::remove_file(r.join("blobs/sha256").join(manifest)).unwrap();
            },
            "image docker.io/library/big:latest: its manifest",
        ),
    ];
    for (what, damage, finding) in cases {
        let root = store_with_big();
        let r = root.path();
        assert_eq!(fsck(r, &[]).0, Some(0), "{what}: a sound store first");
        damage(r);
        let (code, out) = fsck(r, &[]);
        assert_eq!(code, Some(1), "{what}: fsck must fail:\n{out}");
        assert!(out.contains(finding), "{what}: fsck should say {finding:?}:\n{out}");
        let (code, out) = fsck(r, &["--repair"]);
        assert_eq!(code, Some(0), "{what}: --repair:\n{out}");
        let (code, out) = fsck(r, &["--full"]);
        assert_eq!(code, Some(0), "{what}: clean after --repair:\n{out}");
        // Every image left runs with all its files.
        let names = ok(r, &["images", "--format", "json"]);
        assert!(names.contains("busybox"), "{what}: busybox stays: {names}");
        if names.contains("big") {
            let n = ok(r, &["run", "big", "sh", "-c", "ls /data | wc -l"]);
            assert_eq!(n.trim(), "50", "{what}: big runs whole");
        }
        assert_eq!(ok(r, &["run", "busybox", "echo", "ok"]).trim(), "ok", "{what}");
    }
}
