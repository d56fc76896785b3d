//! How a step ends: its layer committed (written as a blob, its snapshot kept, its cache
//! records stored), or taken from the cache, or a layer another chain made used again.
//! RUN, COPY, ADD and WORKDIR all end here.

use std::path::Path;
use std::time::Instant;

use super::cache::{CacheKey, CacheRecord, LayerRecord};
use super::inflight::DeferredLayer;
use super::stage::{FinishedStep, State};
use crate::error::{Error, Result};
use crate::snapshot::overlay_changes;

/// Commits the directory `root` (what the step changed, in overlayfs's form) as the
/// step's layer. The directory moves to this process's folder of the store, where the
/// steps after it stack it as it is; its tar, digest and cache records are made on
/// another thread meanwhile (see [`super::inflight`]), and it becomes the
/// layer's snapshot when the build ends.
pub(super) fn commit(
    state: &mut State<'_, '_>,
    root: &Path,
    keys: Vec<CacheKey>,
    created_by: String,
    number: usize,
    started: Instant,
    has_log: bool,
) -> Result<()> {
    let shared = state.shared;
    let store = shared.store.clone();
    let dir = store.tmp_dir().join(format!("layer-{number}-{}", super::run::random_id(&keys[0].0)));
    std::fs::rename(root, &dir).map_err(Error::io("moving the layer directory to", dir.clone()))?;
    let created = super::now_rfc3339(shared.options.source_date_epoch);
    let duration_ms = started.elapsed().as_millis() as u64;
    let record = CacheRecord { layer: None, created: created.clone(), duration_ms };
    let epoch = shared.options.source_date_epoch;
    let layer_dir = dir.clone();
    let write = Box::new(move || {
        let changes = overlay_changes(&layer_dir)?;
        write_layer_blob(&store, &layer_dir, &changes, epoch)
    });
    let key = keys[0].clone();
    state.finish_step(FinishedStep {
        number,
        key,
        created_by,
        layer: None,
        snapshot: Some(dir),
        created,
        cached: false,
        duration_ms,
        has_log,
        deferred: Some(DeferredLayer { write, keys, record, started }),
    })
}

/// Takes a step's result from the cache.
pub(super) fn reuse(
    state: &mut State<'_, '_>,
    number: usize,
    key: CacheKey,
    record: CacheRecord,
    created_by: String,
) -> Result<()> {
    let has_log = state.shared.store.step_log_path(&key).exists();
    finish_from_record(state, number, key, record, created_by, true, has_log)
}

/// Uses a layer made before by a step with the same content (`record`, found under its
/// content key) for a step whose chain key missed: nothing is written, and the step is
/// recorded under `key` as made now.
pub(super) fn reuse_layer(
    state: &mut State<'_, '_>,
    number: usize,
    key: CacheKey,
    record: CacheRecord,
    created_by: String,
) -> Result<()> {
    let created = super::now_rfc3339(state.shared.options.source_date_epoch);
    let record = CacheRecord { created, duration_ms: 0, ..record };
    state.shared.store.cache_store(&key, &record)?;
    finish_from_record(state, number, key, record, created_by, false, false)
}

/// Finishes a step with the layer, time and duration of a cache record.
fn finish_from_record(
    state: &mut State<'_, '_>,
    number: usize,
    key: CacheKey,
    record: CacheRecord,
    created_by: String,
    cached: bool,
    has_log: bool,
) -> Result<()> {
    state.finish_step(FinishedStep {
        number,
        key,
        created_by,
        layer: record.layer,
        snapshot: None,
        created: record.created,
        cached,
        duration_ms: record.duration_ms,
        has_log,
        deferred: None,
    })
}

/// Writes the layer of `changes` under `root` uncompressed (as Docker keeps built
/// layers; compression costs more than it saves on a local disk) into a blob writer that
/// the caller then makes durable.
pub(super) fn write_layer_blob(
    store: &crate::store::Store,
    root: &std::path::Path,
    changes: &[crate::snapshot::Change],
    epoch: Option<u64>,
) -> Result<(LayerRecord, crate::store::BlobWriter)> {
    // The tar is made here, hashed on a second thread and written on a third; the blob
    // writer need not hash it again.
    let mut writer = crate::handoff::Handoff::new(store.layer_blob_writer()?);
    let written =
        crate::snapshot::tar_into(root, changes, epoch, crate::users::rootless_ids(), &mut writer)
            .map(drop);
    // A writing thread that stopped (a full disk) shows to tar_into as a broken stream:
    // its own error, from finish, says why.
    let finished = writer.finish().map_err(Error::io("writing a layer into", store.tmp_dir()));
    if let Err(e) = written {
        return Err(finished.err().unwrap_or(e));
    }
    let (writer, diff_id, size) = finished?;
    let layer = LayerRecord {
        digest: diff_id.clone(),
        size,
        media_type: oci_spec::image::MediaType::ImageLayer,
        diff_id,
        tar_size: size,
    };
    Ok((layer, writer))
}
