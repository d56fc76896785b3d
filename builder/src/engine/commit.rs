//! How a step ends: its layer committed (written as a blob, its snapshot kept, its cache
//! records stored), or taken from the cache, or a layer another chain made used again.
//! RUN, COPY, ADD and WORKDIR all end here.

use std::path::Path;
use std::time::Instant;

use super::cache::{CacheKey, CacheRecord, LayerRecord};
use super::stage::{FinishedStep, State};
use crate::error::Result;
use crate::snapshot::{overlay_changes, write_layer, Compression, LayerOptions};

/// Commits the layer directory `root` as the step's layer.
pub(super) fn commit(
    state: &mut State<'_, '_>,
    root: &Path,
    keys: Vec<CacheKey>,
    created_by: String,
    number: usize,
    started: Instant,
) -> Result<()> {
    let shared = state.shared;
    let t0 = Instant::now();
    let changes = overlay_changes(root)?;
    let created = super::now_rfc3339(shared.options.source_date_epoch);
    let (layer, writer) =
        write_layer_blob(shared.store, root, &changes, shared.options.source_date_epoch)?;
    let snapshot = shared.store.adopt_snapshot(root, &layer.diff_id)?;
    tracing::debug!(
        layer_ms = t0.elapsed().as_millis() as u64,
        bytes = layer.size,
        "layer committed"
    );
    let duration = started.elapsed();
    let record = CacheRecord {
        layer: Some(layer.clone()),
        created: created.clone(),
        duration_ms: duration.as_millis() as u64,
    };
    let key = keys[0].clone();
    shared.finish_layer(writer, &layer, keys, record);
    state.finish_step(FinishedStep {
        number,
        key,
        created_by,
        layer: Some(layer),
        snapshot: Some(snapshot),
        created,
        cached: false,
        duration_ms: duration.as_millis() as u64,
        has_log: false,
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
    })
}

/// Writes the layer of `changes` under `root` uncompressed (as Docker keeps built
/// layers; compression costs more than it saves on a local disk) into a blob writer that
/// [`super::Shared::finish_layer`] then makes durable.
pub(super) fn write_layer_blob(
    store: &crate::store::Store,
    root: &std::path::Path,
    changes: &[crate::snapshot::Change],
    epoch: Option<u64>,
) -> Result<(LayerRecord, crate::store::BlobWriter)> {
    // write_layer hashes the tar; the writer need not hash it again.
    let mut writer = store.verified_blob_writer()?;
    let blob = write_layer(
        root,
        changes,
        LayerOptions {
            compression: Compression::None,
            source_date_epoch: epoch,
            root_ids: crate::users::rootless_ids(),
        },
        &mut writer,
    )?;
    let layer = LayerRecord {
        digest: blob.digest,
        size: blob.size,
        media_type: blob.media_type,
        diff_id: blob.diff_id,
        tar_size: blob.size,
    };
    Ok((layer, writer))
}
