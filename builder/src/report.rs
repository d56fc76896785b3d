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
    /// Where a step's time went, phase by phase, in the order they ran (`command` is the
    /// command's own time; the other phases are what rbuild added around it). Step `None`:
    /// a stage's or the build's end (waiting for layers still being written or synced).
    Timings {
        /// Step number.
        number: Option<usize>,
        /// Phase names and times.
        phases: Vec<(&'static str, Duration)>,
    },
    /// What a RUN step's apt got through the download cache (see [`crate::downloads`]).
    Downloads {
        /// Step number.
        number: usize,
        /// Files served from the cache, and their bytes.
        served: (u64, u64),
        /// Files fetched from a mirror, and their bytes.
        fetched: (u64, u64),
        /// Files newly kept in the cache.
        kept: u64,
    },
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

/// What goes through an [`Ordered`] reporter's channel.
enum Slot {
    Event(Event),
    /// A place kept for an event that another thread sends later.
    Hole(u64),
    /// What fills hole `.0` (nothing, when the work that was to send it failed).
    Fill(u64, Vec<Event>),
}

/// Events in the order a build makes them, also when a step's last event (the ID after a
/// step whose layer is written in the background) comes from another thread later: the
/// events after its place wait until it is filled. Events go to a [`Pump`] that hands
/// them to the real reporter on a thread of its own.
pub(crate) struct Ordered {
    tx: std::sync::Mutex<Option<std::sync::mpsc::Sender<Slot>>>,
    next_hole: std::sync::atomic::AtomicU64,
}

/// The receiving side of an [`Ordered`] reporter.
pub(crate) struct Pump(std::sync::mpsc::Receiver<Slot>);

/// A place kept in an [`Ordered`] reporter's events; filled with nothing when dropped
/// unfilled (so the events after it are never held for good).
pub(crate) struct Hole {
    id: u64,
    tx: Option<std::sync::mpsc::Sender<Slot>>,
}

impl Ordered {
    /// A reporter and the pump that delivers its events.
    pub fn new() -> (Ordered, Pump) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ordered = Ordered { tx: std::sync::Mutex::new(Some(tx)), next_hole: 0.into() };
        (ordered, Pump(rx))
    }

    fn send(&self, slot: Slot) -> Option<std::sync::mpsc::Sender<Slot>> {
        let tx = self.tx.lock().ok()?;
        let tx = tx.as_ref()?;
        tx.send(slot).ok()?;
        Some(tx.clone())
    }

    /// Sends an event (in order, after every place kept before it).
    pub fn event(&self, event: Event) {
        self.send(Slot::Event(event));
    }

    /// Keeps a place for an event that comes later, from any thread.
    pub fn hole(&self) -> Hole {
        let id = self.next_hole.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tx = self.send(Slot::Hole(id));
        Hole { id, tx }
    }

    /// Ends the events: the pump returns once every [`Hole`] is filled or dropped.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

impl Reporter for Ordered {
    fn event(&self, event: Event) {
        Ordered::event(self, event);
    }
}

impl Hole {
    /// Puts `events` in the kept place.
    pub fn fill(mut self, events: Vec<Event>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Slot::Fill(self.id, events));
        }
    }
}

impl Drop for Hole {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Slot::Fill(self.id, Vec::new()));
        }
    }
}

impl Pump {
    /// Hands the events to `reporter` in order until every sender is gone.
    pub fn run(self, reporter: &dyn Reporter) {
        // Events and places not delivered yet; a filled place holds its events.
        let mut waiting: std::collections::VecDeque<Slot> = Default::default();
        let deliver = |slot: Slot| match slot {
            Slot::Event(e) => reporter.event(e),
            Slot::Fill(_, events) => events.into_iter().for_each(|e| reporter.event(e)),
            Slot::Hole(_) => {}
        };
        for slot in self.0 {
            match slot {
                Slot::Event(e) if waiting.is_empty() => reporter.event(e),
                Slot::Fill(id, events) => {
                    let place = waiting.iter_mut().find(|s| matches!(s, Slot::Hole(h) if *h == id));
                    if let Some(s) = place {
                        *s = Slot::Fill(id, events);
                    }
                    while waiting.front().is_some_and(|s| !matches!(s, Slot::Hole(_))) {
                        if let Some(slot) = waiting.pop_front() {
                            deliver(slot);
                        }
                    }
                }
                other => waiting.push_back(other),
            }
        }
        // Only filled places can be left (a hole fills itself before it goes).
        waiting.into_iter().for_each(deliver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(text: &str) -> Event {
        Event::Warning(text.to_string())
    }

    #[test]
    fn events_after_a_hole_wait_for_it() {
        let (ordered, pump) = Ordered::new();
        let recorded = RecordingReporter::default();
        std::thread::scope(|s| {
            s.spawn(|| pump.run(&recorded));
            ordered.event(warning("1"));
            let first = ordered.hole();
            ordered.event(warning("3"));
            let second = ordered.hole();
            ordered.event(warning("5"));
            let late = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(30));
                second.fill(Vec::new());
                first.fill(vec![warning("2"), warning("2b")]);
            });
            let _ = late.join();
            drop(ordered.hole());
            ordered.event(warning("6"));
            ordered.close();
        });
        let got: Vec<Event> = recorded.events();
        assert_eq!(got, ["1", "2", "2b", "3", "5", "6"].map(warning).to_vec());
    }
}
