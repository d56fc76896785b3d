//! A build as `rbuild build` and a CI job run it, end to end: import shared caches, build,
//! write the outputs, export the cache, push the tags. Each step reports through the
//! same [`Reporter`]; a failed cache import is a warning, as with buildx.

use std::io::Write;

use rbuild_registry_client::ClientOptions;

use crate::engine::shared_cache::{self, CacheLocation};
use crate::engine::{self, BuildOptions, BuildResult, Executor};
use crate::error::Result;
use crate::export::{self, Output};
use crate::remote::{self, RegistrySource};
use crate::report::{Event, Reporter};
use crate::store::Store;
use crate::Dockerfile;

/// What to do around the build itself.
#[derive(Debug, Clone, Default)]
pub struct BuildJob {
    /// Caches to import first (`--cache-from`).
    pub cache_from: Vec<CacheLocation>,
    /// Where to export the cache of every step (`--cache-to`).
    pub cache_to: Option<CacheLocation>,
    /// Where to write the result besides the store (`--output`).
    pub output: Option<Output>,
    /// Push every tag to its registry (`--push`).
    pub push: bool,
    /// How registries are reached (base images, caches, pushes).
    pub registry: ClientOptions,
}

/// Runs `job` around the build of `df` with `options`: RUN steps through `executor`,
/// events to `reporter`, outputs without a path to `stream`.
pub fn build(
    store: &Store,
    df: &Dockerfile,
    options: &BuildOptions,
    job: &BuildJob,
    executor: &dyn Executor,
    reporter: &dyn Reporter,
    stream: &mut dyn Write,
) -> Result<BuildResult> {
    for location in &job.cache_from {
        match shared_cache::import_from(store, location, &job.registry, reporter) {
            Ok(n) => tracing::info!(records = n, "imported a build cache"),
            Err(e) => reporter.event(Event::Warning(format!(
                "no build cache imported from {location:?}: {}",
                crate::error::chain(&e)
            ))),
        }
    }
    if let Some(syntax) = df.tree.directive("syntax") {
        if !engine::flags::builtin_syntax(syntax) {
            reporter.event(Event::Warning(format!(
                "the syntax image {syntax} is not used: rbuild builds with its own Dockerfile frontend"
            )));
        }
    }
    let source = RegistrySource::new(job.registry.clone());
    let result = engine::build(store, df, options, &source, executor, reporter)?;
    if let Some(output) = &job.output {
        let image = store.resolve(result.image_id.as_ref())?;
        export::export(store, &image, &options.tags, output, stream)?;
    }
    if let Some(location) = &job.cache_to {
        shared_cache::export_to(store, &result.steps, location, &job.registry)?;
    }
    if job.push {
        let client = remote::client(job.registry.clone())?;
        for tag in &options.tags {
            let image = store.resolve(&tag.to_string())?;
            remote::push_image(store, &client, &image, tag, reporter)?;
        }
    }
    Ok(result)
}

/// What `prune` removes besides untagged images and unused blobs.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// The build cache (cache records, step logs and the download cache).
    pub build_cache: bool,
    /// `RUN --mount=type=cache` directories.
    pub cache_mounts: bool,
    /// Every layer snapshot, not only those of layers no image uses.
    pub all_snapshots: bool,
    /// Also images with names, when no container uses them (docker's `system prune -a`).
    pub all_images: bool,
    /// Only images that pass this filter go.
    pub filter: ImageFilter,
}

/// Docker's prune filters over images: `until` (made before a time) and `label`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// Only images created before this time (Unix seconds).
    pub until: Option<i64>,
    /// Labels an image must have (`label=KEY` or `label=KEY=VALUE`).
    pub labels: Vec<(String, Option<String>)>,
    /// Labels an image must not have (`label!=...`).
    pub not_labels: Vec<(String, Option<String>)>,
}

impl ImageFilter {
    /// Whether `image` passes; `created` is its creation time in Unix seconds.
    pub fn passes(&self, image: &crate::store::Image, created: Option<i64>) -> bool {
        let labels =
            image.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
        let has = |(k, v): &(String, Option<String>)| {
            labels.get(k).is_some_and(|got| v.as_ref().is_none_or(|v| v == got))
        };
        self.until.is_none_or(|t| created.is_some_and(|c| c < t))
            && self.labels.iter().all(has)
            && !self.not_labels.iter().any(has)
    }
}

/// What `prune` removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// IDs of the images removed.
    pub deleted: Vec<oci_spec::image::Digest>,
    /// Names taken off the images removed.
    pub untagged: Vec<crate::reference::Reference>,
    /// Bytes freed.
    pub freed: u64,
}

/// Removes untagged images (with `all_images`, every image no container uses), unused
/// blobs, leftovers of interrupted commands, and what `options` adds.
pub fn prune(store: &Store, options: PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let used: Vec<String> =
        crate::container::list(store)?.iter().map(|r| r.manifest.digest().to_string()).collect();
    for entry in store.images()? {
        let unused = !used.contains(&entry.manifest.digest().to_string());
        let goes = entry.names.is_empty() || (options.all_images && unused);
        if !goes {
            continue;
        }
        let image = store.image(&entry)?;
        let created = image.config.created().as_deref().and_then(crate::time::parse_rfc3339);
        if !options.filter.passes(&image, created) {
            continue;
        }
        let removed = store.remove(entry.manifest.digest().as_ref(), true)?;
        report.deleted.extend(removed.deleted);
        report.untagged.extend(removed.untagged);
    }
    if options.build_cache {
        report.freed += store.clear_cache()?;
        // The download cache is build cache too (docker's `builder prune` empties all).
        report.freed += crate::downloads::prune(store)?;
    }
    if options.cache_mounts {
        report.freed += engine::remove_cache_mounts(store)?;
    }
    report.freed += store.collect_garbage()?;
    report.freed += store.remove_snapshots(options.all_snapshots)?;
    Ok(report)
}
