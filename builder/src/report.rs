//! How the library reports progress: every workflow (build, pull, push) sends [`Event`]s
//! to one [`Reporter`]. The library never prints; the CLI's terminal, plain and JSON
//! outputs are implementations of the trait, and a test can record the events.

use std::time::Duration;

use oci_spec::image::Digest;

/// Which way a blob moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a registry into the store.
    Pull,
    /// From the store to a registry.
    Push,
}

/// Something a workflow reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A build step starts: `Step number/total : text`.
    Step {
        /// Stage index.
        stage: usize,
        /// Step number, from 1, across the stages built.
        number: usize,
        /// Steps in the build.
        total: usize,
        /// The instruction, as written.
        text: String,
    },
    /// The step's result came from the cache.
    Cached {
        /// Step number.
        number: usize,
    },
    /// A RUN starts in a sandbox with this ID.
    Running {
        /// Step number.
        number: usize,
        /// The sandbox's ID.
        id: String,
    },
    /// Output of a RUN (standard output and error, as they come).
    Output {
        /// Step number.
        number: usize,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A build needs a base image that is being pulled.
    Pulling {
        /// Stage index.
        stage: usize,
        /// The reference.
        reference: String,
    },
    /// ONBUILD triggers of the base run.
    Triggers {
        /// Step number (the FROM).
        number: usize,
        /// How many.
        count: usize,
    },
    /// A build step ended; `id` is the image ID after it.
    StepDone {
        /// Step number.
        number: usize,
        /// Image ID (config digest) after the step.
        id: Digest,
        /// How long the step took (0 for a cache hit).
        duration: Duration,
        /// Whether it came from the cache.
        cached: bool,
    },
    /// A pull from a registry starts (Docker's `TAG: Pulling from REPOSITORY`).
    PullStarted {
        /// The tag or digest asked for.
        tag: String,
        /// The repository, as Docker shows it (`library/busybox`).
        repository: String,
    },
    /// A push to a registry starts (`The push refers to repository [...]`).
    PushStarted {
        /// The repository's full name.
        repository: String,
    },
    /// A blob transfer starts.
    BlobStarted {
        /// Pull or push.
        direction: Direction,
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// Bytes of a blob moved.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// How many more bytes.
        bytes: u64,
    },
    /// A blob needed no transfer (the registry has it, or it was mounted).
    BlobSkipped {
        /// The blob.
        digest: Digest,
        /// Why, in Docker's words (`Layer already exists`, `Mounted from ...`).
        why: String,
    },
    /// A blob transfer ended.
    BlobDone {
        /// Pull or push.
        direction: Direction,
        /// The blob.
        digest: Digest,
    },
    /// A manifest was pushed under a tag.
    Pushed {
        /// The tag.
        tag: String,
        /// The manifest's digest.
        digest: Digest,
        /// The manifest's size in bytes.
        size: u64,
    },
    /// Something the user should know that does not stop the workflow.
    Warning(String),
    /// A step that ran before missed the cache: why (see `engine::explain`).
    CacheMiss {
        /// Step number.
        number: usize,
        /// Which of its inputs changed, in words.
        reason: String,
        /// Whether the last build of the same line had this step (else the reason only
        /// says there is nothing to compare with, or that `--no-cache` was given).
        ran_before: bool,
    },
    /// What the build checks found (sent once per build, possibly empty).
    Checks(Vec<rbuild_parser::checks::Finding>),
}

/// Receives a workflow's events.
pub trait Reporter: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}

/// A reporter that drops everything.
#[derive(Debug, Default)]
pub struct NoReport;

impl Reporter for NoReport {
    fn event(&self, _: Event) {}
}

/// A reporter that keeps every event, for tests and for programs that look at them after.
#[derive(Debug, Default)]
pub struct RecordingReporter {
    events: std::sync::Mutex<Vec<Event>>,
}

impl RecordingReporter {
    /// The events received so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Reporter for RecordingReporter {
    fn event(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
