//! Layers in flight: a step's layer is written on another thread while the build goes on,
//! and so may the layers of the steps after it. The directory of what a step changed is
//! final when the step ends, and the steps after it stack it as it is; its tar, digest,
//! sync and cache records are made meanwhile. Only what needs the digests waits for them:
//! the image ID after each step (its end is reported in a place kept for it in the ordered
//! events, filled once the digests below it are known), a layer taken from the cache
//! (which goes on top of the written ones), and the stage's end.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use oci_spec::image::Digest;

use super::cache::{CacheKey, LayerRecord};
use super::config::ImageConfig;
use super::stage::State;
use super::Event;
use crate::error::{Error, Result};

/// Layers written at once at most in a stage: a step beyond them waits for the oldest.
/// Each takes a core while it hashes and holds a few MiB of buffers; two cores are the
/// machines rbuild is measured on, and a package build rarely has more than two large
/// layers in a row.
const IN_FLIGHT: usize = 3;

/// A step's layer to write on another thread (see the module's documentation).
pub(crate) struct DeferredLayer {
    /// Writes the layer's tar: its record, and the blob writer to make durable.
    pub write: Box<dyn FnOnce() -> Result<(LayerRecord, crate::store::BlobWriter)> + Send>,
    /// The cache keys it is recorded under.
    pub keys: Vec<CacheKey>,
    /// Its cache record, but for the layer.
    pub record: super::cache::CacheRecord,
    /// When the step started (for the duration it reports).
    pub started: Instant,
}

/// A deferred layer being written, or a known one on top of such layers.
pub(crate) struct PendingLayer {
    /// The step's number, when the thread writing the layer reports the step's end.
    number: Option<usize>,
    /// The step's place in [`State::steps`].
    step_index: usize,
    /// The layer's record, once written.
    result: std::sync::mpsc::Receiver<Result<LayerRecord>>,
}

/// The layers in flight of a stage, oldest first, and the diff IDs of the stage's file
/// system once they are all written.
#[derive(Default)]
pub(crate) struct InFlight {
    layers: VecDeque<PendingLayer>,
    /// Published by the thread writing the newest layer in flight.
    top: Option<Arc<DiffIds>>,
}

/// The diff IDs of every layer up to one being written, published once by the thread
/// that writes it: `None` when that layer or one below it failed (the step after it
/// reports the failure).
#[derive(Default)]
pub(crate) struct DiffIds {
    value: Mutex<Option<Option<Vec<String>>>>,
    ready: Condvar,
}

impl DiffIds {
    fn publish(&self, ids: Option<Vec<String>>) {
        if let Ok(mut value) = self.value.lock() {
            if value.is_none() {
                *value = Some(ids);
            }
        }
        self.ready.notify_all();
    }

    /// Waits until published. The publishing side publishes `None` when it goes
    /// without publishing ([`Publisher`]), so this returns once that thread ends.
    fn wait(&self) -> Option<Vec<String>> {
        let Ok(mut value) = self.value.lock() else { return None };
        loop {
            if let Some(ids) = value.as_ref() {
                return ids.clone();
            }
            value = match self.ready.wait(value) {
                Ok(v) => v,
                Err(_) => return None,
            };
        }
    }
}

/// The writing thread's side of a [`DiffIds`]: publishes `None` if dropped unpublished
/// (an error or a panic), so that nothing waits for good.
struct Publisher(Arc<DiffIds>);

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.publish(None);
    }
}

/// The ID of an image with `config` and the diff IDs `ids`.
fn image_id(mut config: ImageConfig, ids: Vec<String>) -> Digest {
    config.rootfs.diff_ids = ids;
    crate::digest::sha256(&super::final_config(&config, &BTreeMap::new()).to_bytes())
}

impl State<'_, '_> {
    /// Starts writing a deferred layer on another thread (after waiting for the oldest
    /// when [`IN_FLIGHT`] are being written). Once it has the layer's digest and those
    /// below it, that thread reports the step's end (the image ID after it) in the place
    /// kept for it, then makes the blob durable, records the cache entries and has the
    /// directory adopted as the layer's snapshot when the build ends.
    pub(super) fn defer(
        &mut self,
        deferred: DeferredLayer,
        snapshot: PathBuf,
        number: usize,
    ) -> Result<()> {
        while self.in_flight.layers.len() >= IN_FLIGHT {
            self.settle_oldest()?;
        }
        let shared = self.shared;
        let hole = shared.reporter.hole();
        let config = self.config.clone();
        let below = self.in_flight.top.clone();
        let mine = Arc::new(DiffIds::default());
        let publisher = Publisher(mine.clone());
        let store = shared.store.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || -> Result<Option<(PathBuf, Digest)>> {
            let t0 = Instant::now();
            let (layer, writer) = match (deferred.write)() {
                Ok(done) => done,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(None);
                }
            };
            let written = t0.elapsed();
            let _ = tx.send(Ok(layer.clone()));
            let ids = match &below {
                Some(below) => below.wait(),
                None => Some(config.rootfs.diff_ids.clone()),
            };
            if let Some(mut ids) = ids {
                ids.push(layer.diff_id.to_string());
                publisher.0.publish(Some(ids.clone()));
                let id = image_id(config, ids);
                let duration = deferred.started.elapsed();
                hole.fill(vec![
                    Event::StepDone { number, id, duration, cached: false },
                    Event::Timings { number: Some(number), phases: vec![("layer", written)] },
                ]);
            }
            drop(publisher);
            // The snapshot's record and the blob are synced at the same time (each sync
            // waits for the disk, ~0.3 ms here); the cache records, which name the
            // layer, only once both are durable.
            let (recorded, committed) = crate::concurrently(
                || store.record_snapshot(&snapshot, layer.diff_id.digest()),
                || writer.commit_verified(&layer.digest),
            );
            committed?;
            recorded.unwrap_or(Err(Error::Panicked("a snapshot-recording thread")))?;
            let record =
                super::cache::CacheRecord { layer: Some(layer.clone()), ..deferred.record };
            store.cache_store_all(&deferred.keys, &record)?;
            Ok(Some((snapshot, layer.diff_id)))
        });
        shared.keep_thread(handle);
        let step_index = self.steps.len().saturating_sub(1);
        let pending = PendingLayer { number: Some(number), step_index, result: rx };
        self.in_flight.layers.push_back(pending);
        self.in_flight.top = Some(mine);
        Ok(())
    }

    /// Whether layers are being written.
    pub(super) fn layers_in_flight(&self) -> bool {
        !self.in_flight.layers.is_empty()
    }

    /// Puts a layer known already (taken from the cache) on top of the layers in flight,
    /// without waiting for them: its diff IDs are published once theirs are known. The
    /// caller puts its snapshot on top.
    pub(super) fn stack_known(&mut self, layer: LayerRecord) {
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = tx.send(Ok(layer.clone()));
        let below = self.in_flight.top.clone();
        let mine = Arc::new(DiffIds::default());
        let publisher = Publisher(mine.clone());
        self.shared.keep_thread(std::thread::spawn(move || {
            if let Some(mut ids) = below.and_then(|below| below.wait()) {
                ids.push(layer.diff_id.to_string());
                publisher.0.publish(Some(ids));
            }
            Ok(None)
        }));
        let pending = PendingLayer { number: None, step_index: usize::MAX, result: rx };
        self.in_flight.layers.push_back(pending);
        self.in_flight.top = Some(mine);
    }

    /// Waits for the oldest layer in flight and puts it on top of the stage's layers; its
    /// failure is this stage's.
    fn settle_oldest(&mut self) -> Result<()> {
        let Some(pending) = self.in_flight.layers.pop_front() else { return Ok(()) };
        if self.in_flight.layers.is_empty() {
            self.in_flight.top = None;
        }
        let layer =
            pending.result.recv().map_err(|_| Error::Panicked("a layer-writing thread"))??;
        self.config.rootfs.diff_ids.push(layer.diff_id.to_string());
        if let Some(step) = self.steps.get_mut(pending.step_index) {
            step.size = layer.tar_size;
        }
        self.layers.push(layer);
        Ok(())
    }

    /// Waits for every layer in flight (see [`State::settle_oldest`]).
    pub fn settle(&mut self) -> Result<()> {
        while !self.in_flight.layers.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Whether the end of step `number` is reported by the thread writing its layer.
    fn reported_there(&self, number: usize) -> bool {
        self.in_flight.layers.back().is_some_and(|p| p.number == Some(number))
    }

    /// Reports the end of step `number` with the image ID after it, unless the thread
    /// writing its layer does. With layers in flight below it, the ID is reported in a
    /// place kept for it once their digests are known, and the build goes on.
    pub fn report_done(&mut self, number: usize, duration: Duration, cached: bool) {
        if self.reported_there(number) {
            return;
        }
        let shared = self.shared;
        let Some(below) = self.in_flight.top.clone() else {
            let id = self.current_id();
            shared.reporter.event(Event::StepDone { number, id, duration, cached });
            return;
        };
        let hole = shared.reporter.hole();
        let config = self.config.clone();
        shared.keep_thread(std::thread::spawn(move || {
            if let Some(ids) = below.wait() {
                let id = image_id(config, ids);
                hole.fill(vec![Event::StepDone { number, id, duration, cached }]);
            }
            Ok(None)
        }));
    }
}
