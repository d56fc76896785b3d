//! # rbuild-builder
//!
//! The build engine behind `rbuild build`, the local image store every command shares,
//! and the workflows around them. A program that embeds rbuild (a CI tool, a test
//! harness, a server) calls these; the `rbuild` binary only reads flags and draws events.
//!
//! - [`engine`]: the build itself: the stage graph run step by step (stages in parallel),
//!   RUN through an [`Executor`](engine::Executor) (the sandbox in a helper process, or a
//!   [`RecordingExecutor`](engine::RecordingExecutor) in tests), COPY and ADD, content-based
//!   cache keys, Docker's image config and history; [`engine::flags`] reads buildx's
//!   flag syntaxes.
//! - [`workflow`]: a build as CI runs it (cache import, build, outputs, cache export,
//!   push), and prune.
//! - [`remote`]: the bridge between the store and registries (pull, push, base images for
//!   the engine); [`export`]: `--output` and image archives; [`archive`]: `docker save`
//!   and OCI archives read and written.
//! - [`container`]: a command run in an image (`rbuild run`).
//! - [`report`]: the [`Event`](report::Event)s every workflow sends to one
//!   [`Reporter`](report::Reporter).
//! - [`store`]: the content-addressed image store (an OCI image layout: verified blobs,
//!   crash-safe writes, names in `index.json`, garbage collection, fsck).
//! - [`snapshot`]: layers applied onto directories (OCI whiteouts, never writing outside
//!   them) and made from changes, deterministic, compressed on every core.
//! - [`sandbox`]: the only place with raw system calls: a command in Linux namespaces over
//!   an overlay of layer snapshots, confined as Docker confines a container.
//! - [`reference`], [`digest`], [`limits`], [`users`]: image references, digests, input
//!   caps, an image's users and groups.
//!
//! Build a Dockerfile from a directory into a store (a `FROM scratch` build needs
//! neither root nor a network; RUN steps go to the executor):
//!
//! ```
//! use rbuild_builder::engine::{self, BuildOptions, RecordingExecutor};
//! use rbuild_builder::remote::RegistrySource;
//! use rbuild_builder::report::{Event, RecordingReporter};
//! use rbuild_builder::store::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let context = dir.path().join("context");
//! std::fs::create_dir(&context)?;
//! std::fs::write(context.join("hello.txt"), "hello\n")?;
//! std::fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY hello.txt /\n")?;
//!
//! let store = Store::open(dir.path().join("store"))?;
//! let mut options = BuildOptions::from_context(&context)?;
//! options.tags = vec!["hello:latest".parse()?];
//! let dockerfile = rbuild_builder::parse(&options.dockerfile_text)?;
//! let events = RecordingReporter::default();
//! let built = engine::build(
//!     &store,
//!     &dockerfile,
//!     &options,
//!     &RegistrySource::default(),
//!     &RecordingExecutor::default(),
//!     &events,
//! )?;
//! assert_eq!(store.resolve("hello")?.id(), &built.image_id);
//! assert!(events.events().iter().any(|e| matches!(e, Event::Step { number: 2, .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod container;
pub mod digest;
pub mod downloads;
pub mod engine;
mod error;
pub mod export;
mod handoff;
pub mod limits;
pub mod reference;
pub mod remote;
pub mod report;
// The sandbox is the one module allowed `unsafe` (each use with a SAFETY comment).
#[allow(unsafe_code)]
pub mod sandbox;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod users;
pub mod workflow;

pub use error::{chain, Error, Result, StepError};
pub use rbuild_parser::{parse, Dockerfile, StageGraph};

/// The cores rbuild may use, read once: the standard library reads the cgroup's CPU
/// quota files on each call (0.3 ms each), and a build asked it per COPY step.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Runs `a` on a thread of its own and `b` on this one at the same time, and returns both
/// results (`None` for `a` when it panicked); when no thread can be started, runs them
/// here one after the other (where `std::thread::scope`'s `spawn` would panic).
pub(crate) fn concurrently<A, B, RA, RB>(a: A, b: B) -> (Option<RA>, RB)
where
    A: FnOnce() -> RA + Send,
    RA: Send,
    B: FnOnce() -> RB,
{
    // The thread takes `a` from here; when it cannot start, `a` is still here.
    let slot = std::sync::Mutex::new(Some(a));
    let take = || slot.lock().ok().and_then(|mut a| a.take());
    std::thread::scope(|scope| {
        let started = std::thread::Builder::new().spawn_scoped(scope, || take().map(|a| a())).ok();
        let rb = b();
        let ra = match started {
            Some(thread) => thread.join().ok().flatten(),
            None => take().map(|a| a()),
        };
        (ra, rb)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn concurrent_tasks_give_both_results_and_a_panic_is_none() {
        let here = std::thread::current().id();
        let (a, b) = super::concurrently(|| std::thread::current().id(), || 2);
        assert_ne!(a, Some(here), "`a` ran on a thread of its own");
        assert_eq!(b, 2);
        let (a, b) = super::concurrently(|| -> u8 { panic!("on purpose") }, || "b");
        assert_eq!((a, b), (None, "b"));
    }
}
