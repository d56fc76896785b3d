//! Checking the store (`rbuild fsck`): every blob against its digest, every image's
//! manifest, config and layers, every name against an image, and every layer snapshot
//! against the record written when it was made (`snapshot-records/HEX.json`: its number
//! of entries, bytes and a digest of its listing; a cheap walk of `stat`s), or, with
//! `full`, against the layer extracted again from its blob, content included.
//! `repair` removes what is broken and makes again what can be made: a snapshot is
//! extracted again from its blob; an image whose blobs are gone or corrupt is removed
//! (with its names), since it can no longer be made whole here.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{Digest, ImageConfiguration, ImageManifest};
use sha2::{Digest as _, Sha256};

use super::Store;
use crate::error::{Error, Result};

/// What a layer snapshot holds, in brief: enough to notice a lost, added or changed file
/// without reading any content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeSummary {
    /// Files, folders, links and nodes under the root.
    pub entries: u64,
    /// Bytes in regular files.
    pub bytes: u64,
    /// sha256 of the sorted listing (path, kind, mode, owner, size, device, link target,
    /// and with content, each file's sha256).
    pub listing: String,
}

/// Summarises the tree at `root`, reading file contents when `content`.
pub fn summarize(root: &Path, content: bool) -> io::Result<TreeSummary> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(root.join(&path))?;
            let kind = meta.file_type();
            let mut line = path.as_os_str().as_encoded_bytes().to_vec();
            let (tag, size) = if kind.is_dir() {
                stack.push(path.clone());
                ('d', 0)
            } else if kind.is_file() {
                bytes += meta.len();
                ('f', meta.len())
            } else if kind.is_symlink() {
                ('l', 0)
            } else {
                ('n', 0)
            };
            line.extend_from_slice(
                format!(
                    "\0{tag}\0{:o}\0{}\0{}\0{size}\0{}",
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                    meta.rdev()
                )
                .as_bytes(),
            );
            if kind.is_symlink() {
                line.push(0);
                line.extend_from_slice(
                    fs::read_link(root.join(&path))?.as_os_str().as_encoded_bytes(),
                );
            }
            if content && kind.is_file() {
                let mut hasher = Sha256::new();
                io::copy(&mut fs::File::open(root.join(&path))?, &mut hasher)?;
                line.push(0);
                line.extend_from_slice(hex::encode(hasher.finalize()).as_bytes());
            }
            lines.push(line);
        }
    }
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line);
        hasher.update(b"\n");
    }
    Ok(TreeSummary { entries: lines.len() as u64, bytes, listing: hex::encode(hasher.finalize()) })
}

/// One thing `fsck` found wrong, and what `repair` did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong (a sentence naming the object).
    pub what: String,
    /// What repair did, if it ran and could.
    pub repaired: Option<String>,
}

/// What `fsck` found.
#[derive(Debug, Default, Clone)]
pub struct FsckReport {
    /// Blobs read and checked.
    pub blobs: usize,
    /// Images checked.
    pub images: usize,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// Whether the store is sound now: no problem, or every one repaired.
    pub fn sound(&self) -> bool {
        self.problems.iter().all(|p| p.repaired.is_some())
    }
}

/// Options of [`Store::fsck`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FsckOptions {
    /// Compare each snapshot with its layer extracted again (content included).
    pub full: bool,
    /// Remove or make again what is broken.
    pub repair: bool,
}

impl Store {
    /// The file that records what a snapshot held when it was made.
    pub(crate) fn snapshot_record_path(&self, diff_hex: &str) -> PathBuf {
        self.root.join("snapshot-records").join(format!("{diff_hex}.json"))
    }

    /// Records what the snapshot-to-be at `dir` holds, under the name it will have. Done
    /// before the snapshot is renamed into place, so that a snapshot always has its record.
    pub(crate) fn record_snapshot(&self, dir: &Path, diff_hex: &str) -> Result<()> {
        let summary = summarize(dir, false).map_err(Error::io("summarising", dir))?;
        let bytes = serde_json::to_vec(&summary).map_err(Error::json("snapshot record"))?;
        let records = self.root.join("snapshot-records");
        fs::create_dir_all(&records).map_err(Error::io("creating", records.clone()))?;
        super::write_atomically(&self.tmp_dir(), &self.snapshot_record_path(diff_hex), &bytes)
    }

    /// Checks the whole store; see the module's documentation. Holds the store exclusively
    /// (as garbage collection does) so that nothing changes while it looks.
    pub fn fsck(&self, options: FsckOptions) -> Result<FsckReport> {
        let _gc = self.collector()?;
        let mut report = FsckReport::default();
        // Every blob against its name.
        let mut bad_blobs: HashSet<String> = HashSet::new();
        let blob_dir = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir).map_err(Error::io("listing", blob_dir.clone()))? {
            let entry = entry.map_err(Error::io("listing", blob_dir.clone()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            report.blobs += 1;
            let mut hasher = Sha256::new();
            let read = fs::File::open(entry.path()).and_then(|mut f| io::copy(&mut f, &mut hasher));
            let ok = read.is_ok() && hex::encode(hasher.finalize()) == name;
            if !ok {
                bad_blobs.insert(name.clone());
                let repaired = options
                    .repair
                    .then(|| fs::remove_file(entry.path()).ok().map(|()| "removed".to_string()))
                    .flatten();
                report.problems.push(Problem {
                    what: format!("blob sha256:{name} does not match its digest"),
                    repaired,
                });
            }
        }
        let blob_ok = |d: &Digest| !bad_blobs.contains(d.digest()) && self.blob_path(d).is_file();
        // Every image: manifest, config, layers present and whole.
        let mut layer_of: BTreeMap<String, Digest> = BTreeMap::new();
        let mut broken_images: Vec<(super::ImageEntry, String)> = Vec::new();
        let entries = self.images()?;
        for entry in &entries {
            report.images += 1;
            let manifest_digest = entry.manifest.digest();
            let why = if !blob_ok(manifest_digest) {
                Some(format!("its manifest {manifest_digest} is missing or corrupt"))
            } else {
                match self.read_json::<ImageManifest>(manifest_digest, "manifest") {
                    Err(e) => Some(format!("its manifest does not read: {e}")),
                    Ok(m) if !blob_ok(m.config().digest()) => {
                        Some(format!("its config {} is missing or corrupt", m.config().digest()))
                    }
                    Ok(m) => {
                        match self.read_json::<ImageConfiguration>(m.config().digest(), "config") {
                            Err(e) => Some(format!("its config does not read: {e}")),
                            Ok(c) => {
                                let diff_ids = c.rootfs().diff_ids();
                                let missing = m.layers().iter().find(|l| !blob_ok(l.digest()));
                                if let Some(l) = missing {
                                    Some(format!("its layer {} is missing or corrupt", l.digest()))
                                } else if let Err(e) =
                                    super::check_layer_count(diff_ids.len(), m.layers().len())
                                {
                                    Some(e.to_string())
                                } else {
                                    for (l, d) in m.layers().iter().zip(diff_ids) {
                                        layer_of.insert(
                                            d.trim_start_matches("sha256:").to_string(),
                                            l.digest().clone(),
                                        );
                                    }
                                    None
                                }
                            }
                        }
                    }
                }
            };
            if let Some(why) = why {
                broken_images.push((entry.clone(), why));
            }
        }
        // The build cache's layers can re-make snapshots too.
        // A built layer is a plain tar: its digest is its diff ID.
        for digest in self.cache_blobs() {
            if blob_ok(&digest) {
                layer_of.entry(digest.digest().to_string()).or_insert(digest);
            }
        }
        for (entry, why) in broken_images {
            let names: Vec<String> = entry.names.iter().map(|n| n.to_string()).collect();
            let shown = if names.is_empty() {
                entry.manifest.digest().to_string()
            } else {
                names.join(", ")
            };
            let repaired = if options.repair {
                let digest = entry.manifest.digest().clone();
                self.update_index_exclusive(|m| {
                    m.retain(|d| *d.digest() != digest);
                    Ok(())
                })
                .ok()
                .map(|()| "removed the image (pull or build it again)".to_string())
            } else {
                None
            };
            report.problems.push(Problem { what: format!("image {shown}: {why}"), repaired });
        }
        // Every snapshot against its record, or its layer extracted again.
        let snapshots = self.root.join("snapshots");
        for entry in fs::read_dir(&snapshots).map_err(Error::io("listing", snapshots.clone()))? {
            let entry = entry.map_err(Error::io("listing", snapshots.clone()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            report.snapshots += 1;
            let path = entry.path();
            let why = self.check_snapshot(&path, &name, layer_of.get(&name), options.full)?;
            if let Some(why) = why {
                let repaired = if options.repair {
                    self.remake_snapshot(&name, layer_of.get(&name))
                } else {
                    None
                };
                report.problems.push(Problem { what: format!("snapshot {name}: {why}"), repaired });
            }
        }
        Ok(report)
    }

    /// What is wrong with one snapshot, if anything.
    fn check_snapshot(
        &self,
        path: &Path,
        name: &str,
        layer: Option<&Digest>,
        full: bool,
    ) -> Result<Option<String>> {
        let record: Option<TreeSummary> = fs::read(self.snapshot_record_path(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let now = match summarize(path, full && layer.is_some()) {
            Ok(s) => s,
            Err(e) => return Ok(Some(format!("cannot be read: {e}"))),
        };
        if full {
            if let Some(layer) = layer {
                let fresh = self.snapshot_tempdir()?;
                let made = Digest::from_str(&format!("sha256:{name}"))
                    .map_err(|_| Error::BadArchive(format!("{name} is not a diff ID")))
                    .and_then(|diff_id| self.extract_snapshot(layer, &diff_id, fresh.path()));
                let expected = made.and_then(|()| {
                    summarize(fresh.path(), true).map_err(Error::io("summarising", fresh.path()))
                });
                return Ok(match expected {
                    Err(e) => Some(format!("its layer cannot be extracted again: {e}")),
                    Ok(e) if e != now => Some(format!(
                        "differs from its layer {layer} ({} entries, {} bytes; the layer has {} and {})",
                        now.entries, now.bytes, e.entries, e.bytes
                    )),
                    Ok(_) => None,
                });
            }
        }
        Ok(match record {
            None => {
                Some("has no record of what it held (made by an older rbuild, or half made)".into())
            }
            Some(r) if r != now => Some(format!(
                "holds {} entries and {} bytes, but {} and {} when it was made",
                now.entries, now.bytes, r.entries, r.bytes
            )),
            Some(_) => None,
        })
    }

    /// Removes a broken snapshot and extracts it again when its layer is known.
    fn remake_snapshot(&self, name: &str, layer: Option<&Digest>) -> Option<String> {
        self.remove_snapshot(name).ok()?;
        let Some(layer) = layer else {
            return Some("removed (no layer blob here to make it again)".into());
        };
        let diff = Digest::from_str(&format!("sha256:{name}")).ok()?;
        match self.make_snapshot(layer, &diff) {
            Ok(_) => Some(format!("extracted again from {layer}")),
            Err(e) => Some(format!("removed; extracting it again failed: {e}")),
        }
    }
}
