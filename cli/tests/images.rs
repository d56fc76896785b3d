//! The image commands against a real image made by umoci and skopeo: load both archive
//! kinds, list, inspect, history, tag, rmi, save (read back by skopeo and umoci), and
//! refusing bad archives while keeping the store consistent.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{busybox_images, ok, rbuild_in, tar_dir, untar};

/// The config digest of the umoci-made image: what every tool must report as its ID.
fn expected_id(images: &Path) -> String {
    let layout = images.join("layout");
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().replace("sha256:", "");
    let manifest: Value = serde_json::from_slice(
        &fs::read(layout.join("blobs/sha256").join(manifest_digest)).unwrap(),
    )
    .unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

fn blob_count(root: &Path) -> usize {
    fs::read_dir(root.join("blobs/sha256")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn loads_archives_made_by_skopeo_and_lists_them() {
    let images = busybox_images();
    let id = expected_id(images);
    for archive in ["busybox-oci.tar", "busybox-docker.tar"] {
        let root = tempfile::tempdir().unwrap();
        let out = ok(root.path(), &["load", "-i", images.join(archive).to_str().unwrap()]);
        assert_eq!(out, "Loaded image: busybox:latest\n", "{archive}");

        let list = ok(root.path(), &["images"]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        assert!(lines[0].starts_with("REPOSITORY   TAG      IMAGE ID       CREATED"), "{list}");
        assert!(lines[1].starts_with(&format!("busybox      latest   {}", &id[7..19])), "{list}");
        assert_eq!(ok(root.path(), &["images", "-q"]).trim(), &id[7..19]);

        let inspect: Value =
            serde_json::from_str(&ok(root.path(), &["inspect", "busybox"])).unwrap();
        let i = &inspect[0];
        assert_eq!(i["Id"], id.as_str(), "{archive}");
        assert_eq!(i["RepoTags"], serde_json::json!(["busybox:latest"]));
        assert_eq!(i["Os"], "linux");
        assert_eq!(i["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
        assert_eq!(i["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
        assert!(i["Size"].as_u64().unwrap() > 500_000);

        let history = ok(root.path(), &["history", "--no-trunc", "busybox"]);
        let rows: Vec<&str> = history.lines().collect();
        assert_eq!(rows.len(), 3, "{history}");
        assert!(
            rows[1].starts_with(&id)
                && rows[1].contains("CMD [\"/bin/sh\"]")
                && rows[1].contains(" 0B "),
            "{history}"
        );
        assert!(
            rows[2].starts_with("<missing>") && rows[2].contains("make-busybox.sh: busybox-static"),
            "{history}"
        );
        assert!(rows[2].contains("MB"), "the layer row shows its size: {history}");
    }
}

#[test]
fn save_is_read_by_skopeo_and_umoci() {
    let images = busybox_images();
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    let docker = work.path().join("docker.tar");
    let oci = work.path().join("oci.tar");
    ok(root.path(), &["save", "-o", docker.to_str().unwrap(), "busybox"]);
    ok(root.path(), &["save", "--format", "oci", "-o", oci.to_str().unwrap(), "busybox:latest"]);
    let id = expected_id(images);
    for source in [
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}:latest", oci.display()),
    ] {
        let out = Command::new("skopeo").args(["inspect", "--config", &source]).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {source}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]), "{source}");
        let raw = Command::new("skopeo").args(["inspect", "--raw", &source]).output().unwrap();
        let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
        assert_eq!(manifest["config"]["digest"], id.as_str(), "{source}");
    }
    // umoci unpacks the saved OCI image.
    let layout = work.path().join("layout");
    untar(&oci, &layout);
    let bundle = work.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(), Path::new("busybox"));
    // The saved archive loads back into an empty store as the same image.
    let again = tempfile::tempdir().unwrap();
    ok(again.path(), &["load", "-i", docker.to_str().unwrap()]);
    let inspect: Value = serde_json::from_str(&ok(again.path(), &["inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
}

#[test]
fn tag_and_rmi() {
    let images = busybox_images();
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-q", "-i", images.join("busybox-docker.tar").to_str().unwrap()]);
    let blobs = blob_count(root.path());
    ok(root.path(), &["tag", "busybox", "localhost:5000/tools/bb:v1"]);
    let list = ok(root.path(), &["images"]);
    assert!(list.contains("localhost:5000/tools/bb   v1"), "{list}");
    let bad = rbuild_in(root.path(), &["tag", "busybox", "Not A Name"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid reference format"));
    assert_eq!(ok(root.path(), &["rmi", "busybox"]), "Untagged: busybox:latest\n");
    assert_eq!(blob_count(root.path()), blobs, "blobs stay while a name is left");
    let out = ok(root.path(), &["rmi", "localhost:5000/tools/bb:v1"]);
    assert!(out.starts_with("Untagged: localhost:5000/tools/bb:v1\nDeleted: sha256:"), "{out}");
    assert_eq!(ok(root.path(), &["images", "-q"]), "");
    assert_eq!(blob_count(root.path()), 0, "the last rmi frees the blobs");
    let missing = rbuild_in(root.path(), &["rmi", "busybox"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such image: busybox"));
}

#[test]
fn bad_archives_are_refused_and_the_store_stays_consistent() {
    let images = busybox_images();
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-q", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    let before = ok(root.path(), &["images", "-q"]);

    // Not an archive at all.
    let junk = work.path().join("junk.tar");
    fs::write(&junk, b"this is not a tar archive at all, just some words").unwrap();
    // A blob whose content does not match its name.
    let layout = work.path().join("layout");
    untar(&images.join("busybox-oci.tar"), &layout);
    let biggest = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&biggest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&biggest, bytes).unwrap();
    let corrupt = work.path().join("corrupt.tar");
    tar_dir(&layout, &corrupt);
    // A truncated archive.
    let full = fs::read(images.join("busybox-docker.tar")).unwrap();
    let truncated = work.path().join("truncated.tar");
    fs::write(&truncated, &full[..full.len() / 2]).unwrap();

    // Valid blobs, but the config's diff ID does not match the layer.
    let wrong_diff = work.path().join("wrong-diff-id.tar");
    {
        let layout = work.path().join("layout2");
        untar(&images.join("busybox-oci.tar"), &layout);
        let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let put = |bytes: &[u8]| -> String {
            use sha2::Digest;
            let hex = hex::encode(sha2::Sha256::digest(bytes));
            fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
            format!("sha256:{hex}")
        };
        let mut index: Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut manifest: Value = serde_json::from_slice(
            &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let mut config: Value = serde_json::from_slice(
            &fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        config["rootfs"]["diff_ids"][0] = Value::from(format!("sha256:{}", "0".repeat(64)));
        let config_bytes = serde_json::to_vec(&config).unwrap();
        manifest["config"]["digest"] = Value::from(put(&config_bytes));
        manifest["config"]["size"] = Value::from(config_bytes.len());
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        index["manifests"][0]["digest"] = Value::from(put(&manifest_bytes));
        index["manifests"][0]["size"] = Value::from(manifest_bytes.len());
        fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        tar_dir(&layout, &wrong_diff);
    }

    for (archive, message) in [
        (&junk, "loading the archive"),
        (&corrupt, "does not match its digest"),
        (&truncated, "loading the archive"),
        (&wrong_diff, "does not match its diff ID"),
        (
            &crate::util::repo().join("testdata/hostile/wrong-digest.oci-archive"),
            "does not match its digest",
        ),
    ] {
        let out = rbuild_in(root.path(), &["load", "-i", archive.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", archive.display());
        assert!(stderr.contains(message), "{}: {stderr}", archive.display());
        assert_eq!(
            fs::read_dir(root.path().join("tmp")).unwrap().count(),
            0,
            "no partial blob is left"
        );
        assert_eq!(ok(root.path(), &["images", "-q"]), before, "the store still lists what it had");
    }
}

#[test]
fn load_reads_gzip_from_stdin_and_du_reports_it() {
    let images = busybox_images();
    let work = tempfile::tempdir().unwrap();
    let gz = work.path().join("busybox.tar.gz");
    let out =
        Command::new("gzip").arg("-c").arg(images.join("busybox-docker.tar")).output().unwrap();
    assert!(out.status.success());
    fs::write(&gz, out.stdout).unwrap();
    let root = work.path().join("store");
    let loaded = crate::util::rbuild()
        .arg("--root")
        .arg(&root)
        .arg("load")
        .stdin(fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert_eq!(String::from_utf8_lossy(&loaded.stdout), "Loaded image: busybox:latest\n");
    let du = ok(&root, &["du"]);
    let images_row =
        du.lines().find(|l| l.starts_with("Images (blobs)")).unwrap_or_else(|| panic!("{du}"));
    assert!(images_row.ends_with("MB"), "{du}");
    assert!(
        du.contains("Unused blobs") && du.contains("Layer snapshots") && du.contains("Build cache"),
        "{du}"
    );
}
