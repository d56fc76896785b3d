//! `rbuild run`: run a command in an image, in the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::sandbox::{self, Network, SandboxSpec, Volume};
use rbuild_builder::store::Store;

/// Network modes of `rbuild run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// A network namespace of the container's own, reaching the outside through
    /// slirp4netns (as Docker's bridge: the host's loopback services stay out of reach).
    #[value(alias = "bridge")]
    Default,
    /// The host's own network. It hands the container the host's interfaces, its loopback
    /// services (databases, admin ports, cloud metadata) and, with raw sockets, the host's
    /// traffic.
    Host,
    /// Only a loopback interface.
    None,
}

/// Arguments of `rbuild run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container's file system changes when it exits (always done today; kept
    /// for `docker run` compatibility).
    #[arg(long)]
    rm: bool,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass the caller's value).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines; `#` comments).
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Bind-mount a host path: `HOST:CONTAINER[:ro]`.
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,
    /// Working directory inside the container (created if missing).
    #[arg(short, long)]
    workdir: Option<String>,
    /// User to run as: `name|uid[:group|gid]`.
    #[arg(short, long)]
    user: Option<String>,
    /// Network: a private one with outbound access (default; `bridge` is the same),
    /// the host's, or none (only loopback).
    #[arg(long, value_enum, default_value_t = NetworkArg::Default)]
    network: NetworkArg,
    /// The container's host name (default: a random ID).
    #[arg(long)]
    hostname: Option<String>,
    /// Override the image's entrypoint (`""` clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit (bytes, or with a k, m or g suffix: powers of 1024).
    #[arg(short, long, value_name = "BYTES", value_parser = parse_memory)]
    memory: Option<u64>,
    /// Most processes the container may have at once.
    #[arg(long = "pids-limit", value_name = "N")]
    pids_limit: Option<u64>,
    /// CPU time the container may use, in CPUs (1.5 is one and a half cores).
    #[arg(long, value_name = "CPUS")]
    cpus: Option<f64>,
    /// Keep standard input open (it always is: the command shares rbuild's).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a pseudo-terminal (rbuild relays it, in raw mode on a terminal).
    #[arg(short, long)]
    tty: bool,
    /// The image: name, ID or digest.
    image: String,
    /// The command and its arguments (default: the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n >= 4 << 20)
        .ok_or_else(|| {
            format!("invalid memory limit {text:?}: a size of at least 4m, like 512m or 2g")
        })
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ ((std::process::id() as u128) << 64);
    let digest = rbuild_builder::digest::sha256(&seed.to_le_bytes());
    let hex = digest.digest().to_string();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `rbuild run`.
pub fn run(store: &Store, args: RunArgs) -> Result<ExitCode> {
    let _ = args.rm;
    if args.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        bail!("--cpus must be a positive number of CPUs");
    }
    let _ = args.interactive;
    let image = store.resolve(&args.image)?;
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let cmd = if args.command.is_empty() {
        config.cmd().clone().unwrap_or_default()
    } else {
        args.command.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("no command given and the image has no ENTRYPOINT or CMD");
    }
    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    for file in &args.env_files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            set(line.to_string());
        }
    }
    for e in &args.env {
        match e.split_once('=') {
            Some(_) => set(e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    set(format!("{e}={v}"));
                }
            }
        }
    }
    let mut volumes = Vec::new();
    for v in &args.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, target, readonly) = match parts.as_slice() {
            [h, t] => (*h, *t, false),
            [h, t, "ro"] => (*h, *t, true),
            [h, t, "rw"] => (*h, *t, false),
            _ => bail!("invalid volume {v:?}: expected HOST:CONTAINER[:ro]"),
        };
        if !target.starts_with('/') {
            bail!("invalid volume {v:?}: the container path must be absolute");
        }
        let host =
            std::fs::canonicalize(host).with_context(|| format!("volume {v:?}: the host path"))?;
        volumes.push(Volume { host, target: target.to_string(), readonly });
    }
    let _in_use = store.in_use()?;
    let lowers = store.snapshots(&image)?;
    let containers = store.containers_dir();
    let id = random_id();
    let run_dir = containers.join(&id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    std::fs::write(run_dir.join("pid"), std::process::id().to_string())
        .context("writing the pid file")?;
    let spec = SandboxSpec {
        lowers,
        run_dir: run_dir.clone(),
        args: argv,
        env,
        cwd: args
            .workdir
            .clone()
            .or_else(|| config.working_dir().clone())
            .unwrap_or_else(|| "/".into()),
        user: args.user.clone().or_else(|| config.user().clone()).unwrap_or_default(),
        hostname: args.hostname.clone().unwrap_or_else(|| id[..12].to_string()),
        network: match args.network {
            NetworkArg::Default => Network::Private,
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        volumes,
        limits: sandbox::Limits { memory: args.memory, pids: args.pids_limit, cpus: args.cpus },
        tty: args.tty,
        layer_mounts: Vec::new(),
        tmpfs: Vec::new(),
    };
    let result = sandbox::run(&spec);
    let _ = rbuild_builder::store::remove_tree(&run_dir);
    let code = result?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
