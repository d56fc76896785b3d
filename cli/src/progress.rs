//! How the library's events are shown: Docker's classic lines, a live step list with a
//! bar per blob on a terminal, JSON events, or nothing. One reporter per mode serves
//! every command (build, pull, push).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use rbuild_builder::engine::BuildResult;
use rbuild_builder::report::{Direction, Event, Reporter};
use serde_json::json;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, else `plain`.
    Auto,
    /// A live list of steps with timings (indicatif).
    Tty,
    /// Docker's classic build output.
    Plain,
    /// Nothing but the image ID at the end.
    Quiet,
    /// One JSON event per line.
    Json,
}

impl ProgressMode {
    /// `Auto` made concrete.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stdout().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        }
    }
}

/// How a build ended.
pub type Outcome<'a> = Result<&'a BuildResult, &'a rbuild_builder::Error>;

/// A reporter that also closes the output at the end.
pub trait BuildOutput: Reporter {
    /// The build ended, with its result or its error.
    fn finish(&self, outcome: Outcome<'_>);
}

/// The reporter for a mode. A step that ran in the last build of the same line and missed
/// the cache is said with why; with `explain`, every miss is (also the first build's).
pub fn reporter(mode: ProgressMode, explain: bool) -> Box<dyn BuildOutput> {
    match mode.resolve() {
        ProgressMode::Tty => Box::new(Tty::new(explain)),
        ProgressMode::Json => Box::new(Json),
        ProgressMode::Quiet => Box::new(Quiet),
        _ => Box::new(Plain { explain }),
    }
}

fn short(id: &oci_spec::image::Digest) -> &str {
    let hex = id.digest();
    &hex[..12.min(hex.len())]
}

/// The end-of-build summary of the checks' findings, as buildx prints it (empty when
/// nothing was found).
pub fn check_summary(found: &[rbuild_parser::checks::Finding]) -> String {
    if found.is_empty() {
        return String::new();
    }
    let n = found.len();
    let head = format!("{n} warning{} found", if n == 1 { "" } else { "s" });
    let mut out = format!(
        "\n {} (use rbuild build --check to expand):\n",
        crate::human::paint(&head, crate::human::Colour::Yellow)
    );
    for f in found {
        out.push_str(&format!(" - {}: {}", f.rule.name, f.message));
        if f.line > 0 {
            out.push_str(&format!(" (line {})", f.line));
        }
        out.push('\n');
    }
    out
}

/// `[Warning]`, in yellow where standard error takes colour.
fn warning_tag() -> String {
    crate::human::paint("[Warning]", crate::human::Colour::Yellow)
}

/// One finding in full, for `build --check`: the rule, its link, the message and the
/// lines of the Dockerfile it is about, with two lines around them.
pub fn check_detail(file: &str, source: &str, f: &rbuild_parser::checks::Finding) -> String {
    let mut out = format!("WARNING: {} - {}\n{}\n", f.rule.name, f.rule.url, f.message);
    if f.line == 0 {
        return out;
    }
    out.push_str(&format!("{file}:{}\n--------------------\n", f.line));
    let lines: Vec<&str> = source.lines().collect();
    let first = f.line.saturating_sub(2).max(1);
    let last = (f.end_line.max(f.line) + 2).min(lines.len());
    for n in first..=last {
        let mark = if n >= f.line && n <= f.end_line.max(f.line) { ">>>" } else { "   " };
        out.push_str(&format!(" {n:>3} | {mark} {}\n", lines.get(n - 1).unwrap_or(&"")));
    }
    out.push_str("--------------------\n");
    out
}

/// Docker's classic lines on standard output.
struct Plain {
    explain: bool,
}

impl Reporter for Plain {
    fn event(&self, event: Event) {
        let mut out = std::io::stdout().lock();
        let _ = match event {
            Event::Step { number, total, text, .. } => {
                writeln!(out, "Step {number}/{total} : {text}")
            }
            Event::Cached { .. } => writeln!(out, " ---> Using cache"),
            Event::CacheMiss { reason, ran_before, .. } if ran_before || self.explain => {
                writeln!(out, " ---> Cache miss: {reason}")
            }
            Event::Running { id, .. } => writeln!(out, " ---> Running in {id}"),
            Event::Output { bytes, .. } => out.write_all(&bytes),
            Event::Pulling { reference, .. } => writeln!(out, "Pulling {reference}"),
            Event::Triggers { count, .. } => writeln!(
                out,
                "# Executing {count} build trigger{}",
                if count == 1 { "" } else { "s" }
            ),
            Event::StepDone { id, .. } => writeln!(out, " ---> {}", short(&id)),
            Event::Warning(w) => writeln!(std::io::stderr(), "{} {w}", warning_tag()),
            Event::Checks(found) => write!(std::io::stderr(), "{}", check_summary(&found)),
            Event::PullStarted { tag, repository } => {
                writeln!(out, "{tag}: Pulling from {repository}")
            }
            Event::PushStarted { repository } => {
                writeln!(out, "The push refers to repository [{repository}]")
            }
            Event::BlobStarted { direction: Direction::Pull, digest, .. } => {
                writeln!(out, "{}: Pulling fs layer", short(&digest))
            }
            Event::BlobStarted { digest, .. } => writeln!(out, "{}: Pushing", short(&digest)),
            Event::BlobSkipped { digest, why } => writeln!(out, "{}: {why}", short(&digest)),
            Event::BlobDone { direction: Direction::Pull, digest } => {
                writeln!(out, "{}: Pull complete", short(&digest))
            }
            Event::BlobDone { digest, .. } => writeln!(out, "{}: Push complete", short(&digest)),
            Event::Pushed { tag, digest, size } => {
                writeln!(out, "{tag}: digest: {digest} size: {size}")
            }
            _ => Ok(()),
        };
        let _ = out.flush();
    }
}

impl BuildOutput for Plain {
    fn finish(&self, _: Outcome<'_>) {}
}

/// Nothing.
struct Quiet;

impl Reporter for Quiet {
    fn event(&self, event: Event) {
        match event {
            Event::Warning(w) => eprintln!("{} {w}", warning_tag()),
            Event::Checks(found) => eprint!("{}", check_summary(&found)),
            _ => {}
        }
    }
}

impl BuildOutput for Quiet {
    fn finish(&self, _: Outcome<'_>) {}
}

/// One JSON object per line.
struct Json;

impl Reporter for Json {
    fn event(&self, event: Event) {
        let v = match event {
            Event::Step { stage, number, total, text } => {
                json!({"event": "step", "stage": stage, "step": number, "total": total, "instruction": text})
            }
            Event::Cached { number } => json!({"event": "cached", "step": number}),
            Event::Running { number, id } => json!({"event": "running", "step": number, "id": id}),
            Event::Output { number, bytes } => {
                json!({"event": "output", "step": number, "text": String::from_utf8_lossy(&bytes)})
            }
            Event::Pulling { stage, reference } => {
                json!({"event": "pulling", "stage": stage, "reference": reference})
            }
            Event::Triggers { number, count } => {
                json!({"event": "triggers", "step": number, "count": count})
            }
            Event::StepDone { number, id, duration, cached } => {
                json!({"event": "done", "step": number,
                "id": id.to_string(), "seconds": duration.as_secs_f64(), "cached": cached})
            }
            Event::Warning(w) => json!({"event": "warning", "message": w}),
            Event::CacheMiss { number, reason, ran_before } => {
                json!({"event": "cache_miss", "step": number, "reason": reason, "ran_before": ran_before})
            }
            Event::Timings { number, phases } => {
                let ms: serde_json::Map<String, serde_json::Value> = phases
                    .iter()
                    .map(|(name, d)| (name.to_string(), json!(d.as_secs_f64() * 1000.0)))
                    .collect();
                json!({"event": "timings", "step": number, "ms": ms})
            }
            Event::Downloads { number, served, fetched, kept } => {
                json!({"event": "downloads", "step": number,
                "served": served.0, "served_bytes": served.1,
                "fetched": fetched.0, "fetched_bytes": fetched.1, "kept": kept})
            }
            Event::Checks(found) => {
                let mut out = std::io::stdout().lock();
                for f in found {
                    let v = json!({"event": "check", "rule": f.rule.name, "message": f.message,
                        "line": f.line, "end_line": f.end_line, "url": f.rule.url,
                        "description": f.rule.description});
                    let _ = writeln!(out, "{v}");
                }
                return;
            }
            // Transfers are shown on terminals and in plain lines only.
            _ => return,
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
    }
}

impl BuildOutput for Json {
    fn finish(&self, outcome: Outcome<'_>) {
        let v = match outcome {
            Ok(r) => json!({"event": "built", "id": r.image_id.to_string(),
                "manifest": r.manifest.digest().to_string(), "steps": r.steps.len(), "cached": r.cached}),
            Err(rbuild_builder::Error::Step(step)) => json!({"event": "failed",
                "error": step.message, "file": step.file, "line": step.span.start.line,
                "column": step.span.start.column}),
            Err(e) => json!({"event": "failed", "error": rbuild_builder::chain(e)}),
        };
        println!("{v}");
    }
}

/// A live list of steps on a terminal: a spinner per running step with its last output
/// line, a line per finished step with its time or CACHED.
struct Tty {
    multi: indicatif::MultiProgress,
    bars: Mutex<BTreeMap<usize, (indicatif::ProgressBar, String, Instant)>>,
    /// A bar per blob being transferred.
    blobs: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
    started: Instant,
    explain: bool,
}

impl Tty {
    fn new(explain: bool) -> Self {
        Tty {
            multi: indicatif::MultiProgress::new(),
            bars: Default::default(),
            blobs: Default::default(),
            started: Instant::now(),
            explain,
        }
    }
}

fn clip(text: &str, width: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() > width {
        one_line.chars().take(width.saturating_sub(1)).collect::<String>() + "…"
    } else {
        one_line
    }
}

impl Tty {
    /// Transfer events: a bar per blob.
    fn blob_event(&self, event: Event) {
        let Ok(mut blobs) = self.blobs.lock() else { return };
        match event {
            Event::BlobStarted { direction, digest, size } => {
                let bar = self.multi.add(indicatif::ProgressBar::new(size));
                let style = indicatif::ProgressStyle::with_template(
                    "{prefix}: {msg:8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(short(&digest).to_string());
                bar.set_message(if direction == Direction::Push { "push" } else { "pull" });
                blobs.insert(digest.to_string(), bar);
            }
            Event::BlobProgress { digest, bytes } => {
                if let Some(b) = blobs.get(digest.as_ref()) {
                    b.inc(bytes);
                }
            }
            Event::BlobDone { digest, .. } => {
                if let Some(b) = blobs.remove(digest.as_ref()) {
                    b.finish_with_message("done");
                }
            }
            Event::BlobSkipped { digest, why } => {
                let _ = self.multi.println(format!("{}: {why}", short(&digest)));
            }
            Event::PullStarted { tag, repository } => {
                let _ = self.multi.println(format!("{tag}: Pulling from {repository}"));
            }
            Event::PushStarted { repository } => {
                let _ = self.multi.println(format!("The push refers to repository [{repository}]"));
            }
            Event::Pushed { tag, digest, size } => {
                let _ = self.multi.println(format!("{tag}: digest: {digest} size: {size}"));
            }
            _ => {}
        }
    }
}

impl Reporter for Tty {
    fn event(&self, event: Event) {
        let Ok(mut bars) = self.bars.lock() else { return };
        match event {
            Event::Step { number, total, text, .. } => {
                let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
                let style = indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
                bar.set_style(style);
                let label = format!("[{number}/{total}] {}", clip(&text, 70));
                bar.set_prefix(label.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(number, (bar, label, Instant::now()));
            }
            Event::Output { number, bytes } => {
                if let Some((bar, _, _)) = bars.get(&number) {
                    let text = String::from_utf8_lossy(&bytes);
                    if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                        bar.set_message(clip(last, 60));
                    }
                }
            }
            Event::StepDone { number, cached, .. } => {
                if let Some((bar, label, started)) = bars.remove(&number) {
                    let how = if cached {
                        "CACHED".to_string()
                    } else {
                        format!("{:.1}s", started.elapsed().as_secs_f64())
                    };
                    bar.finish_and_clear();
                    let done = crate::human::paint("✔", crate::human::Colour::Green);
                    let _ = self.multi.println(format!("{done} {label}  {how}"));
                }
            }
            Event::Pulling { reference, .. } => {
                let _ = self.multi.println(format!("  pulling {reference}"));
            }
            Event::CacheMiss { number, reason, ran_before } if ran_before || self.explain => {
                let _ = self.multi.println(format!("  step {number} missed the cache: {reason}"));
            }
            Event::CacheMiss { .. } => {}
            Event::Warning(w) => {
                let _ = self.multi.println(format!("[Warning] {w}"));
            }
            Event::Checks(found) => {
                let text = check_summary(&found);
                if !text.is_empty() {
                    let _ = self.multi.println(text.trim_end());
                }
            }
            Event::Cached { .. } | Event::Running { .. } | Event::Triggers { .. } => {}
            other => {
                drop(bars);
                self.blob_event(other);
            }
        }
    }
}

impl BuildOutput for Tty {
    fn finish(&self, outcome: Outcome<'_>) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, (bar, label, _)) in std::mem::take(&mut *bars) {
                bar.finish_and_clear();
                let failed = crate::human::paint("✘", crate::human::Colour::Red);
                let _ = self.multi.println(format!("{failed} {label}"));
            }
        }
        if let Ok(r) = outcome {
            let _ = self.multi.println(format!(
                "Built in {:.1}s: {} steps, {} from cache",
                self.started.elapsed().as_secs_f64(),
                r.steps.len(),
                r.cached
            ));
        }
    }
}
