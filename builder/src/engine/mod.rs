//! The build: a Dockerfile's stage graph run step by step into an image in the store.
//!
//! [`build`] takes the parsed Dockerfile, works out which stages the target needs, and
//! runs independent stages in parallel (at most one per core). Each stage starts from its
//! base (an image, pulled through an [`ImageSource`] when missing; `scratch`; or an earlier
//! stage), runs its base's ONBUILD triggers, then its instructions. RUN goes through an
//! [`Executor`] (the sandbox, in a helper process); RUN, COPY and ADD each commit their
//! file system change as a layer, looked up first in the [cache](cache). Metadata
//! instructions change the [image config](config). Progress goes to a [`Reporter`].

pub mod cache;
mod commit;
pub mod config;
pub mod context;
mod copy;
mod executor;
pub mod explain;
pub mod flags;
mod gofmt;
mod in_place;
mod inflight;
pub mod lint;
mod metadata;
mod mounts;
pub mod record;
pub mod rootfs;
mod run;
pub mod shared_cache;
mod stage;
mod vars;
mod walk;
mod workdir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, Digest, MediaType};

pub use executor::{Executor, ProcessExecutor, RecordingExecutor};
pub use in_place::InPlaceExecutor;
pub use mounts::{remove_cache_mounts, Secret};
pub use stage::StageOutcome;

pub use crate::report::{Event, NoReport, Reporter};

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::{Image, Store};
use context::BuildContext;
use rbuild_parser::{Dockerfile, StageBase, StageGraph};
use record::{BuildRecord, StepRecord};

/// An OS, architecture and variant (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64` ...
    pub architecture: String,
    /// `v8`, `v7` ...
    pub variant: Option<String>,
}

impl Platform {
    /// The platform rbuild runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        }
        .to_string();
        let variant = (architecture == "arm64").then(|| "v8".to_string());
        Platform { os: "linux".into(), architecture, variant }
    }

    /// Whether an index entry's platform is this one (any variant when this one names
    /// none).
    pub fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && (self.variant.is_none() || p.variant().as_deref() == self.variant.as_deref())
    }

    /// The kernel's name of the architecture (`uname -m`, binfmt_misc handler names).
    pub fn machine(&self) -> &str {
        match self.architecture.as_str() {
            "amd64" => "x86_64",
            "386" => "i386",
            "arm64" => "aarch64",
            "mips64le" => "mips64el",
            other => other,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, v] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::InvalidOption(format!(
                "invalid platform {text:?}: expected os/arch[/variant]"
            ))),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Where images and remote files come from: the registry client, supplied by the caller
/// (the builder itself knows no network).
pub trait ImageSource: Send + Sync {
    /// Pulls `reference` for `platform` into the store and returns it.
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
        reporter: &dyn Reporter,
    ) -> Result<Image>;
    /// Downloads `url` into the file `dest`; returns the `Last-Modified` time (Unix
    /// seconds) when the server sent one.
    fn download(&self, url: &str, dest: &std::path::Path) -> Result<Option<i64>>;
}

/// Network of RUN steps.
pub use crate::sandbox::Network;

/// A named build context (`--build-context NAME=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (`NAME=DIR`): files for `COPY --from` and `RUN --mount`.
    Dir(PathBuf),
    /// An image (`NAME=docker-image://REF`), for `FROM`, `COPY --from` and mounts.
    Image(String),
}

impl NamedContext {
    /// Parses the value of `--build-context NAME=VALUE`.
    pub fn parse(value: &str) -> Result<NamedContext> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            Reference::parse(r)?;
            return Ok(NamedContext::Image(r.to_string()));
        }
        for scheme in
            ["oci-layout://", "target:", "input:", "http://", "https://", "git@", "git://"]
        {
            if value.starts_with(scheme) {
                return Err(Error::Build(format!(
                    "--build-context {value:?}: rbuild takes a local directory or docker-image://REF"
                )));
            }
        }
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(Error::Build(format!("--build-context: {value:?} is not a directory")));
        }
        Ok(NamedContext::Dir(dir))
    }
}

/// Everything a build needs besides the store.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile_text: String,
    /// Its name for messages (`Dockerfile`, `path/to/Containerfile`, `-`).
    pub dockerfile_name: String,
    /// The Dockerfile's host path (for `<Dockerfile>.dockerignore`), if it has one.
    pub dockerfile_path: Option<PathBuf>,
    /// Names to tag the result with.
    pub tags: Vec<Reference>,
    /// `--build-arg`s (a `None` value takes the caller's environment variable).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (names or indexes) whose steps all run again.
    pub no_cache_filter: Vec<String>,
    /// `--add-host`, `--shm-size`, `--ulimit` for every RUN.
    pub run_extras: crate::sandbox::RunExtras,
    /// `--build-context NAME=...`: what `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` mean when no stage has that name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--annotation`: annotations of the image's manifest.
    pub annotations: BTreeMap<String, String>,
    /// `--pull`: pull every base image even when it is in the store.
    pub pull: bool,
    /// `--label`s for the final image.
    pub labels: BTreeMap<String, String>,
    /// RUN's network.
    pub network: Network,
    /// Whether `RUN --network=host` is allowed (`--allow network.host`).
    pub allow_host_network: bool,
    /// The platform to build for.
    pub platform: Platform,
    /// Stages run at once, at most.
    pub jobs: usize,
    /// `SOURCE_DATE_EPOCH`: clamp times in layers and use it as every created time.
    pub source_date_epoch: Option<u64>,
    /// `--secret`s by id, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, Secret>,
    /// `--ssh` agent sockets by id, for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// Whether RUN steps' apt downloads go through the store's download cache (on unless
    /// `--download-cache=false`; see [`crate::downloads`]).
    pub download_cache: bool,
}

impl BuildOptions {
    /// The options `rbuild build` starts from for `dockerfile` in `context`: no tags or
    /// build arguments, the cache used, the default network, this machine's platform, a
    /// stage per core at once.
    pub fn new(context: impl Into<PathBuf>, dockerfile: flags::DockerfileInput) -> BuildOptions {
        BuildOptions {
            context: context.into(),
            dockerfile_text: dockerfile.text,
            dockerfile_name: dockerfile.name,
            dockerfile_path: dockerfile.path,
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            no_cache_filter: Vec::new(),
            run_extras: Default::default(),
            named_contexts: BTreeMap::new(),
            annotations: BTreeMap::new(),
            pull: false,
            labels: BTreeMap::new(),
            network: Network::Private,
            allow_host_network: false,
            platform: Platform::host(),
            jobs: crate::cores(),
            source_date_epoch: None,
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            download_cache: true,
        }
    }

    /// [`BuildOptions::new`] for the context's own `Dockerfile` (or `Containerfile`).
    pub fn from_context(context: impl Into<PathBuf>) -> Result<BuildOptions> {
        let context = context.into();
        let dockerfile = flags::DockerfileInput::read(None, &context, false, std::io::empty())?;
        Ok(BuildOptions::new(context, dockerfile))
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image ID (config digest).
    pub image_id: Digest,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// Every step, in build order.
    pub steps: Vec<StepRecord>,
    /// Steps taken from the cache.
    pub cached: usize,
    /// What the build checks found.
    pub checks: Vec<rbuild_parser::checks::Finding>,
}

/// The state shared by the stages of one build.
/// A thread writing a step's layer: it ends with the directory to adopt as the layer's
/// snapshot and the layer's diff ID (nothing when the layer failed: the stage reports it).
pub(crate) type LayerThread = std::thread::JoinHandle<Result<Option<(PathBuf, Digest)>>>;

pub(crate) struct Shared<'a> {
    pub store: &'a Store,
    pub options: &'a BuildOptions,
    pub context: BuildContext,
    pub source: &'a dyn ImageSource,
    pub executor: &'a dyn Executor,
    /// The caller's reporter behind an ordering queue: a step whose layer is written in
    /// the background reports its end from there (see [`stage::State::finish_step`]).
    pub reporter: &'a crate::report::Ordered,
    pub graph: StageGraph,
    pub escape: char,
    /// Step numbers: the first step number of each stage built.
    pub first_step: BTreeMap<usize, usize>,
    pub total_steps: usize,
    /// Build args that some ARG consumed.
    pub used_args: Mutex<std::collections::BTreeSet<String>>,
    /// Finished stages.
    pub done: Mutex<BTreeMap<usize, Arc<StageOutcome>>>,
    /// Images the build needs (bases, COPY --from, mount sources), found or pulled once.
    pub images: Mutex<BTreeMap<String, Arc<Image>>>,
    /// Layers being written and made durable (synced, renamed into place, recorded in
    /// the cache) while the build goes on; joined before the image is written. Each
    /// gives the directory to adopt as its snapshot, with the layer's diff ID.
    pub pending: Mutex<Vec<LayerThread>>,
    /// Sandbox directories of finished steps, removed when the build ends.
    pub leftovers: Mutex<Vec<PathBuf>>,
    /// The record of the last build of the same line (tag and target), to explain misses.
    pub previous: Option<record::BuildRecord>,
    /// The digests of directory contexts (`--build-context NAME=DIR`), hashed once a build.
    pub dir_digests: Mutex<BTreeMap<String, String>>,
}

impl Shared<'_> {
    /// Keeps a thread that writes a layer or reports a step's end, joined before the
    /// image is written (see [`Shared::pending`]).
    pub(crate) fn keep_thread(&self, handle: LayerThread) {
        if let Ok(mut p) = self.pending.lock() {
            p.push(handle);
        }
    }

    /// Has `dir` removed when the build ends.
    pub fn leave_for_the_end(&self, dir: PathBuf) {
        if let Ok(mut l) = self.leftovers.lock() {
            l.push(dir);
        }
    }

    /// The outcome of stage `index`, which must have finished.
    pub fn finished(&self, index: usize) -> Result<Arc<StageOutcome>> {
        let done = self.done.lock().map_err(|_| Error::Panicked("a stage thread"))?;
        done.get(&index)
            .cloned()
            .ok_or_else(|| Error::Build(format!("stage {index} has not been built")))
    }

    /// The file system a `--from=NAME` names (COPY, `RUN --mount`), with the key that
    /// stands for it: a finished stage's, else an image's (from the store, or pulled once
    /// per build).
    pub fn view_of(&self, stage: usize, name: &str) -> Result<(rootfs::RootfsView, String)> {
        let named = self.options.named_contexts.get(&name.to_lowercase());
        if let Some(NamedContext::Dir(dir)) = named {
            let key = name.to_lowercase();
            let known = self.dir_digests.lock().ok().and_then(|m| m.get(&key).cloned());
            let digest = match known {
                Some(d) => d,
                None => {
                    let d = context::tree_digest(dir)?;
                    if let Ok(mut m) = self.dir_digests.lock() {
                        m.insert(key, d.clone());
                    }
                    d
                }
            };
            return Ok((rootfs::RootfsView::new(vec![dir.clone()]), format!("dir:{digest}")));
        }
        if let Some(i) = stage_by_ref(&self.graph, name).filter(|_| named.is_none()) {
            let o = self.finished(i)?;
            return Ok((
                rootfs::RootfsView::new(o.snapshots.clone()),
                format!("stage:{}", o.chain.0),
            ));
        }
        let image = self.image(stage, name)?;
        let snaps = self.store.snapshots(&image)?;
        Ok((rootfs::RootfsView::new(snaps), format!("image:{}", image.id())))
    }

    /// An image a stage needs (a base, a `COPY --from`, a mount's source): from the store
    /// or pulled, once per build whatever asks for it.
    pub fn image(&self, stage: usize, name: &str) -> Result<Arc<Image>> {
        if let Some(image) = self.images.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(image);
        }
        let image = Arc::new(stage::base_image(self, stage, name)?);
        if let Ok(mut m) = self.images.lock() {
            m.insert(name.to_string(), image.clone());
        }
        Ok(image)
    }

    /// Waits for every layer being finished, then adopts their directories as
    /// snapshots (only now: until the build's end, steps may stack them where they are);
    /// the first failure, if any.
    fn join_pending(&self) -> Result<()> {
        let handles = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| Err(Error::Panicked("a layer-writing thread")));
            let r = match r {
                Ok(Some((dir, diff_id))) => {
                    self.store.adopt_recorded_snapshot(&dir, &diff_id).map(|duplicate| {
                        // A snapshot the store had already: removed with the leftovers.
                        if let Some(dir) = duplicate {
                            self.leave_for_the_end(dir);
                        }
                    })
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Directories removed on a thread of their own, joined when this is dropped.
struct Removal(Option<std::thread::JoinHandle<()>>);

impl Removal {
    fn start(dirs: Vec<PathBuf>) -> Self {
        if dirs.is_empty() {
            return Removal(None);
        }
        let remove = |dirs: &[PathBuf]| {
            for dir in dirs {
                let _ = crate::store::remove_tree(dir);
            }
        };
        let theirs = dirs.clone();
        match std::thread::Builder::new().name("leftovers".into()).spawn(move || remove(&theirs)) {
            Ok(handle) => Removal(Some(handle)),
            // Without a thread, removed here and now.
            Err(_) => {
                remove(&dirs);
                Removal(None)
            }
        }
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Now, or `SOURCE_DATE_EPOCH`, as RFC 3339.
pub(crate) fn now_rfc3339(epoch: Option<u64>) -> String {
    let now = epoch.map(|e| e as i64).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let nanos = if epoch.is_some() {
        0
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    };
    rfc3339(now, nanos)
}

/// Formats Unix seconds and nanoseconds as RFC 3339 in UTC.
pub(crate) fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs a build. `df` is the parsed Dockerfile.
pub fn build(
    store: &Store,
    df: &Dockerfile,
    options: &BuildOptions,
    source: &dyn ImageSource,
    executor: &dyn Executor,
    reporter: &dyn Reporter,
) -> Result<BuildResult> {
    let (ordered, pump) = crate::report::Ordered::new();
    std::thread::scope(|scope| {
        scope.spawn(|| pump.run(reporter));
        // Closed however the build ends (a panic too), so the pump, which the scope
        // waits for, ends.
        let closing = CloseOnDrop(&ordered);
        build_ordered(store, df, options, source, executor, closing.0)
    })
}

/// Closes an [`crate::report::Ordered`] reporter when dropped.
struct CloseOnDrop<'a>(&'a crate::report::Ordered);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Opens the build context; its listing is made in the background from the start when
/// a stage to build has a COPY or ADD from it.
fn open_context(
    store: &Store,
    options: &BuildOptions,
    graph: &StageGraph,
    order: &[usize],
) -> Result<BuildContext> {
    let context = BuildContext::open(
        &options.context,
        options.dockerfile_path.as_deref(),
        Some(&store.root().join("context-cache")),
    )?;
    if copies_from_context(graph, order) {
        context.prefetch();
    }
    Ok(context)
}

/// The instructions of the stages to build.
fn instructions<'g>(
    graph: &'g StageGraph,
    order: &'g [usize],
) -> impl Iterator<Item = &'g rbuild_parser::Instruction> {
    order.iter().filter_map(|&i| graph.stages.get(i)).flat_map(|s| &s.instructions)
}

/// Whether a stage to build has a COPY or ADD from the build context.
fn copies_from_context(graph: &StageGraph, order: &[usize]) -> bool {
    instructions(graph, order).any(|inst| {
        matches!(&inst.kind, rbuild_parser::InstructionKind::Copy(c) | rbuild_parser::InstructionKind::Add(c)
            if c.from.is_none() && !c.sources.is_empty())
    })
}

/// Whether a stage to build has a RUN step.
fn runs_commands(graph: &StageGraph, order: &[usize]) -> bool {
    instructions(graph, order)
        .any(|inst| matches!(&inst.kind, rbuild_parser::InstructionKind::Run { .. }))
}

/// [`build`], its events through `reporter`'s queue.
fn build_ordered(
    store: &Store,
    df: &Dockerfile,
    options: &BuildOptions,
    source: &dyn ImageSource,
    executor: &dyn Executor,
    reporter: &crate::report::Ordered,
) -> Result<BuildResult> {
    let _in_use = store.in_use()?;
    // Global ARGs take --build-arg values, else the automatic platform values.
    let mut graph_args: BTreeMap<String, String> =
        vars::platform_args(&options.platform, &Platform::host()).into_iter().collect();
    graph_args.extend(options.build_args.clone());
    let mut graph = StageGraph::build(df, &graph_args).map_err(|e| parse_error(options, &e))?;
    override_stages(&mut graph, &options.named_contexts);
    let order = graph.order_for(options.target.as_deref()).map_err(|e| parse_error(options, &e))?;
    let target = *order.last().ok_or_else(|| Error::Build("nothing to build".into()))?;
    let context = open_context(store, options, &graph, &order)?;
    if runs_commands(&graph, &order) {
        executor.prepare();
    }
    // Steps are numbered in file order over the stages built, FROM included.
    let mut needed: Vec<usize> = order.clone();
    needed.sort_unstable();
    let mut first_step = BTreeMap::new();
    let mut total = 0;
    for &i in &needed {
        first_step.insert(i, total + 1);
        total += 1 + graph.stages[i].instructions.len();
    }
    let graph_global_names = graph.global_args.iter().map(|(n, _)| n.clone()).collect();
    let shared = Shared {
        store,
        options,
        context,
        source,
        executor,
        reporter,
        escape: df.tree.escape,
        graph,
        first_step,
        total_steps: total,
        // A global ARG consumes its --build-arg whether or not a stage declares it again.
        used_args: Mutex::new(graph_global_names),
        done: Default::default(),
        images: Default::default(),
        pending: Default::default(),
        leftovers: Default::default(),
        previous: explain::previous(store, &explain::lineage(options)),
        dir_digests: Default::default(),
    };
    let check_config = lint::config(df, options)?;
    if check_config.error {
        // error=true fails before any step runs, with every base image known.
        lint::fetch_bases(&shared, &shared.graph, &order)?;
        let found = lint::run(store, df, options, Some(shared.context.ignore()), &check_config);
        if !found.is_empty() {
            reporter.event(Event::Checks(found.clone()));
            return Err(lint::violation(&found));
        }
    }
    let ran = run_stages(&shared, &order);
    let waited = std::time::Instant::now();
    let finished = shared.join_pending();
    let leftovers =
        shared.leftovers.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    // Removed beside the image's records (about 1 ms for one RUN's directory, on the
    // critical path before), and always before this function returns.
    let _removal = Removal::start(leftovers);
    reporter
        .event(Event::Timings { number: None, phases: vec![("layers synced", waited.elapsed())] });
    let checks = lint::run(store, df, options, Some(shared.context.ignore()), &check_config);
    reporter.event(Event::Checks(checks.clone()));
    ran?;
    finished?;
    shared.context.save_stat_cache();
    let unused: Vec<String> = options
        .build_args
        .keys()
        .filter(|k| !vars::is_predefined(k))
        .filter(|k| shared.used_args.lock().map(|u| !u.contains(*k)).unwrap_or(false))
        .cloned()
        .collect();
    if !unused.is_empty() {
        reporter.event(Event::Warning(format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        )));
    }
    let done = shared.done.lock().map_err(|_| Error::Panicked("a stage thread"))?;
    let outcome = done
        .get(&target)
        .cloned()
        .ok_or_else(|| Error::Build("the target stage did not finish".into()))?;
    let mut steps: Vec<StepRecord> = done.values().flat_map(|o| o.steps.clone()).collect();
    steps.sort_by_key(|s| s.number);
    drop(done);
    // A stage that changed nothing in its base image is that image, as with Docker.
    let (image_id, manifest) = match &outcome.unchanged_base {
        Some((id, manifest)) if options.labels.is_empty() && options.annotations.is_empty() => {
            let mut m = Descriptor::new(
                manifest.media_type().clone(),
                manifest.size(),
                manifest.digest().clone(),
            );
            m.set_annotations(None);
            (id.clone(), m)
        }
        _ => commit_image(store, &outcome, options)?,
    };
    store.add_image(&manifest, &options.tags)?;
    let record = BuildRecord { steps: outcome.steps.clone(), all_steps: steps.clone() };
    store.save_build_record(&image_id, &record)?;
    explain::remember(store, &explain::lineage(options), &image_id)?;
    let cached = steps.iter().filter(|s| s.cached).count();
    Ok(BuildResult { image_id, manifest, steps, cached, checks })
}

/// A named context takes the place of the stage of the same name, as in BuildKit: what
/// named the stage (`FROM`, `COPY --from`, `RUN --mount=from=`) now names the context, and
/// the stage is no longer needed for it.
fn override_stages(graph: &mut StageGraph, named: &BTreeMap<String, NamedContext>) {
    let overridden: Vec<(usize, String)> = graph
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.name.clone().filter(|n| named.contains_key(n)).map(|n| (i, n)))
        .collect();
    for stage in &mut graph.stages {
        stage.edges.retain(|(t, _)| !overridden.iter().any(|(i, _)| i == t));
        if let StageBase::Stage(t) = stage.base {
            if let Some((_, name)) = overridden.iter().find(|(i, _)| *i == t) {
                stage.base = StageBase::Image(name.clone());
            }
        }
    }
}

fn parse_error(options: &BuildOptions, e: &rbuild_parser::ParseError) -> Error {
    let step = crate::error::StepError::new(&options.dockerfile_name, &options.dockerfile_text, e);
    Error::Step(Box::new(step))
}

/// Runs the stages of `order`, each once its dependencies are done, at most
/// `options.jobs` at a time.
fn run_stages(shared: &Shared<'_>, order: &[usize]) -> Result<()> {
    let jobs = shared.options.jobs.max(1);
    let deps =
        |i: usize| -> Vec<usize> { shared.graph.stages[i].edges.iter().map(|(t, _)| *t).collect() };
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<StageOutcome>)>();
    std::thread::scope(|scope| {
        let mut pending: Vec<usize> = order.to_vec();
        let mut running = 0usize;
        let mut first_error: Option<Error> = None;
        loop {
            if first_error.is_none() {
                let finished: Vec<usize> =
                    shared.done.lock().map(|d| d.keys().copied().collect()).unwrap_or_default();
                let mut i = 0;
                while i < pending.len() && running < jobs {
                    let s = pending[i];
                    if deps(s).iter().all(|d| finished.contains(d)) {
                        pending.remove(i);
                        running += 1;
                        let tx = tx.clone();
                        scope.spawn(move || {
                            let result = stage::run_stage(shared, s);
                            let _ = tx.send((s, result));
                        });
                    } else {
                        i += 1;
                    }
                }
            }
            if running == 0 {
                break;
            }
            // Every running stage sends exactly once, so this cannot wait forever.
            let Ok((s, result)) = rx.recv() else { break };
            running -= 1;
            match result {
                Ok(outcome) => {
                    if let Ok(mut d) = shared.done.lock() {
                        d.insert(s, Arc::new(outcome));
                    }
                }
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if !pending.is_empty() => {
                Err(Error::Build("some stages could not be scheduled".into()))
            }
            None => Ok(()),
        }
    })
}

/// Writes the final config and manifest of a stage to the store.
/// The config an image gets: `--label`s added, created when its last step was.
pub(crate) fn final_config(
    config: &config::ImageConfig,
    labels: &BTreeMap<String, String>,
) -> config::ImageConfig {
    let mut config = config.clone();
    if !labels.is_empty() {
        config.config.labels.get_or_insert_with(BTreeMap::new).extend(labels.clone());
    }
    config.created = config.history.iter().rev().find_map(|h| h.created.clone()).or(config.created);
    config
}

fn commit_image(
    store: &Store,
    outcome: &StageOutcome,
    options: &BuildOptions,
) -> Result<(Digest, Descriptor)> {
    let config = final_config(&outcome.config, &options.labels);
    let config_bytes = config.to_bytes();
    let config_digest = store.put_bytes(&config_bytes)?;
    let layers: Vec<Descriptor> = outcome
        .layers
        .iter()
        .map(|l| Descriptor::new(l.media_type.clone(), l.size, l.digest.clone()))
        .collect();
    let config_desc =
        Descriptor::new(MediaType::ImageConfig, config_bytes.len() as u64, config_digest.clone());
    let mut manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layers)
        .build()
        .map_err(|e| Error::Build(format!("making the manifest: {e}")))?;
    if !options.annotations.is_empty() {
        manifest.set_annotations(Some(options.annotations.clone().into_iter().collect()));
    }
    let bytes = serde_json::to_vec(&manifest).map_err(Error::json("manifest"))?;
    let digest = store.put_bytes(&bytes)?;
    Ok((config_digest, Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest)))
}

/// Finds the stage a name or index refers to, for `COPY --from`.
pub(crate) fn stage_by_ref(graph: &StageGraph, reference: &str) -> Option<usize> {
    let lower = reference.to_lowercase();
    graph
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| reference.parse::<usize>().ok().filter(|i| *i < graph.stages.len()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
    }
}
