//! Image archives: `rbuild load` reads the layout `docker save` writes and OCI image
//! layout archives (plain or gzip-compressed); `rbuild save` writes either.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path};
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::{Image, Store, NAME_ANNOTATION, REF_ANNOTATION};

/// Metadata files of an archive are read into memory; none may be larger than this.
const MAX_METADATA: u64 = 16 << 20;

/// One image an archive held, as stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The manifest descriptor.
    pub manifest: Descriptor,
    /// The names it was loaded under.
    pub names: Vec<Reference>,
}

/// An entry of `manifest.json` in a `docker save` archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The archive formats `rbuild save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// The layout `docker save` writes: `manifest.json`, `repositories`, plus an OCI
    /// layout, so that both kinds of reader find what they look for.
    Docker,
    /// An OCI image layout.
    Oci,
}

/// Normalises an archive path: no leading `./`, no `..`, no absolute paths.
fn clean_path(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Resolves a relative symlink target against the link's own directory.
fn resolve_link(link: &str, target: &Path) -> Option<String> {
    let base = Path::new(link).parent().unwrap_or(Path::new(""));
    let mut parts: Vec<String> =
        base.components().filter_map(|c| c.as_os_str().to_str().map(String::from)).collect();
    for c in target.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// The layer media type for a blob, from its first bytes.
pub fn layer_media_type(store: &Store, digest: &Digest) -> Result<MediaType> {
    let mut head = [0u8; 4];
    let mut f = store.open_blob(digest)?;
    let n = f.read(&mut head).map_err(Error::io("reading", store.blob_path(digest)))?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => MediaType::ImageLayerGzip,
        [0x28, 0xb5, 0x2f, 0xfd] => MediaType::ImageLayerZstd,
        _ => MediaType::ImageLayer,
    })
}

/// Reads an image archive from `input` into the store and names its images.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<LoadedImage>> {
    let _writer = store.in_use()?;
    let mut input = BufReader::new(input);
    let head = input.fill_buf().map_err(Error::io("reading", "the archive"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> =
        if gzip { Box::new(flate2::read::MultiGzDecoder::new(input)) } else { Box::new(input) };
    let mut archive = tar::Archive::new(reader);
    let mut metadata: HashMap<String, Vec<u8>> = HashMap::new();
    let mut files: HashMap<String, Digest> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let entries =
        archive.entries().map_err(|e| Error::BadArchive(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::BadArchive(format!("reading the archive: {e}")))?;
        let raw_path = entry
            .path()
            .map_err(|e| Error::BadArchive(format!("bad entry name: {e}")))?
            .into_owned();
        let Some(path) = clean_path(&raw_path) else {
            return Err(Error::BadArchive(format!(
                "refusing archive entry {raw_path:?}: not a relative path"
            )));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().ok().flatten().map(|t| t.into_owned());
            let resolved = target.as_deref().and_then(|t| {
                if kind.is_symlink() {
                    resolve_link(&path, t)
                } else {
                    clean_path(t)
                }
            });
            match resolved {
                Some(r) => links.insert(path, r),
                None => {
                    return Err(Error::BadArchive(format!(
                        "refusing archive link {path:?}: it points outside the archive"
                    )))
                }
            };
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if matches!(path.as_str(), "oci-layout" | "index.json" | "manifest.json" | "repositories") {
            if entry.header().size().unwrap_or(u64::MAX) > MAX_METADATA {
                return Err(Error::BadArchive(format!("{path} is too large")));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::BadArchive(format!("reading {path}: {e}")))?;
            metadata.insert(path, bytes);
            continue;
        }
        let expected = path
            .strip_prefix("blobs/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(alg, hex)| Digest::from_str(&format!("{alg}:{hex}")))
            .transpose()
            .map_err(|e| Error::BadArchive(format!("{path}: not a valid digest: {e}")))?;
        let (digest, _) = store.put_blob(&mut entry, expected.as_ref()).map_err(|e| match e {
            Error::Io { source, .. } => Error::BadArchive(format!("reading {path}: {source}")),
            other => other,
        })?;
        files.insert(path, digest);
    }
    let file_digest = |path: &str| -> Result<Digest> {
        let mut p = path.trim_start_matches("./").to_string();
        for _ in 0..16 {
            if let Some(d) = files.get(&p) {
                return Ok(d.clone());
            }
            match links.get(&p) {
                Some(next) => p = next.clone(),
                None => break,
            }
        }
        Err(Error::BadArchive(format!("the archive has no file {path}")))
    };

    let loaded = if let Some(bytes) = metadata.get("manifest.json") {
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(bytes).map_err(Error::json("manifest.json"))?;
        let mut loaded = Vec::new();
        for e in entries {
            let config = file_digest(&e.config)?;
            let layers = e.layers.iter().map(|l| file_digest(l)).collect::<Result<Vec<_>>>()?;
            let names = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            loaded.push(store_image(store, &config, &layers, names)?);
        }
        loaded
    } else if let Some(bytes) = metadata.get("index.json") {
        let index: ImageIndex = serde_json::from_slice(bytes).map_err(Error::json("index.json"))?;
        let mut loaded = Vec::new();
        for d in index.manifests() {
            let manifest = pick_manifest(store, d)?;
            let names = descriptor_name(d).into_iter().collect::<Vec<_>>();
            loaded.push(register(store, &manifest, names)?);
        }
        loaded
    } else {
        return Err(Error::BadArchive(
            "not an image archive: it has neither manifest.json nor index.json".into(),
        ));
    };
    Ok(loaded)
}

/// The name an OCI index entry carries: the containerd annotation, or a reference-shaped
/// `org.opencontainers.image.ref.name` (a bare tag names no repository).
fn descriptor_name(d: &Descriptor) -> Option<Reference> {
    let annotations = d.annotations().as_ref()?;
    if let Some(n) = annotations.get(NAME_ANNOTATION) {
        return Reference::parse(n).ok();
    }
    let r = annotations.get(REF_ANNOTATION)?;
    if r.contains(['/', ':']) {
        Reference::parse(r).ok()
    } else {
        None
    }
}

/// For an index entry that is itself an index (multi-platform), the manifest for this
/// machine's platform (linux/amd64 by default), else the first.
fn pick_manifest(store: &Store, d: &Descriptor) -> Result<Descriptor> {
    let media = d.media_type().to_string();
    if !(media.contains("index") || media.contains("manifest.list")) {
        return Ok(d.clone());
    }
    let index: ImageIndex = store.read_json(d.digest(), "index")?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let chosen = index
        .manifests()
        .iter()
        .find(|m| {
            m.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .or_else(|| index.manifests().first())
        .ok_or_else(|| Error::BadArchive(format!("index {} lists no manifest", d.digest())))?;
    pick_manifest(store, chosen)
}

/// Checks that each layer, uncompressed, hashes to the diff ID the config lists for it.
pub fn verify_diff_ids(
    store: &Store,
    layers: &[Digest],
    config: &ImageConfiguration,
) -> Result<()> {
    let diff_ids = config.rootfs().diff_ids();
    crate::store::check_layer_count(diff_ids.len(), layers.len())?;
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let blob = store.open_blob(layer)?;
        let mut hashing = crate::digest::HashingReader::new(crate::snapshot::decompress(blob)?);
        std::io::copy(&mut hashing, &mut std::io::sink())
            .map_err(|e| Error::BadArchive(format!("layer {layer} does not decompress: {e}")))?;
        let (actual, _) = hashing.finish();
        if actual.to_string() != *diff_id {
            return Err(Error::BadArchive(format!(
                "layer {layer} does not match its diff ID {diff_id} in the config (it is {actual})"
            )));
        }
    }
    Ok(())
}

fn register(store: &Store, manifest: &Descriptor, names: Vec<Reference>) -> Result<LoadedImage> {
    let m: ImageManifest = store.read_json(manifest.digest(), "manifest")?;
    let config: ImageConfiguration = store.read_json(m.config().digest(), "image config")?;
    let layers: Vec<Digest> = m.layers().iter().map(|l| l.digest().clone()).collect();
    verify_diff_ids(store, &layers, &config)?;
    let plain =
        Descriptor::new(manifest.media_type().clone(), manifest.size(), manifest.digest().clone());
    store.add_image(&plain, &names)?;
    Ok(LoadedImage { id: m.config().digest().clone(), manifest: plain, names })
}

/// Writes an OCI manifest for a config and layers already in the store, and names it.
pub(crate) fn store_image(
    store: &Store,
    config: &Digest,
    layers: &[Digest],
    names: Vec<Reference>,
) -> Result<LoadedImage> {
    let cfg: ImageConfiguration = store.read_json(config, "image config")?;
    let diff_ids = cfg.rootfs().diff_ids();
    crate::store::check_layer_count(diff_ids.len(), layers.len())?;
    let mut layer_descs = Vec::new();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let media = layer_media_type(store, layer)?;
        if media == MediaType::ImageLayer && layer.to_string() != *diff_id {
            return Err(Error::BadArchive(format!(
                "layer {layer} does not match its diff ID {diff_id} in the config"
            )));
        }
        let size = store
            .blob_path(layer)
            .metadata()
            .map_err(Error::io("reading", store.blob_path(layer)))?
            .len();
        layer_descs.push(Descriptor::new(media, size, layer.clone()));
    }
    let config_size = store
        .blob_path(config)
        .metadata()
        .map_err(Error::io("reading", store.blob_path(config)))?
        .len();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageManifest.to_string(),
        "config": Descriptor::new(MediaType::ImageConfig, config_size, config.clone()),
        "layers": layer_descs,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(Error::json("manifest"))?;
    let digest = store.put_bytes(&bytes)?;
    let desc = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest);
    store.add_image(&desc, &names)?;
    Ok(LoadedImage { id: config.clone(), manifest: desc, names })
}

/// A tar writer with fixed headers (owner root, mtime 0), so equal content gives an
/// equal archive.
struct TarOut<W: Write> {
    tar: tar::Builder<W>,
    dirs: Vec<String>,
}

impl<W: Write> TarOut<W> {
    fn dir(&mut self, path: &str) -> std::io::Result<()> {
        if self.dirs.iter().any(|d| d == path) {
            return Ok(());
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        self.tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
        self.dirs.push(path.to_string());
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, data: impl Read) -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        self.tar.append_data(&mut h, path, data)
    }
}

/// Writes `images` (with the names to record for each) as an archive.
pub fn save(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    let io_err =
        |e: std::io::Error| Error::Io { action: "writing", path: "the archive".into(), source: e };
    let mut t = TarOut { tar: tar::Builder::new(out), dirs: Vec::new() };
    let mut written: Vec<Digest> = Vec::new();
    t.dir("blobs").map_err(io_err)?;
    t.dir("blobs/sha256").map_err(io_err)?;
    let mut index_entries = Vec::new();
    let mut docker_entries = Vec::new();
    let mut repositories: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (image, names) in images {
        let blobs = std::iter::once(image.entry.manifest.digest())
            .chain(std::iter::once(image.manifest.config().digest()))
            .chain(image.manifest.layers().iter().map(|l| l.digest()));
        for digest in blobs {
            if written.contains(digest) {
                continue;
            }
            let file = store.open_blob(digest)?;
            let size =
                file.metadata().map_err(Error::io("reading", store.blob_path(digest)))?.len();
            t.file(&format!("blobs/sha256/{}", digest.digest()), size, file).map_err(io_err)?;
            written.push(digest.clone());
        }
        let plain = || serde_json::to_value(&image.entry.manifest).unwrap_or_default();
        if names.is_empty() {
            index_entries.push(plain());
        }
        for name in names {
            let mut d = plain();
            d["annotations"] = serde_json::json!({
                NAME_ANNOTATION: name.to_string(),
                REF_ANNOTATION: name.tag().unwrap_or("latest"),
            });
            index_entries.push(d);
            if let (Some(tag), Some(top)) = (name.tag(), image.manifest.layers().last()) {
                repositories
                    .entry(name.familiar_repository())
                    .or_default()
                    .insert(tag.to_string(), top.digest().digest().to_string());
            }
        }
        docker_entries.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", image.manifest.config().digest().digest()),
            repo_tags: Some(names.iter().map(|n| n.familiar()).collect()),
            layers: image
                .manifest
                .layers()
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest().digest()))
                .collect(),
        });
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    t.file("oci-layout", layout.len() as u64, &layout[..]).map_err(io_err)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": index_entries,
    });
    let index = serde_json::to_vec(&index).map_err(Error::json("index.json"))?;
    t.file("index.json", index.len() as u64, &index[..]).map_err(io_err)?;
    if format == ArchiveFormat::Docker {
        let manifest = serde_json::to_vec(&docker_entries).map_err(Error::json("manifest.json"))?;
        t.file("manifest.json", manifest.len() as u64, &manifest[..]).map_err(io_err)?;
        let mut repos: Vec<_> = repositories.into_iter().collect();
        repos.sort_by(|a, b| a.0.cmp(&b.0));
        let repos: serde_json::Map<String, serde_json::Value> = repos
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    serde_json::to_value(
                        v.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                    )
                    .unwrap_or_default(),
                )
            })
            .collect();
        let repos = serde_json::to_vec(&repos).map_err(Error::json("repositories"))?;
        t.file("repositories", repos.len() as u64, &repos[..]).map_err(io_err)?;
    }
    t.tar.finish().map_err(io_err)?;
    Ok(())
}

/// An [`ImageSource`](crate::engine::ImageSource) over a local image archive (Docker or
/// OCI, as `rbuild save` writes): base images are loaded from it rather than pulled, and
/// ADD of a URL is refused. For builds that must not touch the network (tests, air-gapped
/// machines).
#[derive(Debug, Clone)]
pub struct ArchiveSource {
    path: std::path::PathBuf,
}

impl ArchiveSource {
    /// A source that loads images from the archive at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        ArchiveSource { path: path.into() }
    }
}

impl crate::engine::ImageSource for ArchiveSource {
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        _platform: &crate::engine::Platform,
        _reporter: &dyn crate::report::Reporter,
    ) -> Result<Image> {
        let file = std::fs::File::open(&self.path).map_err(Error::io("opening", &self.path))?;
        load(store, std::io::BufReader::new(file))?;
        store.resolve(&reference.to_string())
    }

    fn download(&self, url: &str, _dest: &std::path::Path) -> Result<Option<i64>> {
        Err(Error::Download(format!(
            "{url}: this build reads images from an archive and downloads nothing"
        )))
    }
}
