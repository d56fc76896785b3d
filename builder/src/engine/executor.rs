//! Running a RUN step's command: the seam between the build and the sandbox.
//!
//! The sandbox forks and enters namespaces, which a multi-threaded process (the build
//! runs stages on threads) must not do: `unshare(CLONE_NEWUSER)` is refused there, a PID
//! namespace can be entered only once per thread, and a forked child may inherit locks
//! held by other threads. So [`ProcessExecutor`] runs each sandbox in a fresh,
//! single-threaded helper process (rbuild itself, with a hidden subcommand), which reads
//! the spec from a file and exits with the command's status.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::sandbox::SandboxSpec;

/// Runs a sandbox spec to its end.
pub trait Executor: Send + Sync {
    /// Runs `spec`; the command's standard output and error (merged) go to `output` as
    /// they come. Returns the exit code (128 + signal when killed).
    fn run(&self, spec: &SandboxSpec, output: &mut dyn Write) -> Result<i32>;
}

/// An [`Executor`] that starts `program args... SPEC-FILE PARENT-PID` for each run; the
/// helper should end itself when the process with PARENT-PID does (see
/// [`crate::sandbox::exit_with_parent`]).
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// The helper program (rbuild's own executable).
    pub program: PathBuf,
    /// Arguments before the spec file (the hidden subcommand).
    pub args: Vec<String>,
}

impl Executor for ProcessExecutor {
    fn run(&self, spec: &SandboxSpec, output: &mut dyn Write) -> Result<i32> {
        let spec_path = spec.run_dir.join("spec.json");
        let bytes = serde_json::to_vec(spec).map_err(Error::json("sandbox spec"))?;
        // The spec can hold secrets (RUN --mount=type=secret,env=...): only its owner reads it.
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&spec_path)
                .map_err(Error::io("writing", spec_path.clone()))?;
            file.write_all(&bytes).map_err(Error::io("writing", spec_path.clone()))?;
        }
        let (mut reader, writer) =
            std::io::pipe().map_err(Error::io("making a pipe for", spec.run_dir.clone()))?;
        let writer2 =
            writer.try_clone().map_err(Error::io("making a pipe for", spec.run_dir.clone()))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .arg(&spec_path)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2);
        let mut child = command.spawn().map_err(Error::io("starting", self.program.clone()))?;
        // The pipe's write ends live only in the child now; reading ends when it exits
        // (and every process it left behind, which the sandbox's PID namespace ends).
        drop(command);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => output
                    .write_all(&buf[..n])
                    .map_err(Error::io("relaying output of", spec.run_dir.clone()))?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::Io {
                        action: "reading output of",
                        path: spec.run_dir.clone(),
                        source: e,
                    })
                }
            }
        }
        let status = child.wait().map_err(Error::io("waiting for", self.program.clone()))?;
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        // A sandbox that could not be set up is rbuild's error, not the command's.
        if code == crate::sandbox::SANDBOX_FAILED {
            if let Ok(message) =
                std::fs::read_to_string(spec.run_dir.join(crate::sandbox::ERROR_FILE))
            {
                return Err(Error::Sandbox(crate::sandbox::explain(&message)));
            }
        }
        Ok(code)
    }
}

/// What a [`RecordingExecutor`]'s run does instead of a command: it may change the
/// directory whose contents become the step's change (overlayfs's upper directory) and
/// write output, and returns the exit code.
pub type Effect =
    dyn Fn(&SandboxSpec, &std::path::Path, &mut dyn Write) -> std::io::Result<i32> + Send + Sync;

/// An [`Executor`] that runs nothing: it keeps every spec it is given (command,
/// environment, user, working directory, network, mounts) and runs an [`Effect`] in its
/// place (by default: no change, no output, exit code 0). So builds, their cache keys and
/// their layers can be tested without root or a sandbox.
pub struct RecordingExecutor {
    runs: std::sync::Mutex<Vec<SandboxSpec>>,
    effect: Box<Effect>,
}

impl std::fmt::Debug for RecordingExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingExecutor").finish_non_exhaustive()
    }
}

impl Default for RecordingExecutor {
    fn default() -> Self {
        RecordingExecutor::new(|_, _, _| Ok(0))
    }
}

impl RecordingExecutor {
    /// An executor whose every run does `effect`.
    pub fn new(
        effect: impl Fn(&SandboxSpec, &std::path::Path, &mut dyn Write) -> std::io::Result<i32>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        RecordingExecutor { runs: Default::default(), effect: Box::new(effect) }
    }

    /// The specs run so far, in order.
    pub fn runs(&self) -> Vec<SandboxSpec> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Executor for RecordingExecutor {
    fn run(&self, spec: &SandboxSpec, output: &mut dyn Write) -> Result<i32> {
        let upper = spec.upper();
        for dir in [&upper, &spec.work()] {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir.clone()))?;
        }
        if let Ok(mut runs) = self.runs.lock() {
            runs.push(spec.clone());
        }
        (self.effect)(spec, &upper, output).map_err(Error::io("simulating a run in", upper))
    }
}
