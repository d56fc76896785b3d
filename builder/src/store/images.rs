//! Images in the store: names, resolution, tagging, removal and garbage collection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest};

use super::{Store, NAME_ANNOTATION, REF_ANNOTATION};
use crate::error::{Error, Result};
use crate::reference::Reference;

/// One image of the store: its manifest descriptor and the names pointing at it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// Names (references) of this image; empty for an untagged image.
    pub names: Vec<Reference>,
}

/// An image with its manifest and configuration read.
#[derive(Debug, Clone)]
pub struct Image {
    /// The index entry.
    pub entry: ImageEntry,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The configuration.
    pub config: ImageConfiguration,
}

impl Image {
    /// The image ID: the digest of its configuration, as Docker shows it.
    pub fn id(&self) -> &Digest {
        self.manifest.config().digest()
    }
}

/// What `remove` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoveReport {
    /// Names removed.
    pub untagged: Vec<Reference>,
    /// Image IDs (config digests) whose last name went, so the image was deleted.
    pub deleted: Vec<Digest>,
}

/// Bytes in the files under `path`, without following symbolic links.
pub(crate) fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            stack.extend(fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else {
            total += meta.len();
        }
    }
    total
}

fn entry_name(d: &Descriptor) -> Option<Reference> {
    let annotations = d.annotations().as_ref()?;
    let name = annotations.get(NAME_ANNOTATION)?;
    Reference::parse(name).ok()
}

fn named_descriptor(manifest: &Descriptor, name: Option<&Reference>) -> Descriptor {
    let mut d =
        Descriptor::new(manifest.media_type().clone(), manifest.size(), manifest.digest().clone());
    if let Some(name) = name {
        let mut annotations = HashMap::new();
        annotations.insert(NAME_ANNOTATION.to_string(), name.to_string());
        if let Some(tag) = name.tag() {
            annotations.insert(REF_ANNOTATION.to_string(), tag.to_string());
        }
        d.set_annotations(Some(annotations));
    }
    d
}

impl Store {
    /// Every image, grouped by manifest, in index order.
    pub fn images(&self) -> Result<Vec<ImageEntry>> {
        let mut order: Vec<Digest> = Vec::new();
        let mut by_digest: HashMap<Digest, ImageEntry> = HashMap::new();
        for d in self.index()? {
            let entry = by_digest.entry(d.digest().clone()).or_insert_with(|| {
                order.push(d.digest().clone());
                ImageEntry { manifest: named_descriptor(&d, None), names: Vec::new() }
            });
            if let Some(name) = entry_name(&d) {
                if !entry.names.contains(&name) {
                    entry.names.push(name);
                }
            }
        }
        Ok(order.into_iter().filter_map(|d| by_digest.remove(&d)).collect())
    }

    /// Reads an image's manifest and configuration.
    pub fn image(&self, entry: &ImageEntry) -> Result<Image> {
        let manifest: ImageManifest = self.read_json(entry.manifest.digest(), "manifest")?;
        let config: ImageConfiguration =
            self.read_json(manifest.config().digest(), "image config")?;
        Ok(Image { entry: entry.clone(), manifest, config })
    }

    /// Finds an image by name (`busybox`, `x:1`), full digest reference, manifest digest,
    /// or image ID (config digest, `sha256:` optional, at least 4 hex characters).
    pub fn resolve(&self, what: &str) -> Result<Image> {
        let images = self.images()?;
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        let looks_like_id =
            hex.len() >= 4 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if looks_like_id {
            let mut found: Vec<Image> = Vec::new();
            for entry in &images {
                let image = self.image(entry)?;
                let id_match = image.id().digest().starts_with(hex);
                let manifest_match =
                    what.starts_with("sha256:") && entry.manifest.digest().digest() == hex;
                if (id_match || manifest_match) && !found.iter().any(|f| f.id() == image.id()) {
                    found.push(image);
                }
            }
            match found.len() {
                1 => return found.pop().ok_or_else(|| Error::NoSuchImage(what.to_string())),
                0 => {}
                _ => return Err(Error::AmbiguousImage(what.to_string())),
            }
        }
        let reference = Reference::parse(what).map_err(|_| Error::NoSuchImage(what.to_string()))?;
        for entry in &images {
            let by_name = entry.names.contains(&reference);
            let by_digest =
                reference.digest().is_some_and(|d| entry.manifest.digest().to_string() == d)
                    && entry.names.iter().any(|n| n.repository() == reference.repository());
            if by_name || by_digest {
                return self.image(entry);
            }
        }
        Err(Error::NoSuchImage(what.to_string()))
    }

    /// Records an image (its manifest and everything it refers to must be stored already)
    /// under `names`, moving each name from any image that had it.
    pub fn add_image(&self, manifest: &Descriptor, names: &[Reference]) -> Result<()> {
        // Held from the check to the update, so no collection can remove a blob between.
        let _writer = self.in_use()?;
        self.check_complete(manifest.digest())?;
        self.update_index(|entries| {
            // An image whose last name moves to this one stays, untagged (dangling), as
            // docker keeps it: `images --filter dangling=true` lists it, `prune` removes it.
            let displaced: Vec<Descriptor> = entries
                .iter()
                .filter(|d| d.digest() != manifest.digest())
                .filter(|d| entry_name(d).is_some_and(|n| names.contains(&n)))
                .cloned()
                .collect();
            entries.retain(|d| match entry_name(d) {
                Some(n) => !names.contains(&n),
                None => d.digest() != manifest.digest(),
            });
            for old in displaced {
                if !entries.iter().any(|d| d.digest() == old.digest()) {
                    entries.push(named_descriptor(&old, None));
                }
            }
            let has_named = entries.iter().any(|d| d.digest() == manifest.digest());
            if names.is_empty() {
                if !has_named {
                    entries.push(named_descriptor(manifest, None));
                }
            } else {
                entries.extend(names.iter().map(|n| named_descriptor(manifest, Some(n))));
            }
            Ok(())
        })
    }

    /// Checks that a manifest and every blob it refers to are in the store.
    fn check_complete(&self, manifest: &Digest) -> Result<()> {
        let m: ImageManifest = self.read_json(manifest, "manifest")?;
        for d in std::iter::once(m.config()).chain(m.layers().iter()) {
            if !self.has_blob(d.digest()) {
                return Err(Error::MissingBlob(d.digest().clone()));
            }
        }
        Ok(())
    }

    /// Gives the image `source` names to the additional name `target`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        if target.digest().is_some() {
            return Err(Error::Conflict(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        let image = self.resolve(source)?;
        self.add_image(&image.entry.manifest, std::slice::from_ref(target))
    }

    /// `rbuild rmi`: removes a name; when `what` is an ID or the image has no name left,
    /// deletes the image, then frees blobs nothing uses any more.
    pub fn remove(&self, what: &str, force: bool) -> Result<RemoveReport> {
        let image = self.resolve(what)?;
        let by_name = Reference::parse(what).ok().filter(|r| image.entry.names.contains(r));
        let manifest = image.entry.manifest.digest().clone();
        let mut report = RemoveReport::default();
        self.update_index(|entries| {
            match &by_name {
                Some(name) => {
                    entries.retain(|d| entry_name(d).as_ref() != Some(name));
                    report.untagged.push(name.clone());
                }
                None => {
                    if image.entry.names.len() > 1 && !force {
                        return Err(Error::Conflict(format!(
                            "image {} is referenced in multiple repositories; remove it by name or use --force",
                            &image.id().digest()[..12]
                        )));
                    }
                    report.untagged.extend(image.entry.names.iter().cloned());
                    entries.retain(|d| d.digest() != &manifest);
                }
            }
            if !entries.iter().any(|d| d.digest() == &manifest) {
                report.deleted.push(image.id().clone());
            }
            Ok(())
        })?;
        if !report.deleted.is_empty() {
            self.collect_garbage()?;
        }
        Ok(report)
    }

    /// Extracts an image's file system into `dest` (which should be empty): every layer
    /// applied in order, with [`crate::snapshot::apply_layer`]'s safety rules.
    pub fn unpack(&self, image: &Image, dest: &std::path::Path) -> Result<()> {
        fs::create_dir_all(dest).map_err(Error::io("creating", dest))?;
        let diff_ids = image.config.rootfs().diff_ids();
        check_layer_count(diff_ids.len(), image.manifest.layers().len())?;
        for (layer, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
            // Each layer is checked against its diff ID while it is applied.
            let blob = crate::snapshot::decompress(self.open_blob(layer.digest())?)?;
            let mut plain = crate::digest::HashingReader::new(blob);
            crate::snapshot::apply_layer(
                &mut plain,
                dest,
                crate::snapshot::ApplyOptions::default(),
            )?;
            let (actual, _) = plain.finish();
            if actual.to_string() != *diff_id {
                return Err(Error::BadArchive(format!(
                    "layer {} does not match its diff ID {diff_id} (it is {actual})",
                    layer.digest()
                )));
            }
        }
        Ok(())
    }

    /// Blobs reachable from the index: manifests, nested indexes, configs and layers.
    fn reachable(&self) -> Result<HashSet<Digest>> {
        // The build cache's layers are roots too, until `prune --build-cache`.
        let mut seen = self.reachable_from_images()?;
        seen.extend(self.cache_blobs());
        Ok(seen)
    }

    /// Blobs that images (named or untagged) and containers' images refer to.
    fn reachable_from_images(&self) -> Result<HashSet<Digest>> {
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut queue: Vec<Descriptor> = self.index()?;
        // So are the images of containers, whatever became of their names.
        queue.extend(self.container_manifests());
        while let Some(d) = queue.pop() {
            if !seen.insert(d.digest().clone()) {
                continue;
            }
            let media = d.media_type().to_string();
            if media.contains("index") || media.contains("manifest.list") {
                if let Ok(index) = self.read_json::<ImageIndex>(d.digest(), "index") {
                    queue.extend(index.manifests().iter().cloned());
                }
            } else if media.contains("manifest") {
                if let Ok(m) = self.read_json::<ImageManifest>(d.digest(), "manifest") {
                    seen.insert(m.config().digest().clone());
                    seen.extend(m.layers().iter().map(|l| l.digest().clone()));
                }
            }
        }
        Ok(seen)
    }

    /// Removes blobs no image refers to and leftovers of killed processes in `tmp/`.
    /// Returns the number of bytes freed.
    pub fn collect_garbage(&self) -> Result<u64> {
        let _gc = self.collector()?;
        let keep = self.reachable()?;
        let mut freed = 0;
        let blob_dir = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir).map_err(Error::io("listing", blob_dir.clone()))? {
            let entry = entry.map_err(Error::io("listing", blob_dir.clone()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep_it =
                Digest::from_str(&format!("sha256:{name}")).is_ok_and(|d| keep.contains(&d));
            if !keep_it {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(Error::io("removing", entry.path()))?;
            }
        }
        // No other process holds the store while the collector lock is held: what is in
        // tmp/ (but the folders of live processes that do not hold it) and half-made
        // snapshots were left by processes that died.
        freed += self.sweep(true);
        Ok(freed)
    }

    /// Removes layer snapshots: every one with `all`, else those no image uses. Returns
    /// the bytes freed.
    pub fn remove_snapshots(&self, all: bool) -> Result<u64> {
        let used: HashSet<String> = if all {
            HashSet::new()
        } else {
            let mut used = HashSet::new();
            for entry in self.images()? {
                if let Ok(image) = self.image(&entry) {
                    used.extend(
                        image
                            .config
                            .rootfs()
                            .diff_ids()
                            .iter()
                            .map(|d| d.trim_start_matches("sha256:").to_string()),
                    );
                }
            }
            used
        };
        let _gc = self.collector()?;
        let dir = self.root.join("snapshots");
        let mut freed = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io("listing", dir.clone()))?.flatten() {
            if used.contains(entry.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            freed += dir_size(&entry.path());
            let path = entry.path();
            self.remove_snapshot(&entry.file_name().to_string_lossy())
                .map_err(Error::io("removing", path))?;
        }
        Ok(freed)
    }

    /// An image's size as docker shows it: its layers' content, uncompressed, so that an
    /// image shows one size whether it was pulled (compressed layers) or loaded or built
    /// (plain tars).
    pub fn image_size(&self, image: &Image) -> u64 {
        image.manifest.layers().iter().map(|l| self.layer_content_size(l)).sum()
    }

    /// A layer's uncompressed size: a plain tar's blob size; a gzip stream's from its
    /// trailer (ISIZE: the size modulo 2^32, taken as the smallest size at least the
    /// compressed one, which is exact for layers under 4 GiB); a zstd frame's from its
    /// header when it records it. Otherwise (or when the blob cannot be read) the blob's
    /// size.
    pub fn layer_content_size(&self, layer: &Descriptor) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let media = layer.media_type().to_string();
        let stored = layer.size();
        let Ok(mut f) = self.open_blob(layer.digest()) else { return stored };
        if media.ends_with("gzip") {
            let mut trailer = [0u8; 4];
            if stored < 18
                || f.seek(SeekFrom::End(-4)).is_err()
                || f.read_exact(&mut trailer).is_err()
            {
                return stored;
            }
            let mut size = u64::from(u32::from_le_bytes(trailer));
            while size < stored {
                size += 1 << 32;
            }
            return size;
        }
        if media.ends_with("zstd") {
            let mut head = [0u8; 18];
            return match f.read(&mut head) {
                Ok(n) => zstd_content_size(&head[..n]).unwrap_or(stored),
                Err(_) => stored,
            };
        }
        stored
    }

    /// Space used, by kind: blobs of images, blobs nothing uses, extracted snapshots.
    pub fn disk_usage(&self) -> Result<BTreeMap<&'static str, u64>> {
        let images = self.reachable_from_images()?;
        let cache: HashSet<Digest> = self.cache_blobs().into_iter().collect();
        // The build cache: what `prune --build-cache --cache-mounts` frees (records, logs,
        // context hashes, file lists, cache mounts), and the layers only it keeps.
        let cache_dirs = ["cache", "logs", "context-cache", "explain", "cache-mounts"];
        let mut usage = BTreeMap::from([
            ("images", 0),
            ("unused", 0),
            ("snapshots", dir_size(&self.root.join("snapshots"))),
            ("build cache", cache_dirs.iter().map(|d| dir_size(&self.root.join(d))).sum()),
        ]);
        let blob_dir = self.root.join("blobs/sha256");
        for entry in
            fs::read_dir(&blob_dir).map_err(Error::io("listing", blob_dir.clone()))?.flatten()
        {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = Digest::from_str(&format!("sha256:{name}")).ok();
            let kind = match digest {
                Some(d) if images.contains(&d) => "images",
                Some(d) if cache.contains(&d) => "build cache",
                _ => "unused",
            };
            *usage.entry(kind).or_default() += size;
        }
        Ok(usage)
    }
}

/// The content size a zstd frame header records (RFC 8878, 3.1.1.1), if it does.
fn zstd_content_size(head: &[u8]) -> Option<u64> {
    if head.len() < 6 || head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = head[4];
    let single_segment = descriptor & 0x20 != 0;
    let fcs_len = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => return None,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dict_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let start = 5 + usize::from(!single_segment) + dict_len;
    let field = head.get(start..start + fcs_len)?;
    let mut bytes = [0u8; 8];
    bytes[..fcs_len].copy_from_slice(field);
    let value = u64::from_le_bytes(bytes);
    Some(if fcs_len == 2 { value + 256 } else { value })
}

/// Checks that an image config lists as many diff IDs as its manifest (or archive) has
/// layers: the one rule every reader of an image applies before pairing them.
pub fn check_layer_count(diff_ids: usize, layers: usize) -> Result<()> {
    if diff_ids == layers {
        return Ok(());
    }
    Err(Error::InvalidImage(format!(
        "the image config lists {diff_ids} layers but its manifest has {layers}"
    )))
}

impl Store {
    /// The `docker image inspect` view of an image, as JSON.
    pub fn inspect_view(&self, image: &Image) -> Result<serde_json::Value> {
        let config = &image.config;
        // The raw `config` object: Docker's fields that OCI leaves out (Healthcheck,
        // Shell, OnBuild) are shown too.
        let raw: serde_json::Value = serde_json::from_slice(&self.read_blob(image.id())?)
            .map_err(Error::json("image config"))?;
        let run_config = raw.get("config").cloned().unwrap_or(serde_json::Value::Null);
        let names = &image.entry.names;
        Ok(serde_json::json!({
            "Id": image.id().to_string(),
            "RepoTags": names.iter().filter(|n| n.tag().is_some()).map(|n| n.familiar()).collect::<Vec<_>>(),
            "RepoDigests": names.iter()
                .map(|n| format!("{}@{}", n.familiar_repository(), image.entry.manifest.digest()))
                .collect::<std::collections::BTreeSet<_>>(),
            "Created": config.created(),
            "Author": config.author(),
            "Config": run_config,
            "Architecture": config.architecture().to_string(),
            "Variant": config.variant(),
            "Os": config.os().to_string(),
            "Size": self.image_size(image),
            "RootFS": {
                "Type": "layers",
                "Layers": config.rootfs().diff_ids(),
            },
            "History": config.history(),
            "Descriptor": image.entry.manifest,
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zstd_frames_say_their_content_size() {
        let data = vec![7u8; 100_000];
        // One-shot compression knows the size and writes it into the frame header.
        let frame = zstd::bulk::compress(&data, 3).unwrap_or_default();
        assert_eq!(super::zstd_content_size(&frame[..18.min(frame.len())]), Some(100_000));
        let small = zstd::bulk::compress(&data[..300], 3).unwrap_or_default();
        assert_eq!(super::zstd_content_size(&small[..18.min(small.len())]), Some(300));
        assert_eq!(super::zstd_content_size(b"not a frame at all"), None);
    }
}
