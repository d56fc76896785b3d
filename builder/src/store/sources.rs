//! Where blobs are known to exist on registries (`blob-sources.json`), so that a push can
//! ask a registry to mount a blob from another of its repositories instead of uploading
//! it again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use super::{write_atomically, Store};
use crate::error::{Error, Result};

/// Repositories remembered per blob; older ones are dropped past this.
const MAX_REPOS_PER_BLOB: usize = 8;

type Sources = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

impl Store {
    fn read_sources(&self) -> Sources {
        fs::read(self.root.join("blob-sources.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Repositories of `registry` known to hold `digest`.
    pub fn blob_sources(&self, registry: &str, digest: &str) -> Vec<String> {
        self.read_sources()
            .get(registry)
            .and_then(|blobs| blobs.get(digest))
            .map(|repos| repos.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records that `repository` on `registry` holds these blobs.
    pub fn record_blob_sources(
        &self,
        registry: &str,
        repository: &str,
        digests: &[String],
    ) -> Result<()> {
        let _lock = self.lock()?;
        let mut sources = self.read_sources();
        let blobs = sources.entry(registry.to_string()).or_default();
        for d in digests {
            let repos = blobs.entry(d.clone()).or_default();
            repos.insert(repository.to_string());
            while repos.len() > MAX_REPOS_PER_BLOB {
                let first = repos.iter().next().cloned();
                if let Some(f) = first {
                    repos.remove(&f);
                }
            }
        }
        let bytes = serde_json::to_vec(&sources).map_err(Error::json("blob-sources.json"))?;
        write_atomically(&self.tmp_dir(), &self.root.join("blob-sources.json"), &bytes)
    }
}
