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

    /// Told when a build will run commands, before its first step: an executor may get
    /// ready for them meanwhile. Nothing by default.
    fn prepare(&self) {}
}

/// An [`Executor`] that starts `program args... - PARENT-PID` for each run and hands it
/// the path of the spec file on its standard input; the helper should end itself when the
/// process with PARENT-PID does (see [`crate::sandbox::exit_with_parent`]).
///
/// Starting the helper (exec of rbuild, its loader, reading the spec) takes about 1.4 ms,
/// a third of what a sandbox adds around a short command. So one helper is kept started
/// ahead, waiting for its spec: [`Executor::prepare`] starts the first when a build with
/// a RUN opens its context, and each run that takes it starts the next (5 ms later unless
/// a run asks for it before: it does not compete with the sandbox being set up). A
/// helper that is not used ends when the executor goes, which does not wait for it. They are started by a thread of their own that lives as long as the
/// executor, because a helper's parent-death signal follows the *thread* that started
/// it: a helper started by a stage's thread would be killed when that stage ends, while
/// another stage's step still runs in it.
#[derive(Debug)]
pub struct ProcessExecutor {
    program: PathBuf,
    args: Vec<String>,
    starter: std::sync::Mutex<Option<Starter>>,
    /// Helpers that said their command's code and are exiting: reaped by the next run
    /// or when the executor goes.
    exiting: std::sync::Mutex<Vec<std::process::Child>>,
}

/// The requests to the thread that keeps a helper started ahead: each is answered with
/// the helper it has ready (or nothing when starting one failed), then the next is
/// started. The thread ends once the requests close.
type Starter = std::sync::mpsc::Sender<std::sync::mpsc::Sender<Option<Helper>>>;

/// A started helper, waiting for its spec on `input`.
#[derive(Debug)]
struct Helper {
    child: std::process::Child,
    input: std::process::ChildStdin,
    /// The read end of the pipe that is the helper's standard output and error.
    output: std::io::PipeReader,
}

impl ProcessExecutor {
    /// Runs sandboxes with `program args...` (rbuild's own executable and its hidden
    /// subcommand).
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        ProcessExecutor { program, args, starter: Default::default(), exiting: Default::default() }
    }

    /// Starts a helper from the calling thread.
    fn start_helper(program: &std::path::Path, args: &[String]) -> Result<Helper> {
        let (output, writer) =
            std::io::pipe().map_err(Error::io("making a pipe for", program.to_path_buf()))?;
        let writer2 =
            writer.try_clone().map_err(Error::io("making a pipe for", program.to_path_buf()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .arg("-")
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(writer)
            .stderr(writer2);
        let mut child = command.spawn().map_err(Error::io("starting", program.to_path_buf()))?;
        // The pipe's write ends live only in the child now; reading ends when it exits
        // (and every process it left behind, which the sandbox's PID namespace ends).
        drop(command);
        let input = child.stdin.take().ok_or_else(|| {
            Error::Sandbox("the sandbox helper was started without its input".into())
        })?;
        Ok(Helper { child, input, output })
    }

    /// Gives `helper` its spec and closes its input (the helper reads to the end); returns
    /// the helper's process and the read end of its output.
    fn hand(
        &self,
        helper: Helper,
        spec: &[u8],
    ) -> Result<(std::process::Child, std::io::PipeReader)> {
        let Helper { mut child, mut input, output } = helper;
        let written = input.write_all(spec);
        drop(input);
        if let Err(e) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Io { action: "starting", path: self.program.clone(), source: e });
        }
        Ok((child, output))
    }

    /// The starter thread's requests; the thread is started on the first call.
    fn starter_in<'a>(&self, starter: &'a mut Option<Starter>) -> &'a Starter {
        starter.get_or_insert_with(|| {
            let (requests, waiting) = std::sync::mpsc::channel();
            let (program, args) = (self.program.clone(), self.args.clone());
            // Without the thread, the requests fail (`waiting` is gone with it): each
            // run then starts its own helper.
            let _ = std::thread::Builder::new()
                .name("sandbox-starter".into())
                .spawn(move || keep_one_started(&program, &args, waiting));
            requests
        })
    }

    /// The helper started ahead, if there is one.
    fn started_helper(&self) -> Option<Helper> {
        let (reply, answer) = std::sync::mpsc::channel();
        {
            let mut starter = self.starter.lock().ok()?;
            self.starter_in(&mut starter).send(reply).ok()?;
        }
        answer.recv().ok().flatten()
    }
}

/// The starter thread's loop (see [`Starter`]); when the executor goes, the helper still
/// waiting gets no spec (its input closes), ends and is reaped here.
fn keep_one_started(
    program: &std::path::Path,
    args: &[String],
    requests: std::sync::mpsc::Receiver<std::sync::mpsc::Sender<Option<Helper>>>,
) {
    let mut ready = ProcessExecutor::start_helper(program, args).ok();
    loop {
        let request = if ready.is_some() {
            requests.recv().map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
        } else {
            requests.recv_timeout(std::time::Duration::from_millis(5))
        };
        match request {
            Ok(reply) => {
                if ready.is_none() {
                    ready = ProcessExecutor::start_helper(program, args).ok();
                }
                let _ = reply.send(ready.take());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                ready = ProcessExecutor::start_helper(program, args).ok();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(Helper { mut child, input, output }) = ready {
        drop(input);
        drop(output);
        let _ = child.wait();
    }
}

impl Drop for ProcessExecutor {
    /// Waits for no helper: the helper kept started ends when its input closes (the
    /// starter thread reaps it), and helpers still exiting are reaped by a thread of
    /// their own.
    fn drop(&mut self) {
        let mut exiting = self.exiting.get_mut().map(std::mem::take).unwrap_or_default();
        exiting.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
        if !exiting.is_empty() {
            let _ = std::thread::Builder::new().name("sandbox-reaper".into()).spawn(move || {
                for child in exiting.iter_mut() {
                    let _ = child.wait();
                }
            });
        }
        // The starter thread ends once its requests close.
        drop(self.starter.get_mut().ok().and_then(|s| s.take()));
    }
}

impl Executor for ProcessExecutor {
    fn prepare(&self) {
        if let Ok(mut starter) = self.starter.lock() {
            self.starter_in(&mut starter);
        }
    }

    fn run(&self, spec: &SandboxSpec, output: &mut dyn Write) -> Result<i32> {
        // The spec goes through the helper's input, not a file: it can hold secrets
        // (RUN --mount=type=secret,env=...).
        let bytes = serde_json::to_vec(spec).map_err(Error::json("sandbox spec"))?;
        if let Ok(mut exiting) = self.exiting.lock() {
            exiting.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
        }
        // The helper started ahead, unless there is none or it is gone (killed while it
        // waited): then one started now.
        let handed = self.started_helper().and_then(|helper| self.hand(helper, &bytes).ok());
        let (mut child, mut reader) = match handed {
            Some(helper) => helper,
            None => self.hand(Self::start_helper(&self.program, &self.args)?, &bytes)?,
        };
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
        // The helper wrote the code before its output ended; it exits on its own and is
        // reaped later. Without the code (it was killed), its exit status says it.
        let code = match std::fs::read_to_string(spec.run_dir.join(crate::sandbox::EXIT_CODE))
            .ok()
            .and_then(|c| c.trim().parse::<i32>().ok())
        {
            Some(code) => {
                if let Ok(mut exiting) = self.exiting.lock() {
                    exiting.push(child);
                }
                code
            }
            None => {
                let status =
                    child.wait().map_err(Error::io("waiting for", self.program.clone()))?;
                use std::os::unix::process::ExitStatusExt;
                status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
            }
        };
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
