//! One stage: its base, its base's ONBUILD triggers, then its instructions in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oci_spec::image::Digest;
use rbuild_parser::shell::{Lexer, MapEnv};
use rbuild_parser::{
    Command, ErrorKind, Instruction, InstructionKind, ParseError, Span, StageBase,
};

use super::cache::{CacheKey, LayerRecord};
use super::config::{HistoryEntry, ImageConfig};
use super::record::StepRecord;
use super::rootfs::RootfsView;
use super::{vars, Event, Shared};
use crate::error::{Error, Result, StepError};
use crate::reference::Reference;
use crate::store::Image;

/// What a finished stage hands to the stages that use it.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    /// Its image config (history and diff IDs included).
    pub config: ImageConfig,
    /// Its layers, lowest first.
    pub layers: Vec<LayerRecord>,
    /// Their snapshots, lowest first.
    pub snapshots: Vec<PathBuf>,
    /// The cache key of its last file system state.
    pub chain: CacheKey,
    /// The steps it ran.
    pub steps: Vec<StepRecord>,
    /// When its last layer was made.
    pub last_created: String,
    /// The base image (ID and manifest) when the stage changed nothing in it.
    pub unchanged_base: Option<(Digest, oci_spec::image::Descriptor)>,
    /// The ARG values set over its ENV at its end: a stage built `FROM` this one starts
    /// with them (in its RUN environment, not in its history), as in BuildKit.
    pub arg_env: Vec<(String, String)>,
}

/// A RUN, COPY, ADD or WORKDIR step that is done, for [`State::finish_step`].
pub(crate) struct FinishedStep {
    pub number: usize,
    pub key: CacheKey,
    pub created_by: String,
    /// Its layer, `None` when it changed nothing.
    pub layer: Option<LayerRecord>,
    /// The layer's snapshot when it is at hand (else made when needed).
    pub snapshot: Option<PathBuf>,
    pub created: String,
    pub cached: bool,
    pub duration_ms: u64,
    pub has_log: bool,
    /// The layer, when it is written on another thread (`layer` is then `None` and
    /// `snapshot` the directory of what the step changed).
    pub deferred: Option<super::inflight::DeferredLayer>,
}

/// A stage being built.
pub(crate) struct State<'s, 'a> {
    pub shared: &'s Shared<'a>,
    pub stage: usize,
    pub config: ImageConfig,
    pub layers: Vec<LayerRecord>,
    /// The layers' snapshots, lowest first, where known (a layer taken from the cache gets
    /// its snapshot only when something needs the file system: a build that hits the
    /// cache throughout extracts nothing). One more than `layers` while the last step's
    /// layer is being written (see [`DeferredLayer`]).
    snapshots: Vec<Option<PathBuf>>,
    pub chain: CacheKey,
    /// ARGs declared in the stage, in order, a name again each time it is declared again
    /// (RUN's history entry lists them so, as BuildKit does).
    pub args: Vec<String>,
    /// ARG values set over the image's ENV (see [`vars::stage_vars`]); inherited by a
    /// stage built `FROM` this one.
    pub arg_env: Vec<(String, String)>,
    pub steps: Vec<StepRecord>,
    /// Created time of the latest layer (metadata steps take it, so a build that only
    /// hits the cache gives the same image ID).
    pub last_created: String,
    /// Whether CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// Whether every step so far came from the cache.
    pub all_cached: bool,
    /// The base image's ID, until the first step changes anything.
    pub base_id: Option<Digest>,
    /// The base image's manifest, while `base_id` is set.
    base_manifest: Option<oci_spec::image::Descriptor>,
    /// What the explanation of a cache miss needs (see [`super::explain`]).
    pub notes: StepNotes,
    /// The layers of the last steps, while other threads write them.
    pub(super) in_flight: super::inflight::InFlight,
}

/// The inputs of the keyed step being run, noted for its record and for explaining a miss.
#[derive(Debug, Default)]
pub(crate) struct StepNotes {
    /// The stage's base: `{"name", "id"}`.
    pub base: serde_json::Value,
    /// The instruction being run, as written.
    pub text: String,
    /// The step before it that missed, in this stage.
    pub missed: Option<usize>,
    /// The keyed step being run: its parent key, inputs, files (COPY/ADD) and why it
    /// missed.
    pub pending: Option<PendingStep>,
}

/// See [`StepNotes::pending`].
#[derive(Debug, Default)]
pub(crate) struct PendingStep {
    pub parent: CacheKey,
    pub inputs: serde_json::Value,
    pub files: super::explain::FileList,
    pub miss: Option<String>,
}

pub(super) fn history_text(inst: &Instruction) -> String {
    inst.original.trim().to_string()
}

impl<'s, 'a> State<'s, 'a> {
    /// The layer snapshots, extracted on first use.
    pub fn snapshots(&mut self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(self.snapshots.len());
        for (i, known) in self.snapshots.iter_mut().enumerate() {
            let snapshot = match known {
                Some(s) => s.clone(),
                None => {
                    let l = self.layers.get(i).ok_or_else(|| {
                        Error::Build("a layer without its snapshot is still being written".into())
                    })?;
                    let s = self.shared.store.snapshot(&l.digest, &l.diff_id)?;
                    *known = Some(s.clone());
                    s
                }
            };
            out.push(snapshot);
        }
        Ok(out)
    }

    /// The stage's file system so far.
    pub fn view(&mut self) -> Result<RootfsView> {
        Ok(RootfsView::new(self.snapshots()?))
    }

    /// Adds a layer (with its snapshot) on top.
    pub fn push_layer(&mut self, layer: LayerRecord, snapshot: Option<PathBuf>) -> Result<()> {
        self.config.rootfs.diff_ids.push(layer.diff_id.to_string());
        self.snapshots.push(snapshot);
        self.layers.push(layer);
        Ok(())
    }

    /// The image ID the stage would have now.
    pub fn current_id(&self) -> Digest {
        if let Some(id) = &self.base_id {
            return id.clone();
        }
        crate::digest::sha256(&super::final_config(&self.config, &BTreeMap::new()).to_bytes())
    }

    pub fn env_list(&self) -> Vec<String> {
        self.config.config.env.clone().unwrap_or_default()
    }

    /// The stage's variables: ENV with the ARG values set over it.
    pub fn vars(&self) -> Vec<String> {
        vars::stage_vars(&self.env_list(), &self.arg_env)
    }

    /// Expands `$VAR`s in a word with the stage's ARGs and ENV.
    pub fn expand(&self, inst: &Instruction, word: &str) -> Result<String> {
        let env: MapEnv = vars::expansion_env(&self.vars());
        Lexer::new(self.shared.escape)
            .process_word(word, &env)
            .map_err(|e| self.error(inst, &e.to_string()))
    }

    /// An error about `inst`, with its place in the Dockerfile.
    pub fn error(&self, inst: &Instruction, message: &str) -> Error {
        let keyword = inst.original.split_whitespace().next().map_or(1, |k| k.len());
        let span = Span::on_line(inst.span.start.line, inst.span.start.column.max(1), keyword);
        let e = ParseError::new(ErrorKind::Invalid(message.to_string()), span);
        let options = self.shared.options;
        Error::Step(Box::new(StepError::new(
            &options.dockerfile_name,
            &options.dockerfile_text,
            &e,
        )))
    }

    pub fn add_history(&mut self, created_by: String, empty: bool, created: Option<String>) {
        let created = created.unwrap_or_else(|| self.last_created.clone());
        self.config.history.push(HistoryEntry {
            created: Some(created),
            created_by: Some(created_by),
            empty_layer: empty,
            ..Default::default()
        });
    }

    /// The working directory, `/` when unset.
    pub fn workdir(&self) -> String {
        self.config
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    /// A path made absolute against the working directory and cleaned.
    pub fn absolute(&self, path: &str) -> String {
        let joined = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", self.workdir())
        };
        let mut cleaned = rbuild_parser::dockerignore::clean_path(&joined);
        if path.ends_with('/') && cleaned != "/" {
            cleaned.push('/');
        }
        cleaned
    }

    /// The shell for shell-form commands.
    pub fn shell(&self) -> Vec<String> {
        self.config.config.shell.clone().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// A command in argv form.
    pub fn argv(&self, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// Puts a finished layer step on the stage: its layer (if it made one) on top, its
    /// history entry, the chain moved to its key, and its record for `history`.
    pub fn finish_step(&mut self, step: FinishedStep) -> Result<()> {
        let size = step.layer.as_ref().map_or(0, |l| l.tar_size);
        let empty = step.layer.is_none() && step.deferred.is_none();
        if let Some(l) = step.layer {
            if self.layers_in_flight() {
                // On top of the layers being written, with its snapshot at hand: the
                // steps after it will need it (a step above a change rarely hits).
                let snapshot = match &step.snapshot {
                    Some(s) => s.clone(),
                    None => self.shared.store.snapshot(&l.digest, &l.diff_id)?,
                };
                self.snapshots.push(Some(snapshot));
                self.stack_known(l);
            } else {
                self.push_layer(l, step.snapshot.clone())?;
            }
        } else if let (Some(_), Some(snapshot)) = (&step.deferred, &step.snapshot) {
            // Its directory goes on top now, its record once written.
            self.snapshots.push(Some(snapshot.clone()));
        }
        self.last_created = step.created.clone();
        self.add_history(step.created_by.clone(), empty, Some(step.created));
        self.chain = step.key.clone();
        let pending = self.notes.pending.take().unwrap_or_default();
        if !pending.files.is_empty() {
            if let Err(e) = super::explain::save_files(self.shared.store, &step.key, &pending.files)
            {
                tracing::warn!("keeping the file list of a step: {e}");
            }
        }
        self.record_step(StepRecord {
            number: step.number,
            created_by: step.created_by,
            cache_key: Some(step.key),
            cached: step.cached,
            duration_ms: step.duration_ms,
            size,
            has_log: step.has_log,
            parent: Some(pending.parent),
            inputs: pending.inputs,
            miss: pending.miss,
            ..Default::default()
        });
        if let (Some(deferred), Some(snapshot)) = (step.deferred, step.snapshot) {
            self.defer(deferred, snapshot, step.number)?;
        }
        Ok(())
    }

    /// Records a step for the build record.
    pub fn record_step(&mut self, mut step: StepRecord) {
        step.stage = self.stage;
        step.text = self.notes.text.clone();
        self.steps.push(step);
    }

    /// Whether this stage's steps may come from the cache (not with `--no-cache`, nor for
    /// a stage `--no-cache-filter` names).
    pub fn uses_cache(&self) -> bool {
        let name = self.shared.graph.stages[self.stage].name.as_deref();
        !self.shared.options.no_cache
            && super::explain::filtered(self.shared.options, name, self.stage).is_none()
    }

    /// Notes the inputs of the keyed step about to look the cache up (`parent` is the key
    /// it chains to; `files` what a COPY or ADD selected).
    pub fn note_inputs(
        &mut self,
        parent: &CacheKey,
        inputs: &serde_json::Value,
        files: super::explain::FileList,
    ) {
        let mut inputs = inputs.clone();
        inputs["base"] = self.notes.base.clone();
        self.notes.pending =
            Some(PendingStep { parent: parent.clone(), inputs, files, miss: None });
    }

    /// The noted step missed the cache: works out why, says it, and keeps it for the record.
    pub fn explain_miss(&mut self, number: usize, key: &CacheKey) {
        let shared = self.shared;
        let Some(pending) = self.notes.pending.as_mut() else { return };
        let step = StepRecord {
            number,
            stage: self.stage,
            text: self.notes.text.clone(),
            cache_key: Some(key.clone()),
            parent: Some(pending.parent.clone()),
            inputs: pending.inputs.clone(),
            ..Default::default()
        };
        let cx = super::explain::MissContext {
            options: shared.options,
            stage_name: shared.graph.stages[self.stage].name.as_deref(),
            previous: shared.previous.as_ref(),
            missed_before: self.notes.missed,
            args: &self.args,
        };
        let reason = super::explain::why(shared.store, &cx, &step, &pending.files);
        let ran_before =
            shared.previous.as_ref().and_then(|p| super::explain::counterpart(p, &step)).is_some();
        shared.reporter.event(Event::CacheMiss { number, reason: reason.clone(), ran_before });
        pending.miss = Some(reason);
        self.notes.missed = Some(number);
    }
}

/// The key a stage's chain starts from: its base, and `SOURCE_DATE_EPOCH` (which sets
/// every time in the layers, so layers made with another one, or none, differ).
fn base_key(shared: &Shared<'_>, base: &str) -> CacheKey {
    match shared.options.source_date_epoch {
        Some(epoch) => CacheKey::base(&format!("{base} SOURCE_DATE_EPOCH={epoch}")),
        None => CacheKey::base(base),
    }
}

/// Reads a stored image into a stage's starting state.
fn image_state<'s, 'a>(
    shared: &'s Shared<'a>,
    stage: usize,
    image: &Image,
) -> Result<State<'s, 'a>> {
    let raw = shared.store.read_blob(image.id())?;
    let config: ImageConfig = serde_json::from_slice(&raw).map_err(Error::json("image config"))?;
    crate::store::check_layer_count(config.rootfs.diff_ids.len(), image.manifest.layers().len())?;
    let mut layers = Vec::new();
    for (l, d) in image.manifest.layers().iter().zip(&config.rootfs.diff_ids) {
        let diff_id: Digest =
            d.parse().map_err(|_| Error::BadArchive(format!("invalid diff ID {d}")))?;
        layers.push(LayerRecord {
            digest: l.digest().clone(),
            size: l.size(),
            media_type: l.media_type().clone(),
            diff_id,
            tar_size: 0,
        });
    }
    let last_created = config.created.clone().unwrap_or_else(|| super::rfc3339(0, 0));
    let snapshots = vec![None; layers.len()];
    Ok(State {
        shared,
        stage,
        chain: base_key(shared, image.id().as_ref()),
        config,
        layers,
        snapshots,
        args: Vec::new(),
        arg_env: Vec::new(),
        steps: Vec::new(),
        last_created,
        cmd_set: false,
        all_cached: true,
        base_id: Some(image.id().clone()),
        base_manifest: Some(image.entry.manifest.clone()),
        notes: StepNotes::default(),
        in_flight: Default::default(),
    })
}

fn scratch_state<'s, 'a>(shared: &'s Shared<'a>, stage: usize) -> State<'s, 'a> {
    let p = &shared.options.platform;
    let config = ImageConfig {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        // BuildKit's empty image: the default PATH, and `/` as the working directory.
        config: super::config::RunConfig {
            env: Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            ]),
            working_dir: Some("/".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    State {
        shared,
        stage,
        chain: base_key(shared, "scratch"),
        config,
        layers: Vec::new(),
        snapshots: Vec::new(),
        args: Vec::new(),
        arg_env: Vec::new(),
        steps: Vec::new(),
        last_created: super::now_rfc3339(shared.options.source_date_epoch),
        cmd_set: false,
        all_cached: true,
        base_id: None,
        base_manifest: None,
        notes: StepNotes::default(),
        in_flight: Default::default(),
    }
}

/// Finds or pulls a base image.
pub(crate) fn base_image(shared: &Shared<'_>, stage: usize, name: &str) -> Result<Image> {
    let name = match shared.options.named_contexts.get(&name.to_lowercase()) {
        Some(super::NamedContext::Image(r)) => r.as_str(),
        Some(super::NamedContext::Dir(d)) => {
            return Err(Error::Build(format!(
                "the build context {name} ({}) is a directory: COPY --from and RUN --mount \
                 take it, FROM needs an image (docker-image://REF)",
                d.display()
            )))
        }
        None => name,
    };
    let reference = Reference::parse(name)?;
    let store = shared.store;
    if !shared.options.pull {
        match store.resolve(&reference.to_string()) {
            Ok(image) => return Ok(image),
            Err(Error::NoSuchImage(_)) => {}
            Err(e) => return Err(e),
        }
    }
    shared.reporter.event(Event::Pulling { stage, reference: reference.familiar() });
    shared.source.pull(store, &reference, &shared.options.platform, shared.reporter)
}

/// Runs stage `index` to its end.
pub(crate) fn run_stage(shared: &Shared<'_>, index: usize) -> Result<StageOutcome> {
    let stage = &shared.graph.stages[index];
    let mut number = shared.first_step.get(&index).copied().unwrap_or(1);
    let from_text = shared
        .graph
        .stages
        .get(index)
        .map(|_| stage_from_text(shared, stage.span.start.line))
        .unwrap_or_default();
    shared.reporter.event(Event::Step {
        stage: index,
        number,
        total: shared.total_steps,
        text: from_text,
    });
    let _span = tracing::info_span!("stage", index).entered();
    let mut state = match &stage.base {
        StageBase::Scratch => scratch_state(shared, index),
        StageBase::Stage(i) => {
            let base = shared.finished(*i)?;
            State {
                shared,
                stage: index,
                config: base.config.clone(),
                layers: base.layers.clone(),
                snapshots: base.snapshots.iter().cloned().map(Some).collect(),
                chain: base.chain.clone(),
                args: Vec::new(),
                arg_env: base.arg_env.clone(),
                steps: Vec::new(),
                last_created: base.last_created.clone(),
                cmd_set: false,
                all_cached: true,
                base_id: None,
                base_manifest: None,
                notes: StepNotes::default(),
                in_flight: Default::default(),
            }
        }
        StageBase::Image(name) => {
            let image = shared.image(index, name)?;
            let state = image_state(shared, index, &image)?;
            let want = &shared.options.platform;
            if state.config.architecture != want.architecture || state.config.os != want.os {
                shared.reporter.event(Event::Warning(format!(
                    "the base image {name} is for {}/{}, not {want}",
                    state.config.os, state.config.architecture
                )));
            }
            state
        }
    };
    shared.reporter.event(Event::StepDone {
        number,
        id: state.current_id(),
        duration: Duration::ZERO,
        cached: false,
    });
    // ONBUILD triggers of the base run before the stage's own instructions, and leave it.
    let triggers = state.config.config.on_build.take().unwrap_or_default();
    if !triggers.is_empty() {
        shared.reporter.event(Event::Triggers { number, count: triggers.len() });
        for text in &triggers {
            let df = rbuild_parser::parse(&format!("{text}\n")).map_err(|e| {
                Error::Build(format!("the base image's ONBUILD trigger {text:?}: {e}"))
            })?;
            for mut inst in df.instructions {
                inst.span = stage.span;
                dispatch(&mut state, &inst, number)?;
            }
        }
    }
    for inst in &stage.instructions {
        number += 1;
        shared.reporter.event(Event::Step {
            stage: index,
            number,
            total: shared.total_steps,
            text: inst.original.trim().to_string(),
        });
        let started = Instant::now();
        let cached = dispatch(&mut state, inst, number)?;
        state.report_done(number, started.elapsed(), cached);
    }
    let waited = Instant::now();
    state.settle()?;
    shared.reporter.event(Event::Timings {
        number: None,
        phases: vec![("last layer of a stage", waited.elapsed())],
    });
    let snapshots = state.snapshots()?;
    let unchanged_base = state.base_id.clone().zip(state.base_manifest.clone());
    Ok(StageOutcome {
        unchanged_base,
        arg_env: state.arg_env,
        config: state.config,
        layers: state.layers,
        snapshots,
        chain: state.chain,
        steps: state.steps,
        last_created: state.last_created,
    })
}

fn stage_from_text(shared: &Shared<'_>, line: usize) -> String {
    let text =
        shared.options.dockerfile_text.split('\n').nth(line.saturating_sub(1)).unwrap_or("FROM");
    text.trim().to_string()
}

/// Runs one instruction. Returns whether it came from the cache.
fn dispatch(state: &mut State<'_, '_>, inst: &Instruction, number: usize) -> Result<bool> {
    if state.notes.base.is_null() {
        state.notes.base = base_description(state);
    }
    state.notes.text = inst.original.trim().to_string();
    state.base_id = None;
    match &inst.kind {
        InstructionKind::Run { .. } => return super::run::run(state, inst, number),
        InstructionKind::Copy(c) => return super::copy::copy(state, inst, c, false, number),
        InstructionKind::Add(c) => return super::copy::copy(state, inst, c, true, number),
        InstructionKind::Workdir(path) => {
            let path = state.expand(inst, path)?;
            let wd = super::workdir::normalize(&state.workdir(), &path);
            state.config.config.working_dir = Some(wd.clone());
            return super::workdir::make_workdir(state, inst, &wd, number);
        }
        InstructionKind::From { .. } => {
            return Err(state.error(inst, "FROM cannot be used here"));
        }
        _ => super::metadata::apply(state, inst)?,
    }
    state.record_step(StepRecord {
        number,
        created_by: history_text(inst),
        cache_key: None,
        cached: state.all_cached,
        ..Default::default()
    });
    Ok(state.all_cached)
}

/// The stage's base for explanations: `{"name", "id"}` (an image's name and ID, another
/// stage's name, or scratch).
fn base_description(state: &State<'_, '_>) -> serde_json::Value {
    let stage = &state.shared.graph.stages[state.stage];
    match &stage.base {
        StageBase::Image(name) => serde_json::json!({
            "name": name,
            "id": state.base_id.as_ref().map(|d| d.to_string()),
        }),
        StageBase::Stage(i) => {
            let other = &state.shared.graph.stages[*i];
            let name = other.name.clone().unwrap_or_else(|| i.to_string());
            serde_json::json!({"name": format!("stage {name}"), "id": null})
        }
        StageBase::Scratch => serde_json::json!({"name": "scratch", "id": null}),
    }
}
