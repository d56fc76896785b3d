//! A build cache that travels: the cache records of a build's every step (all stages,
//! BuildKit's "max" mode) and their layers, as an OCI manifest whose config is the list of
//! records. It is written to a directory (an OCI image layout) or pushed to a registry
//! (`--cache-to`), and read back into another store (`--cache-from`), so a fresh CI runner
//! gets every cache hit the previous one had.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use super::cache::{CacheKey, CacheRecord};
use super::record::StepRecord;
use crate::error::{Error, Result};
use crate::store::Store;

/// The media type of the cache's config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";

/// The config blob: every record, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// The cache format's version (the cache keys' one).
    pub version: String,
    /// The records.
    pub records: BTreeMap<CacheKey, CacheRecord>,
}

/// A cache ready to be written or pushed: its manifest (stored in the store) and the
/// blobs it refers to.
#[derive(Debug, Clone)]
pub struct CacheBundle {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The config blob and the layers.
    pub blobs: Vec<Descriptor>,
}

/// Makes the cache bundle of a build's steps: their records (what the store holds for
/// their keys) and layers; the config and manifest are written to the store.
pub fn bundle(store: &Store, steps: &[StepRecord]) -> Result<CacheBundle> {
    let mut config =
        CacheConfig { version: super::cache::CACHE_VERSION.into(), ..Default::default() };
    let mut layers: BTreeMap<String, Descriptor> = BTreeMap::new();
    for step in steps {
        let Some(key) = &step.cache_key else { continue };
        let Some(record) = store.cache_lookup(key) else { continue };
        if let Some(l) = &record.layer {
            layers.insert(
                l.digest.to_string(),
                Descriptor::new(l.media_type.clone(), l.size, l.digest.clone()),
            );
        }
        config.records.insert(key.clone(), record);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(Error::json("cache config"))?;
    let config_digest = store.put_bytes(&config_bytes)?;
    let config_desc = Descriptor::new(
        MediaType::Other(CACHE_CONFIG_MEDIA_TYPE.into()),
        config_bytes.len() as u64,
        config_digest,
    );
    let layers: Vec<Descriptor> = layers.into_values().collect();
    let manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(layers.clone())
        .build()
        .map_err(|e| Error::Build(format!("making the cache manifest: {e}")))?;
    let bytes = serde_json::to_vec(&manifest).map_err(Error::json("cache manifest"))?;
    let digest = store.put_bytes(&bytes)?;
    let manifest = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest);
    Ok(CacheBundle { manifest, blobs: std::iter::once(config_desc).chain(layers).collect() })
}

/// Writes a bundle as an OCI image layout in `dir` (its blobs added to what is there; the
/// index names the cache `latest`).
pub fn write_local(store: &Store, bundle: &CacheBundle, dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("creating", blobs.clone()))?;
    for d in bundle.blobs.iter().chain(std::iter::once(&bundle.manifest)) {
        let dest = blobs.join(d.digest().digest());
        if dest.exists() {
            continue;
        }
        let tmp = blobs.join(format!(".tmp-{}", d.digest().digest()));
        fs::copy(store.blob_path(d.digest()), &tmp)
            .map_err(Error::io("copying to", tmp.clone()))?;
        fs::rename(&tmp, &dest).map_err(Error::io("renaming into", dest.clone()))?;
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(Error::io("writing", dir.join("oci-layout")))?;
    let mut manifest = bundle.manifest.clone();
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(crate::store::REF_ANNOTATION.to_string(), "latest".to_string());
    manifest.set_annotations(Some(annotations));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest]});
    let bytes = serde_json::to_vec(&index).map_err(Error::json("cache index"))?;
    let tmp = dir.join(".index.json.tmp");
    fs::write(&tmp, bytes).map_err(Error::io("writing", tmp.clone()))?;
    fs::rename(&tmp, dir.join("index.json"))
        .map_err(Error::io("renaming into", dir.join("index.json")))
}

/// Reads the cache in the OCI image layout `dir` into the store: its blobs (each checked
/// against its digest) and its records. Returns the number of records.
pub fn read_local(store: &Store, dir: &Path) -> Result<usize> {
    let index_path = dir.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(
        &fs::read(&index_path).map_err(Error::io("reading", index_path.clone()))?,
    )
    .map_err(Error::json(index_path.display().to_string()))?;
    let Some(digest) = index["manifests"][0]["digest"].as_str() else {
        return Err(Error::BadArchive(format!("{} names no cache manifest", index_path.display())));
    };
    let digest: Digest =
        digest.parse().map_err(|_| Error::BadArchive(format!("invalid digest {digest}")))?;
    let blob = |d: &Digest| -> Result<()> {
        if store.has_blob(d) {
            return Ok(());
        }
        let path = dir.join("blobs/sha256").join(d.digest());
        let file = fs::File::open(&path).map_err(Error::io("reading", path.clone()))?;
        store.put_blob(file, Some(d))?;
        Ok(())
    };
    blob(&digest)?;
    let manifest: ImageManifest = store.read_json(&digest, "cache manifest")?;
    for d in std::iter::once(manifest.config()).chain(manifest.layers()) {
        blob(d.digest())?;
    }
    import(store, &manifest)
}

/// Records the cache entries of a cache manifest whose blobs are in the store. Returns
/// the number of records.
pub fn import(store: &Store, manifest: &ImageManifest) -> Result<usize> {
    if manifest.config().media_type().to_string() != CACHE_CONFIG_MEDIA_TYPE {
        return Err(Error::BadArchive(format!(
            "not an rbuild cache: its config is {}",
            manifest.config().media_type()
        )));
    }
    let config: CacheConfig = store.read_json(manifest.config().digest(), "cache config")?;
    if config.version != super::cache::CACHE_VERSION {
        return Ok(0);
    }
    let mut n = 0;
    for (key, record) in &config.records {
        if record.layer.as_ref().is_some_and(|l| !store.has_blob(&l.digest)) {
            continue;
        }
        store.cache_store(key, record)?;
        n += 1;
    }
    Ok(n)
}

/// Where a shared build cache lives (`--cache-from`, `--cache-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// A registry repository and tag.
    Registry(crate::reference::Reference),
    /// An OCI image layout directory.
    Local(std::path::PathBuf),
}

impl CacheLocation {
    /// Reads buildx's syntax: `type=registry,ref=REF` (or just `REF`) or
    /// `type=local,DIR_KEY=DIR` (`dir_key`: `src` to import, `dest` to export). `mode`,
    /// `oci-mediatypes`, `compression` and `ignore-error` are accepted and change nothing.
    pub fn parse(text: &str, dir_key: &str) -> Result<CacheLocation> {
        use crate::reference::Reference;
        if !text.contains('=') {
            return Ok(CacheLocation::Registry(Reference::parse(text)?));
        }
        let invalid = |why: String| Error::InvalidOption(format!("cache location {text:?}: {why}"));
        let (mut kind, mut reference, mut dir) = (None, None, None);
        for field in text.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("ref", v)) => reference = Some(v.to_string()),
                Some((k, v)) if k == dir_key => dir = Some(std::path::PathBuf::from(v)),
                Some(("mode", "max" | "min"))
                | Some(("oci-mediatypes" | "compression" | "ignore-error", _)) => {}
                _ => {
                    return Err(invalid(format!(
                        "expected type=registry,ref=REF or type=local,{dir_key}=DIR"
                    )))
                }
            }
        }
        match kind.as_deref() {
            Some("registry") => Ok(CacheLocation::Registry(Reference::parse(
                &reference.ok_or_else(|| invalid("type=registry needs ref=REF".into()))?,
            )?)),
            Some("local") => Ok(CacheLocation::Local(
                dir.ok_or_else(|| invalid(format!("type=local needs {dir_key}=DIR")))?,
            )),
            other => Err(invalid(format!("cache type {other:?} is not registry or local"))),
        }
    }
}

/// Imports the cache at `location` into the store; returns how many records it held.
pub fn import_from(
    store: &Store,
    location: &CacheLocation,
    registry: &rbuild_registry_client::ClientOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<usize> {
    match location {
        CacheLocation::Local(dir) => read_local(store, dir),
        CacheLocation::Registry(r) => {
            let client = crate::remote::client(registry.clone())?;
            let manifest = crate::remote::pull_blobs(store, &client, r, reporter)?;
            import(store, &manifest)
        }
    }
}

/// Exports the cache of a build's steps to `location`.
pub fn export_to(
    store: &Store,
    steps: &[StepRecord],
    location: &CacheLocation,
    registry: &rbuild_registry_client::ClientOptions,
) -> Result<()> {
    // The cache's config and manifest are named by nothing: no collection may run meanwhile.
    let _in_use = store.in_use()?;
    let bundle = bundle(store, steps)?;
    match location {
        CacheLocation::Local(dir) => write_local(store, &bundle, dir),
        CacheLocation::Registry(r) => {
            let client = crate::remote::client(registry.clone())?;
            let quiet = crate::report::NoReport;
            crate::remote::push_manifest(store, &client, &bundle.manifest, &bundle.blobs, r, &quiet)
                .map(drop)
        }
    }
}
