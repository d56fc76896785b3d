//! `rbuild run`: run a command in an image, in the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::container::{self, RunOptions};
use rbuild_builder::sandbox::{Limits, Network, Volume};
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

/// `rbuild run`.
pub fn run(store: &Store, args: RunArgs) -> Result<ExitCode> {
    let _ = (args.rm, args.interactive);
    if args.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        bail!("--cpus must be a positive number of CPUs");
    }
    let image = store.resolve(&args.image)?;
    let mut env = Vec::new();
    for file in &args.env_files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        env.extend(lines.map(str::to_string));
    }
    for e in &args.env {
        match e.split_once('=') {
            Some(_) => env.push(e.clone()),
            None => env.extend(std::env::var(e).ok().map(|v| format!("{e}={v}"))),
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
    let options = RunOptions {
        command: args.command,
        entrypoint: args.entrypoint,
        env,
        volumes,
        workdir: args.workdir,
        user: args.user,
        hostname: args.hostname,
        network: match args.network {
            NetworkArg::Default => Network::Private,
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        limits: Limits { memory: args.memory, pids: args.pids_limit, cpus: args.cpus },
        tty: args.tty,
    };
    let code = container::run(store, &image, &options)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
