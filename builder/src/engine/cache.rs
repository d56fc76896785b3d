//! The build cache: what each step made, found by a key computed from everything that can
//! change its output, and kept in the store between runs.
//!
//! A key is the sha256 of a JSON document holding a format version, the key of the step
//! before (or the base image's ID), and the step's own inputs: the command after the
//! stage's shell and variables are applied, the variables it can see, its user and
//! working directory, and for COPY and ADD the content digest of exactly the files it
//! selects. Times never enter it. Records live in `ROOT/cache/HEX.json`; the blob of a
//! recorded layer is a garbage-collection root until `rbuild prune --build-cache`.

use std::fs;
use std::path::PathBuf;

use oci_spec::image::{Digest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::Result;
use crate::store::Store;

/// Bumped whenever the meaning of a key or record changes, so old records stop matching.
pub const CACHE_VERSION: &str = "rbuild-cache-1";

/// A step's cache key: a sha256 in hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(pub String);

impl CacheKey {
    /// The key of a step: the hash of its inputs (`inputs` is any JSON value) chained to
    /// `parent`.
    pub fn new(parent: &CacheKey, inputs: serde_json::Value) -> CacheKey {
        let doc = serde_json::json!({"v": CACHE_VERSION, "parent": parent.0, "step": inputs});
        // A `Value` always serialises.
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        CacheKey(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key standing for a base: an image ID, or `scratch`.
    pub fn base(id: &str) -> CacheKey {
        CacheKey::new(&CacheKey(String::new()), serde_json::json!({"base": id}))
    }

    /// The first 12 hex digits.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

/// A layer as the build keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: MediaType,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar (what `history` shows).
    #[serde(default)]
    pub tar_size: u64,
}

/// What a step made, recorded under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` when the step changed no file.
    pub layer: Option<LayerRecord>,
    /// When the step ran (RFC 3339).
    pub created: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

impl Store {
    fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }

    /// The record of `key`, if there is one whose layer blob is still in the store.
    pub fn cache_lookup(&self, key: &CacheKey) -> Option<CacheRecord> {
        let bytes = fs::read(self.cache_dir().join(format!("{}.json", key.0))).ok()?;
        let record: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        match &record.layer {
            Some(l) if !self.has_blob(&l.digest) => None,
            _ => Some(record),
        }
    }

    /// Records what the step with `key` made.
    pub fn cache_store(&self, key: &CacheKey, record: &CacheRecord) -> Result<()> {
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).map_err(crate::Error::io("creating", dir.clone()))?;
        let bytes = serde_json::to_vec(record).map_err(crate::Error::json("cache record"))?;
        crate::store::write_atomically(
            &self.tmp_dir(),
            &dir.join(format!("{}.json", key.0)),
            &bytes,
        )
    }

    /// Records what a step made under each of its `keys` (its chain key, and its content
    /// key when it has one), the records synced at the same time.
    pub fn cache_store_all(&self, keys: &[CacheKey], record: &CacheRecord) -> Result<()> {
        match keys {
            [] => Ok(()),
            [key] => self.cache_store(key, record),
            [first, rest @ ..] => {
                let (first, rest) = crate::concurrently(
                    || self.cache_store(first, record),
                    || self.cache_store_all(rest, record),
                );
                rest?;
                first.unwrap_or(Err(crate::Error::Panicked("a cache-recording thread")))
            }
        }
    }

    /// Blobs the cache records refer to (roots for garbage collection).
    pub fn cache_blobs(&self) -> Vec<Digest> {
        let Ok(entries) = fs::read_dir(self.cache_dir()) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<CacheRecord>(&b).ok())
            .filter_map(|r| r.layer.map(|l| l.digest))
            .collect()
    }

    /// Forgets every cache record, kept step log and file list kept to explain misses.
    /// Returns the bytes freed.
    pub fn clear_cache(&self) -> Result<u64> {
        let mut freed = 0;
        let dirs = ["logs", "context-cache", "explain"].map(|d| self.root().join(d));
        for dir in std::iter::once(self.cache_dir()).chain(dirs) {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).map_err(crate::Error::io("removing", e.path()))?;
            }
        }
        Ok(freed)
    }
}
