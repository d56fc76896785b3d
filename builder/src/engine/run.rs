//! RUN: the command in a sandbox over the stage's layers; what it changed becomes a layer.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rbuild_parser::{Command, Heredoc, Instruction, InstructionKind, NetworkMode};
use serde_json::json;

use super::cache::CacheKey;
use super::commit::reuse;
use super::stage::State;
use super::{vars, Event, Reporter};
use crate::error::{Error, Result};
use crate::sandbox::{Network, SandboxSpec, Volume};

/// Bytes of a failed step's output shown in the error.
const TAIL_BYTES: usize = 4096;

/// Where a RUN's output goes: the reporter, the step's log file, and a tail for errors.
struct StepOutput<'r> {
    reporter: &'r dyn Reporter,
    number: usize,
    log: fs::File,
    tail: VecDeque<u8>,
}

impl Write for StepOutput<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.log.write_all(buf)?;
        self.reporter.event(Event::Output { number: self.number, bytes: buf.to_vec() });
        self.tail.extend(buf);
        let excess = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..excess);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.log.flush()
    }
}

/// A heredoc body as the shell should see it (`<<-` strips leading tabs).
fn heredoc_body(h: &Heredoc) -> String {
    if h.chomp {
        h.content.lines().map(|l| l.trim_start_matches('\t')).map(|l| format!("{l}\n")).collect()
    } else {
        h.content.clone()
    }
}

/// Whether a shell command is nothing but heredoc markers (`<<EOF`, `<<-"EOF"`).
fn only_heredoc_marker(command: &str) -> bool {
    let t = command.trim();
    let rest = t.strip_prefix("<<").map(|r| r.trim_start_matches('-'));
    rest.is_some_and(|r| {
        let r = r.trim_matches(|c| c == '"' || c == '\'');
        !r.is_empty() && r.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
    })
}

pub(super) fn random_id(seed: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = crate::digest::sha256(format!("{seed}{now}{}", std::process::id()).as_bytes());
    d.digest().to_string()
}

/// A RUN with its command line, environment and cache key worked out.
struct RunPlan {
    argv: Vec<String>,
    /// A heredoc script with a `#!` line: where it is mounted, and its body.
    script: Option<(String, String)>,
    env: Vec<String>,
    network: Network,
    user: String,
    workdir: String,
    key: CacheKey,
    /// The history's text: the ARGs the command saw, as Docker shows them.
    created_by: String,
}

/// The command line: a lone heredoc is the script (run by its #! line if it has one,
/// else by the shell); otherwise the heredocs follow the command as the shell reads them.
fn command_line(
    state: &State<'_, '_>,
    command: &Command,
    heredocs: &[Heredoc],
) -> (Vec<String>, Option<(String, String)>) {
    match (command, heredocs) {
        (Command::Shell(s), [h]) if only_heredoc_marker(s) => {
            let body = heredoc_body(h);
            if body.starts_with("#!") {
                // The script runs from a file, started by the shell as BuildKit starts it
                // (`/bin/sh -c /dev/pipes/EOF`, so its history reads so too).
                let target = format!("/dev/pipes/{}", h.name);
                let mut v = state.shell();
                v.push(target.clone());
                (v, Some((target, body)))
            } else {
                let mut v = state.shell();
                v.push(body);
                (v, None)
            }
        }
        (Command::Shell(s), hs) if !hs.is_empty() => {
            let mut text = s.clone();
            for h in hs {
                text.push('\n');
                text.push_str(&heredoc_body(h));
                text.push_str(&h.name);
            }
            let mut v = state.shell();
            v.push(text);
            (v, None)
        }
        (c, _) => (state.argv(c), None),
    }
}

/// Works out what a RUN runs, with what, and its cache key.
fn plan(state: &mut State<'_, '_>, inst: &Instruction) -> Result<RunPlan> {
    let InstructionKind::Run { command, heredocs, mounts, network, .. } = &inst.kind else {
        return Err(state.error(inst, "not a RUN instruction"));
    };
    let shared = state.shared;
    let (argv, script) = command_line(state, command, heredocs);
    let env_for_key = state.vars();
    let env = vars::run_env(&env_for_key, &shared.options.build_args);
    let network = match network.unwrap_or(NetworkMode::Default) {
        NetworkMode::None => Network::None,
        NetworkMode::Host if shared.options.allow_host_network => Network::Host,
        NetworkMode::Host => {
            return Err(state.error(
                inst,
                "RUN --network=host needs --allow network.host: it gives the step the host's \
                 own network (its interfaces, its loopback services, its traffic)",
            ))
        }
        NetworkMode::Default => shared.options.network,
    };
    let user = state.config.config.user.clone().unwrap_or_default();
    let workdir = state.workdir();
    let mount_key = if mounts.is_empty() {
        Vec::new()
    } else {
        super::mounts::prepare(state, inst, mounts, Path::new("/nonexistent"), false)?.key
    };
    let inputs = json!({"op": "run", "argv": argv, "env": env_for_key, "user": user,
        "workdir": workdir, "network": format!("{network:?}"), "script": script,
        "mounts": mount_key});
    let key = CacheKey::new(&state.chain, inputs.clone());
    let parent = state.chain.clone();
    state.note_inputs(&parent, &inputs, Default::default());
    // The history shows the ARGs the stage declared (`|2 A=1 B=2 cmd`), each with its
    // value now (`A=` when it has none), and ends as BuildKit ends the entries of steps
    // that make a layer.
    let arg_words: Vec<String> = state
        .args
        .iter()
        .map(|k| format!("{k}={}", vars::get_var(&env_for_key, k).unwrap_or("")))
        .collect();
    let created_by = if arg_words.is_empty() {
        format!("RUN {} # buildkit", argv.join(" "))
    } else {
        format!("RUN |{} {} {} # buildkit", arg_words.len(), arg_words.join(" "), argv.join(" "))
    };
    Ok(RunPlan { argv, script, env, network, user, workdir, key, created_by })
}

/// Runs a RUN instruction. Returns whether it came from the cache.
pub(super) fn run(state: &mut State<'_, '_>, inst: &Instruction, number: usize) -> Result<bool> {
    let InstructionKind::Run { mounts, security, .. } = &inst.kind else {
        return Err(state.error(inst, "not a RUN instruction"));
    };
    if security.is_some() {
        return Err(state.error(inst, "RUN --security is not supported"));
    }
    let shared = state.shared;
    let plan = plan(state, inst)?;
    if state.uses_cache() {
        if let Some(record) = shared.store.cache_lookup(&plan.key) {
            shared.reporter.event(Event::Cached { number });
            return reuse(state, number, plan.key, record, plan.created_by).map(|()| true);
        }
    }
    state.explain_miss(number, &plan.key);
    state.all_cached = false;
    let started = Instant::now();
    let mut phases = Phases::starting(started);
    let id = random_id(&plan.key.0);
    let run_dir = shared.store.containers_dir().join(&id);
    fs::create_dir_all(&run_dir).map_err(Error::io("creating", run_dir.clone()))?;
    let guard = RemoveOnDrop(Some(run_dir.clone()));
    fs::write(run_dir.join("pid"), std::process::id().to_string())
        .map_err(Error::io("writing", run_dir.join("pid")))?;
    let mut volumes = Vec::new();
    if let Some((target, body)) = &plan.script {
        let host = run_dir.join("script");
        fs::write(&host, body).map_err(Error::io("writing", host.clone()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&host, fs::Permissions::from_mode(0o755))
            .map_err(Error::io("making executable", host.clone()))?;
        volumes.push(Volume { host, target: target.clone(), readonly: true });
    }
    let mounted = super::mounts::prepare(state, inst, mounts, &run_dir, true)?;
    volumes.extend(mounted.volumes);
    let mut env = plan.env.clone();
    env.extend(mounted.env);
    let mentions_apt = plan.argv.iter().any(|a| a.contains("apt"))
        || plan.script.as_ref().is_some_and(|(_, body)| body.contains("apt"));
    let download_cache =
        mentions_apt.then(|| download_cache(shared, plan.network, &mut env, &run_dir)).flatten();
    phases.end("prepare");
    // Layers taken from the cache or pulled are extracted when a step first needs them.
    let view = state.view()?;
    phases.end("unpack");
    let spec = SandboxSpec {
        lowers: state.snapshots()?,
        run_dir: run_dir.clone(),
        args: plan.argv.clone(),
        env,
        cwd: plan.workdir.clone(),
        user: plan.user.clone(),
        // BuildKit's name for every RUN's sandbox (a per-step name would make the layers
        // of commands that write it differ from build to build).
        hostname: "buildkitsandbox".to_string(),
        network: plan.network,
        volumes,
        limits: Default::default(),
        tty: false,
        layer_mounts: mounted.layer_mounts,
        tmpfs: mounted.tmpfs,
        copy_root: shared.store.on_overlayfs(),
        ports: Vec::new(),
        extras: shared.options.run_extras.clone(),
        throwaway_upper: true,
        download_cache,
    };
    let _cache_locks = mounted.locks;
    shared.reporter.event(Event::Running { number, id: id[..12].to_string() });
    let log_path = run_dir.join("log");
    phases.end("prepare");
    execute(state, inst, &spec, number, &log_path)?;
    phases.end_command(&run_dir);
    report_downloads(shared, number, &run_dir);
    let upper = spec.upper();
    remove_mount_stubs(&upper, &view, &mounted.targets);
    commit_run(state, &upper, plan, number, started, &log_path)?;
    phases.end("commit");
    // Removed when the build ends: removing it now would wait on the file system while
    // layers are being written and synced.
    shared.leave_for_the_end(guard.keep());
    shared.reporter.event(Event::Timings { number: Some(number), phases: phases.done });
    Ok(false)
}

/// A step's time, phase by phase (see [`Event::Timings`]).
pub(super) struct Phases {
    mark: Instant,
    pub done: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    pub fn starting(at: Instant) -> Self {
        Phases { mark: at, done: Vec::new() }
    }

    /// Ends the phase `name` now.
    pub fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - self.mark));
        self.mark = now;
    }

    /// Ends the sandbox's run: the command's own time (as the sandbox measured it, in the
    /// run's directory) and the sandbox's start and end around it.
    fn end_command(&mut self, run_dir: &Path) {
        let now = Instant::now();
        let total = now - self.mark;
        let command = fs::read_to_string(run_dir.join(crate::sandbox::COMMAND_TIME))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_nanos)
            .filter(|c| *c <= total);
        match command {
            Some(c) => {
                self.done.push(("sandbox", total - c));
                self.done.push(("command", c));
            }
            None => self.done.push(("command", total)),
        }
        self.mark = now;
    }
}

/// Runs the spec through the executor, its output to the reporter and to the log at
/// `log_path` (readable by the store's owner only: it can hold anything the command
/// printed). A non-zero exit is the step's error, with the end of the output.
fn execute(
    state: &State<'_, '_>,
    inst: &Instruction,
    spec: &SandboxSpec,
    number: usize,
    log_path: &Path,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let log = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(log_path)
        .map_err(Error::io("creating", log_path))?;
    let reporter = state.shared.reporter;
    let mut out = StepOutput { reporter, number, log, tail: VecDeque::new() };
    let code = state.shared.executor.run(spec, &mut out)?;
    let _ = out.flush();
    if code == 0 {
        return Ok(());
    }
    let tail: Vec<u8> = out.tail.iter().copied().collect();
    let tail = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = tail.lines().collect();
    let last: Vec<&str> = lines[lines.len().saturating_sub(20)..].to_vec();
    let mut msg = format!("the command '{}' returned a non-zero code: {code}", spec.args.join(" "));
    if !last.is_empty() {
        msg.push_str("\n--- the end of its output:\n");
        msg.push_str(&last.join("\n"));
    }
    Err(state.error(inst, &msg))
}

/// Commits what the command changed (the upper directory) as the step's layer (an empty
/// one when it changed nothing, as BuildKit does) and keeps its log under the step's key.
fn commit_run(
    state: &mut State<'_, '_>,
    upper: &Path,
    plan: RunPlan,
    number: usize,
    started: Instant,
    log_path: &Path,
) -> Result<()> {
    let store = state.shared.store;
    let logs = store.root().join("logs");
    fs::create_dir_all(&logs).map_err(Error::io("creating", logs.clone()))?;
    fs::rename(log_path, store.step_log_path(&plan.key))
        .map_err(Error::io("keeping the log", log_path))?;
    super::commit::commit(state, upper, vec![plan.key], plan.created_by, number, started, true)
}

/// Removes the empty files and directories the sandbox made as mount points (`/etc/hosts`,
/// the targets of `--mount` ...) where the image had none, so they do not end up in the
/// layer. `/proc`, `/sys` and `/dev` stay: BuildKit's runc makes them (root, 0755) in an
/// image that lacks them and only removes the stubs of `/etc/hosts`, `/etc/resolv.conf`
/// and the step's own mounts, so its layer has them.
fn remove_mount_stubs(upper: &Path, view: &super::rootfs::RootfsView, targets: &[String]) {
    let fixed = ["etc/hosts", "etc/resolv.conf", "etc/hostname"];
    let mut stubs: Vec<PathBuf> = fixed.iter().map(PathBuf::from).collect();
    // A mount target, and each of its parents the sandbox had to make.
    for t in targets {
        let mut p: PathBuf = super::rootfs::components(t).into_iter().collect();
        while !p.as_os_str().is_empty() {
            stubs.push(p.clone());
            p.pop();
        }
    }
    stubs.push(PathBuf::from("etc"));
    // Deepest first, so a parent is empty by the time it is looked at.
    stubs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    stubs.dedup();
    for stub in stubs {
        let p = upper.join(&stub);
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if view.entry(&super::rootfs::components(&stub.to_string_lossy())).is_some() {
            continue;
        }
        if m.is_file() && m.len() == 0 {
            let _ = fs::remove_file(&p);
        } else if m.is_dir() {
            // Only when empty: a command may have written there.
            let _ = fs::remove_dir(&p);
        }
    }
}

/// Removes a directory tree when dropped (a failed step's sandbox directory).
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl RemoveOnDrop {
    /// The directory, no longer removed when this is dropped.
    fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = crate::store::remove_tree(&dir);
        }
    }
}

/// The download cache for a RUN whose command mentions apt (see [`crate::downloads`]),
/// with `APT_CONFIG` added to its environment (not to its cache key or the image; only
/// for such commands, so that a RUN that records its environment, `env > file`, records
/// what BuildKit's does): when the build uses the cache,
/// the step has a network, and neither apt's configuration nor a proxy is set
/// by the Dockerfile or the build's arguments (the user's choice stands).
fn download_cache(
    shared: &super::Shared,
    network: Network,
    env: &mut Vec<String>,
    run_dir: &std::path::Path,
) -> Option<crate::downloads::Cache> {
    let named = |e: &String, name: &str| {
        e.split_once('=').is_some_and(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    let set_by_user = env.iter().any(|e| named(e, "APT_CONFIG") || named(e, "http_proxy"));
    if !shared.options.download_cache || network == Network::None || set_by_user {
        return None;
    }
    env.push(format!("APT_CONFIG={}", crate::downloads::proxy::APT_CONFIG));
    Some(crate::downloads::Cache {
        dir: crate::downloads::dir_of(shared.store.root()),
        tmp: run_dir.to_path_buf(),
    })
}

/// Reports what the step's download proxy did, when it ran and had any request.
fn report_downloads(shared: &super::Shared, number: usize, run_dir: &std::path::Path) {
    let Ok(text) = fs::read(run_dir.join(crate::downloads::proxy::STATS)) else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else { return };
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    if n("served") + n("fetched") > 0 {
        shared.reporter.event(Event::Downloads {
            number,
            served: (n("served"), n("served_bytes")),
            fetched: (n("fetched"), n("fetched_bytes")),
            kept: n("kept"),
        });
    }
}
