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
use crate::snapshot::{apply_layer, decompress, ApplyOptions, WhiteoutMode};

impl Store {
    /// The snapshot of a layer (blob `layer`, uncompressed digest `diff_id`), extracting it
    /// on first use. The uncompressed stream is checked against `diff_id` on the way.
    /// Creating whiteouts needs root.
    pub fn snapshot(&self, layer: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let _in_use = self.in_use()?;
        let dir = self.root.join("snapshots");
        let dest = dir.join(diff_id.digest());
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&dir)
            .map_err(Error::io("creating a directory in", dir.clone()))?;
        let mut plain = HashingReader::new(decompress(self.open_blob(layer)?)?);
        let options = ApplyOptions { whiteouts: WhiteoutMode::Overlay, ..ApplyOptions::default() };
        apply_layer(&mut plain, tmp.path(), options)?;
        let (actual, _) = plain.finish();
        if actual != *diff_id {
            return Err(Error::DigestMismatch { expected: diff_id.clone(), actual });
        }
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
}
