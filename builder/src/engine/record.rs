//! Build records: for each image built here, what each step of its last build did (cache
//! key, taken from cache or run, how long, its layer's size), kept in
//! `ROOT/builds/<image ID hex>.json` for `rbuild history`; and every step's full output,
//! kept in `ROOT/logs/<cache key>.log`.

use std::fs;
use std::path::PathBuf;

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use super::cache::CacheKey;
use crate::error::{Error, Result};
use crate::store::Store;

/// One step of a build, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's number in the build output (`Step N/M`).
    pub number: usize,
    /// The instruction, as in the image history.
    pub created_by: String,
    /// Its cache key, for steps that have one (RUN, COPY, ADD, a WORKDIR that made a
    /// directory).
    pub cache_key: Option<CacheKey>,
    /// Whether the last build took it from the cache.
    pub cached: bool,
    /// How long it ran when it last ran, in milliseconds.
    pub duration_ms: u64,
    /// Size of its layer, uncompressed (0 for none).
    pub size: u64,
    /// Whether a log was kept for it.
    pub has_log: bool,
}

/// The record of one image's last build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The steps of the stage the image came from, in order.
    pub steps: Vec<StepRecord>,
    /// Every step of the build (all stages), for `--logs`.
    #[serde(default)]
    pub all_steps: Vec<StepRecord>,
}

impl Store {
    fn build_record_path(&self, image_id: &Digest) -> PathBuf {
        self.root().join("builds").join(format!("{}.json", image_id.digest()))
    }

    /// Saves the record of the build that made `image_id`.
    pub fn save_build_record(&self, image_id: &Digest, record: &BuildRecord) -> Result<()> {
        let path = self.build_record_path(image_id);
        let dir = self.root().join("builds");
        fs::create_dir_all(&dir).map_err(Error::io("creating", dir))?;
        let bytes = serde_json::to_vec(record).map_err(Error::json("build record"))?;
        crate::store::write_atomically(&self.tmp_dir(), &path, &bytes)
    }

    /// The record of the build that made `image_id`, if it was built here.
    pub fn build_record(&self, image_id: &Digest) -> Option<BuildRecord> {
        let bytes = fs::read(self.build_record_path(image_id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Where the log of the step with `key` is kept.
    pub fn step_log_path(&self, key: &CacheKey) -> PathBuf {
        self.root().join("logs").join(format!("{}.log", key.0))
    }
}
