//! The store under SIGKILL: each operation that changes the store is killed at moments
//! spread over its whole duration (20 trials each, every moment printed); after each,
//! `rbuild fsck` passes, or `fsck --repair` mends the store so that a second `fsck`
//! passes. Either way every image left runs with all of its files (their checksums
//! compared with the originals): no silent loss.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::registry::Registry;
use crate::util::{busybox_images, ok, rbuild, rbuild_in};

/// The files every test image holds under /data: 200 of them.
fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rbuild-crash-data-{}", std::process::id()));
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap();
        for i in 0..200usize {
            let body: Vec<u8> = (0..16 * 1024).map(|b| ((b * 13 + i * 7) % 253) as u8).collect();
            fs::write(data.join(format!("f{i:03}")), body).unwrap();
        }
        fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY data /data\n").unwrap();
        dir
    })
}

/// What `md5sum` says of every file under /data, as the images must show it.
const LISTING: &str = "cd /data 2>/dev/null && find . -type f | sort | xargs md5sum";

fn expected_listing() -> &'static str {
    static OUT: OnceLock<String> = OnceLock::new();
    OUT.get_or_init(|| {
        let o = Command::new("sh")
            .arg("-c")
            .arg(LISTING.replace("/data", "data"))
            .current_dir(data_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(text.lines().count(), 200);
        text
    })
}

/// The store every trial starts from: busybox, `big` (busybox + /data), an untagged image,
/// a build cache; and `big` saved as an archive.
struct Template {
    store: tempfile::TempDir,
    archive: PathBuf,
    _work: tempfile::TempDir,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let store = tempfile::tempdir().unwrap();
        let r = store.path();
        ok(r, &["load", "-q", "-i", busybox_images().join("busybox-oci.tar").to_str().unwrap()]);
        let ctx = data_dir().to_str().unwrap();
        ok(r, &["build", "-q", "-t", "big", ctx]);
        // An untagged image (for prune), and a second cache record.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("Dockerfile"), "FROM busybox\nRUN echo untagged > /u\n")
            .unwrap();
        ok(r, &["build", "-q", other.path().to_str().unwrap()]);
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("big.tar");
        ok(r, &["save", "-o", archive.to_str().unwrap(), "big"]);
        Template { store, archive, _work: work }
    })
}

/// Every image in the store runs, and shows /data whole (or, for busybox, no /data).
fn assert_images_whole(r: &Path, context: &str) {
    let listing = ok(r, &["images", "--format", "json"]);
    let list: Vec<Value> = listing.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for image in &list {
        let id = image["ID"].as_str().unwrap();
        let o = rbuild_in(r, &["run", "--network", "none", id, "sh", "-c", LISTING]);
        assert!(
            o.status.success() || o.stdout.is_empty(),
            "{context}: image {id} does not run: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.is_empty() || out == expected_listing(),
            "{context}: image {id} lost files:\n{out}"
        );
        if out.is_empty() {
            let o = rbuild_in(r, &["run", "--network", "none", id, "/bin/busybox", "true"]);
            assert!(o.status.success(), "{context}: image {id} does not run");
        }
    }
}

fn copy_store(to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(template().store.path())
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "copying the template store");
}

/// A copy of the template store at `to`, with the `prepare` commands run on it.
fn prepared_store(to: &Path, prepare: &[&[&str]]) {
    copy_store(to);
    for args in prepare {
        ok(to, args);
    }
}

/// Runs `args` on a prepared copy of the template store, 20 times, killed at moments
/// spread over its duration (measured first, unkilled); checks the store after each.
fn crash_test(name: &str, prepare: &[&[&str]], args: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    // Unkilled runs for the duration: the shortest of three (one run slowed by the tests
    // beside it would spread the moments past the end of every other run).
    let mut duration = Duration::MAX;
    for run in 0..3 {
        let store = work.path().join(format!("measure{run}"));
        prepared_store(&store, prepare);
        let started = Instant::now();
        ok(&store, args);
        duration = duration.min(started.elapsed());
        assert_images_whole(&store, &format!("{name}, not killed"));
        let _ = fs::remove_dir_all(&store);
    }
    let duration = duration.max(Duration::from_millis(20));
    let mut killed = 0;
    for trial in 0..20u32 {
        let store = work.path().join(format!("trial{trial}"));
        prepared_store(&store, prepare);
        // Spread over the whole duration, from its start to its end.
        let moment = duration.mul_f64(f64::from(trial) / 20.0);
        let mut child = rbuild()
            .arg("--root")
            .arg(&store)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(moment);
        let ended_first = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !ended_first {
            killed += 1;
        }
        println!(
            "{name}: trial {trial}: SIGKILL at {} ms of {} ms{}",
            moment.as_millis(),
            duration.as_millis(),
            if ended_first { " (it had ended)" } else { "" }
        );
        let context = format!("{name}, trial {trial} (killed at {} ms)", moment.as_millis());
        let check = rbuild_in(&store, &["fsck"]);
        if !check.status.success() {
            let repair = rbuild_in(&store, &["fsck", "--repair"]);
            assert!(
                repair.status.success(),
                "{context}: fsck --repair failed:\n{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&repair.stdout)
            );
            let again = rbuild_in(&store, &["fsck"]);
            assert!(
                again.status.success(),
                "{context}: fsck after --repair:\n{}",
                String::from_utf8_lossy(&again.stdout)
            );
        }
        assert_images_whole(&store, &context);
        // busybox is never lost by these operations (but rmi of big, pruning).
        let list = ok(&store, &["images"]);
        assert!(list.contains("busybox"), "{context}: busybox is gone:\n{list}");
        let _ = fs::remove_dir_all(&store);
    }
    // A short operation may end before a late moment in some trials (process start-up
    // varies); most of the moments must still catch it midway.
    assert!(killed >= 5, "{name}: too few trials killed the operation midway: {killed}");
}

/// Takes `big` and everything only it uses out of the store, so that pulling or loading
/// it writes them again.
const WITHOUT_BIG: &[&[&str]] = &[&["rmi", "big"], &["prune", "--all", "--build-cache"]];

#[test]
fn crash_prune() {
    crash_test("prune", &[], &["prune"]);
}

#[test]
fn crash_prune_all() {
    crash_test("prune --all", &[], &["prune", "--all"]);
}

#[test]
fn crash_prune_build_cache() {
    crash_test("prune --build-cache", &[], &["prune", "--build-cache"]);
}

#[test]
fn crash_rmi() {
    crash_test("rmi", &[], &["rmi", "big"]);
}

#[test]
fn crash_build_with_a_200_file_copy() {
    let ctx = data_dir().to_str().unwrap();
    crash_test("build", &[], &["build", "--no-cache", "-q", "-t", "copy", ctx]);
}

#[test]
fn crash_pull() {
    let registry = Registry::start();
    let image = format!("{}/crash/big:1", registry.host);
    ok(template().store.path(), &["push", "-q", "big", &image]);
    crash_test("pull", WITHOUT_BIG, &["pull", "-q", &image]);
}

#[test]
fn crash_push() {
    let registry = Registry::start();
    let image = format!("{}/crash/pushed:1", registry.host);
    crash_test("push", &[], &["push", "-q", "big", &image]);
}

#[test]
fn crash_load() {
    let archive = template().archive.to_str().unwrap().to_string();
    crash_test("load", WITHOUT_BIG, &["load", "-q", "-i", &archive]);
}
