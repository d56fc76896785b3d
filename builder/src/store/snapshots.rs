//! Layer snapshots: each layer extracted on its own into `snapshots/<diff ID>`, with its
//! whiteouts recorded the way overlayfs reads them, made once and shared by every image
//! and build that uses the layer. Stacked as overlayfs lower directories, they give an
//! image's root file system without copying it.

use std::fs;
use std::path::PathBuf;

use oci_spec::image::Digest;

use super::Store;
use crate::digest::HashingReader;
use crate::error::{Error, Result};
use crate::snapshot::{apply_layer, decompress, ApplyOptions};

impl Store {
    /// The snapshot of a layer (blob `layer`, uncompressed digest `diff_id`), extracting it
    /// on first use. The uncompressed stream is checked against `diff_id` on the way.
    /// Creating whiteouts needs root.
    pub fn snapshot(&self, layer: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let _in_use = self.in_use()?;
        self.make_snapshot(layer, diff_id)
    }

    /// [`Store::snapshot`] for a caller that holds the store already.
    pub(crate) fn make_snapshot(&self, layer: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.root.join("snapshots");
        let dest = dir.join(diff_id.digest());
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = self.snapshot_tempdir()?;
        self.extract_snapshot(layer, diff_id, tmp.path())?;
        self.place_snapshot(tmp, diff_id)
    }

    /// Records the snapshot of `diff_id` extracted into `tmp` and moves it into place.
    fn place_snapshot(&self, tmp: tempfile::TempDir, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.root.join("snapshots").join(diff_id.digest());
        self.record_snapshot(tmp.path(), diff_id.digest())?;
        let made = tmp.keep();
        if let Err(e) = fs::rename(&made, &dest) {
            // Another process made the same snapshot first: use theirs.
            let _ = fs::remove_dir_all(&made);
            if !dest.is_dir() {
                return Err(Error::Io { action: "renaming into", path: dest, source: e });
            }
        }
        Ok(dest)
    }

    /// Starts making the snapshot of `diff_id` from a layer as it arrives (a pull): the
    /// returned stream takes the blob's bytes (compressed or not) while a thread extracts
    /// them, checks the uncompressed stream against `diff_id` and moves the snapshot into
    /// place. `None` when the snapshot exists already.
    pub(crate) fn snapshot_from_stream(
        &self,
        diff_id: &Digest,
    ) -> Result<Option<StreamedSnapshot>> {
        if self.root.join("snapshots").join(diff_id.digest()).is_dir() {
            return Ok(None);
        }
        let tmp = self.snapshot_tempdir()?;
        let (input, reader) = crate::handoff::pipe();
        let (store, diff_id) = (self.clone(), diff_id.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            store.extract_from(reader, &diff_id, tmp.path())?;
            store.place_snapshot(tmp, &diff_id).map(drop)
        });
        Ok(Some(StreamedSnapshot { input, thread }))
    }

    /// Extracts the layer blob `layer` into `dir` as a snapshot (whiteouts as overlayfs
    /// reads them), checking the uncompressed stream against `diff_id` on the way.
    pub(crate) fn extract_snapshot(
        &self,
        layer: &Digest,
        diff_id: &Digest,
        dir: &std::path::Path,
    ) -> Result<()> {
        let file = self.open_blob(layer)?;
        self.extract_from(file, diff_id, dir)
    }

    /// Extracts a layer read from `input` (compressed or not) into `dir`, checking the
    /// uncompressed stream against `diff_id`: decompressed and hashed on one core while
    /// the files are made on another; the hash covers the whole stream, read to its end.
    fn extract_from(
        &self,
        input: impl std::io::Read + Send + 'static,
        diff_id: &Digest,
        dir: &std::path::Path,
    ) -> Result<()> {
        let mut plain = crate::handoff::ReadAhead::spawn(move |out| {
            let mut input = HashingReader::new(
                decompress(input).map_err(|e| std::io::Error::other(crate::error::chain(&e)))?,
            );
            std::io::copy(&mut input, out)?;
            Ok(input.finish())
        });
        let options = ApplyOptions { whiteouts: self.whiteout_mode(), ..ApplyOptions::default() };
        apply_layer(&mut plain, dir, options)?;
        let (actual, _) = plain.finish().map_err(Error::io("reading the layer of", dir))?;
        if actual != *diff_id {
            return Err(Error::DigestMismatch { expected: diff_id.clone(), actual });
        }
        Ok(())
    }

    /// Removes the snapshot `snapshots/<hex>`: renamed aside first (so it is whole under
    /// its name, or gone), then its record.
    pub(crate) fn remove_snapshot(&self, hex: &str) -> std::io::Result<()> {
        self.remove_dir_aside(&self.root.join("snapshots").join(hex))?;
        let _ = fs::remove_file(self.snapshot_record_path(hex));
        Ok(())
    }

    /// The snapshots of an image's layers, lowest first.
    pub fn snapshots(&self, image: &super::Image) -> Result<Vec<PathBuf>> {
        let diff_ids = image.config.rootfs().diff_ids();
        image
            .manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| {
                let diff_id: Digest = diff_id
                    .parse()
                    .map_err(|_| Error::BadArchive(format!("invalid diff ID {diff_id}")))?;
                self.snapshot(layer.digest(), &diff_id)
            })
            .collect()
    }

    /// A new, empty directory in this process's [`Store::tmp_dir`] (on the snapshots'
    /// file system), to become a snapshot with [`Store::adopt_snapshot`] (removed when
    /// dropped, or by the next rbuild after a crash).
    pub fn snapshot_tempdir(&self) -> Result<tempfile::TempDir> {
        let dir = self.tmp_dir();
        tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(&dir)
            .map_err(Error::io("creating a directory in", dir))
    }

    /// Makes `dir` (on the store's file system) the snapshot of the layer `diff_id`, by
    /// renaming it; when that snapshot exists already, `dir` is left as it is.
    pub fn adopt_snapshot(&self, dir: &std::path::Path, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.root.join("snapshots").join(diff_id.digest());
        if dest.is_dir() {
            return Ok(dest);
        }
        self.record_snapshot(dir, diff_id.digest())?;
        if let Err(e) = fs::rename(dir, &dest) {
            if !dest.is_dir() {
                return Err(Error::Io { action: "renaming into", path: dest, source: e });
            }
        }
        Ok(dest)
    }

    /// Moves `dir`, a directory whose snapshot record is written already (see
    /// [`Store::adopt_snapshot`]), into place as the snapshot of `diff_id`. When that
    /// snapshot exists already, `dir` stays and is returned, for the caller to remove.
    pub(crate) fn adopt_recorded_snapshot(
        &self,
        dir: &std::path::Path,
        diff_id: &Digest,
    ) -> Result<Option<std::path::PathBuf>> {
        let dest = self.root.join("snapshots").join(diff_id.digest());
        if !dest.is_dir() {
            match fs::rename(dir, &dest) {
                Ok(()) => return Ok(None),
                Err(e) if !dest.is_dir() => {
                    return Err(Error::Io { action: "renaming into", path: dest, source: e })
                }
                Err(_) => {}
            }
        }
        Ok(Some(dir.to_path_buf()))
    }

    /// Where sandboxes keep their directories while they run.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The manifests containers were made from (see [`crate::container::Record`]).
    pub(crate) fn container_manifests(&self) -> Vec<oci_spec::image::Descriptor> {
        let Ok(entries) = fs::read_dir(self.containers_dir()) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let text = fs::read(e.path().join(crate::container::record::RECORD)).ok()?;
                let record: crate::container::Record = serde_json::from_slice(&text).ok()?;
                Some(record.manifest)
            })
            .collect()
    }

    /// Removes the directories of sandboxes whose rbuild process is gone (killed): a
    /// build's RUN steps. Containers (folders with a record) stay, their state made true
    /// (one whose supervisor was killed is marked exited, its cgroups removed).
    pub fn clean_containers(&self) {
        let Ok(entries) = fs::read_dir(self.containers_dir()) else { return };
        for e in entries.flatten() {
            if e.path().join(crate::container::record::RECORD).exists() {
                let id = e.file_name().to_string_lossy().into_owned();
                if let Ok(record) = crate::container::record::load(self, &id) {
                    let _ = crate::container::record::refresh(self, record);
                }
                continue;
            }
            let pid = fs::read_to_string(e.path().join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            let alive = match pid {
                Some(p) => std::path::Path::new(&format!("/proc/{p}")).exists(),
                // Made a moment ago by a process that has not written its pid yet.
                None => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().map_or(true, |age| age.as_secs() < 60)),
            };
            if !alive {
                let _ = super::remove_tree(&e.path());
                crate::sandbox::remove_stale_cgroups(&e.file_name().to_string_lossy());
            }
        }
    }
}

/// A snapshot being made from a layer as it arrives; see [`Store::snapshot_from_stream`].
pub(crate) struct StreamedSnapshot {
    /// Where the layer's bytes go.
    pub input: crate::handoff::Produced,
    thread: std::thread::JoinHandle<Result<()>>,
}

impl StreamedSnapshot {
    /// Ends the layer's bytes and waits for the snapshot. The extraction's error, if it
    /// failed, comes first (a writer that could no longer send learns why here).
    pub fn finish(mut self) -> Result<()> {
        use std::io::Write;
        let flushed = self.input.flush();
        drop(self.input);
        self.thread.join().unwrap_or_else(|_| Err(Error::Panicked("a layer-unpacking thread")))?;
        flushed.map_err(Error::io("unpacking", "a pulled layer"))
    }
}
