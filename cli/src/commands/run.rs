//! `rbuild run`: run a command in an image, in the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::container::{self, RunOptions};
use rbuild_builder::sandbox::{Limits, Network, PortMap, Volume};
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
    #[command(flatten)]
    extras: crate::shared_flags::RunExtrasArgs,
    /// Remove the container (its file system changes and log) when it exits; without it
    /// the container stays, exited, for `ps -a`, `start`, `logs` and `rm`.
    #[arg(long)]
    rm: bool,
    /// Run in the background: print the container's ID and leave it to a supervisor
    /// process of its own (`ps`, `logs`, `stop` reach it).
    #[arg(short, long)]
    detach: bool,
    /// A name for the container (default: a made-up one such as `brisk_heron`).
    #[arg(long)]
    name: Option<String>,
    /// Publish a port: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/udp]` (no HOST_PORT: a free
    /// one). Connections to the host port reach the container's (the default network).
    #[arg(short, long = "publish", value_name = "[IP:][HOST:]PORT[/udp]")]
    publish: Vec<String>,
    /// Publish every port the image EXPOSEs, each on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Start the command again when it ends: no, on-failure[:N], always or unless-stopped.
    #[arg(long, default_value = "no", value_parser = parse_restart)]
    restart: container::Restart,
    /// The signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds `stop` waits after the stop signal before SIGKILL (default 10).
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    stop_timeout: Option<u64>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass the caller's value).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines; `#` comments).
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Mount a host path (`/HOST/PATH:CONTAINER[:ro]`) or a named volume
    /// (`NAME:CONTAINER[:ro]`, made on first use, kept after the container).
    #[arg(short, long = "volume", value_name = "HOST|NAME:CONTAINER[:ro]")]
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
    /// Run an init as PID 1 that reaps orphans and passes signals on: always so (rbuild's
    /// own init is every container's PID 1); kept for `docker run` compatibility.
    #[arg(long)]
    init: bool,
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

fn parse_restart(text: &str) -> Result<container::Restart, String> {
    text.parse()
}

/// A free port of the host for `proto`, chosen by the kernel (bound and let go at once).
fn free_port(ip: &str, proto: &str) -> Result<u16> {
    let addr = format!("{ip}:0");
    let port = if proto == "udp" {
        std::net::UdpSocket::bind(&addr)?.local_addr()?.port()
    } else {
        std::net::TcpListener::bind(&addr)?.local_addr()?.port()
    };
    Ok(port)
}

/// `-p [IP:][HOST:]CONTAINER[/PROTO]`, a host port chosen when none is given.
fn parse_publish(text: &str) -> Result<PortMap> {
    let bad =
        || anyhow::anyhow!("invalid port {text:?}: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]");
    let (spec, proto) = match text.rsplit_once('/') {
        Some((s, p)) if p == "tcp" || p == "udp" => (s, p),
        Some(_) => return Err(bad()),
        None => (text, "tcp"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("0.0.0.0", "", *c),
        [h, c] => ("0.0.0.0", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad()),
    };
    let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
    ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
    let container_port = container.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let host_port = match host {
        "" => free_port(ip, proto)?,
        h => h.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok(PortMap { proto: proto.to_string(), host_ip: ip.to_string(), host_port, container_port })
}

fn parse_memory(text: &str) -> Result<u64, String> {
    crate::shared_flags::parse_size(text).filter(|n| *n >= 4 << 20).ok_or_else(|| {
        format!("invalid memory limit {text:?}: a size of at least 4m, like 512m or 2g")
    })
}

/// `rbuild run`.
pub fn run(store: &Store, args: RunArgs) -> Result<ExitCode> {
    let _ = (args.interactive, args.init);
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
    let mut named_volumes = Vec::new();
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
        if container::volumes::is_volume_name(host) {
            let name = host.to_string();
            named_volumes.push(container::NamedVolume {
                name,
                target: target.to_string(),
                readonly,
            });
            continue;
        }
        let host =
            std::fs::canonicalize(host).with_context(|| format!("volume {v:?}: the host path"))?;
        volumes.push(Volume { host, target: target.to_string(), readonly });
    }
    let mut ports = Vec::new();
    for p in &args.publish {
        ports.push(parse_publish(p)?);
    }
    if args.publish_all {
        let exposed = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        for e in exposed {
            let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            if !ports
                .iter()
                .any(|p: &PortMap| p.container_port.to_string() == port && p.proto == proto)
            {
                ports.push(parse_publish(&format!("{port}/{proto}"))?);
            }
        }
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
        name: args.name,
        ports,
        restart: args.restart,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout,
        auto_remove: args.rm,
        named_volumes,
        extras: args.extras.extras()?,
    };
    if args.detach {
        let record = container::create(store, &image, &args.image, &options)?;
        let started = super::container::supervisor(store)?.start(store, &record.id);
        if let Err(e) = started {
            if record.auto_remove {
                let _ = container::remove(store, &record.id, true, true);
            }
            return Err(e.into());
        }
        println!("{}", record.id);
        return Ok(ExitCode::SUCCESS);
    }
    let code = container::run(store, &image, &args.image, &options)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
