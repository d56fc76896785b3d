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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The stage it belongs to (its index in the Dockerfile).
    #[serde(default)]
    pub stage: usize,
    /// The instruction as written.
    #[serde(default)]
    pub text: String,
    /// The key of the step before it (or of its base), for steps that have a key.
    #[serde(default)]
    pub parent: Option<CacheKey>,
    /// What went into its key (and its base), for explaining a later miss.
    #[serde(default)]
    pub inputs: serde_json::Value,
    /// Why it missed the cache, when it ran.
    #[serde(default)]
    pub miss: Option<String>,
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

/// One layer of an image as `history` shows it: its history entry, and for steps of a
/// build made here, that step's record.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// When the entry was made.
    pub created: Option<String>,
    /// What made it.
    pub created_by: String,
    /// Its layer's size (uncompressed when built here), 0 for none.
    pub size: u64,
    /// The entry's comment.
    pub comment: String,
    /// The step of the last build here that made it.
    pub step: Option<StepRecord>,
}

impl Store {
    /// The history of `image`, newest first, each entry paired with its layer and (for
    /// images built here) its step; and whether the image was built here.
    pub fn history(&self, image: &crate::store::Image) -> (Vec<HistoryRow>, bool) {
        let history = image.config.history().clone().unwrap_or_default();
        let layers = image.manifest.layers();
        // Pair each history entry with its layer, counting only entries that made one.
        let mut made = layers.iter();
        let mut rows: Vec<HistoryRow> = history
            .iter()
            .map(|h| HistoryRow {
                created: h.created().clone(),
                created_by: h.created_by().clone().unwrap_or_default(),
                size: if h.empty_layer().unwrap_or(false) {
                    0
                } else {
                    made.next().map(|l| self.layer_content_size(l)).unwrap_or(0)
                },
                comment: h.comment().clone().unwrap_or_default(),
                step: None,
            })
            .collect();
        let record = self.build_record(image.id());
        // The steps of the build that made the image are its last history entries.
        if let Some(record) = &record {
            for (row, step) in rows.iter_mut().rev().zip(record.steps.iter().rev()) {
                if step.size > 0 {
                    row.size = step.size;
                }
                row.step = Some(step.clone());
            }
        }
        rows.reverse();
        (rows, record.is_some())
    }

    /// Opens the log of step `number` of the build that made `image` (`name` is how the
    /// user named it, for messages).
    pub fn open_step_log(
        &self,
        image: &crate::store::Image,
        name: &str,
        number: usize,
    ) -> Result<fs::File> {
        let missing = |why: String| Error::NoSuchLog(why);
        let record = self.build_record(image.id()).ok_or_else(|| {
            missing(format!("image {name} was not built here, so no step logs are kept for it"))
        })?;
        let step = record
            .all_steps
            .iter()
            .find(|s| s.number == number)
            .ok_or_else(|| missing(format!("the build of {name} has no step {number}")))?;
        let key = step.cache_key.as_ref().filter(|_| step.has_log).ok_or_else(|| {
            missing(format!("step {number} ({}) ran no command, so it has no log", step.created_by))
        })?;
        fs::File::open(self.step_log_path(key)).map_err(|_| {
            missing(format!("the log of step {number} is gone (was the build cache pruned?)"))
        })
    }
}
