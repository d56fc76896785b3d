//! The container commands: ps, logs, stop, kill, start, restart, rm, wait, port, and the
//! hidden supervisor of a detached container.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use rbuild_builder::container::{self, logs, Record, Status};
use rbuild_builder::store::Store;

use crate::human;

/// Arguments of `rbuild ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container (by default only running ones).
    #[arg(short, long)]
    all: bool,
    /// Only show container IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate IDs and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Output format: `table` (the default), `json` (one object per line) or a Go template
    /// over the fields ID, Names, Image, Command, CreatedAt, RunningFor, Status, State, Ports,
    /// Mounts, Labels, Networks, Size, LocalVolumes (`table` before a template aligns its
    /// tab-separated columns under a header; `\t` is a tab).
    #[arg(long)]
    format: Option<String>,
    /// Show only the containers that pass a filter (repeatable; all must pass):
    /// `status=created|running|exited`, `name=TEXT`, `id=PREFIX`, `ancestor=IMAGE`,
    /// `exited=CODE`.
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

/// Arguments of `rbuild logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container ends.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all` for every line).
    #[arg(short = 'n', long, value_name = "N")]
    tail: Option<String>,
    /// Put each line's time first.
    #[arg(short, long)]
    timestamps: bool,
    /// Only lines since this time: RFC 3339 (`2026-12-06T10:00:00Z`) or a duration
    /// back from now (`90s`, `10m`, `2h`).
    #[arg(long)]
    since: Option<String>,
    /// The container: name or ID.
    container: String,
}

/// Arguments of `rbuild stop` and `rbuild restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for the command to end after the stop signal, before SIGKILL
    /// (default: the container's --stop-timeout, 10 unless set).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    time: Option<u64>,
    /// The containers: names or IDs.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Arguments of `rbuild kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal to send: a name (`SIGHUP`, `HUP`) or number.
    #[arg(short, long, default_value = "SIGKILL")]
    signal: String,
    /// The containers: names or IDs.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Arguments of `rbuild start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Print the container's output until it ends, and exit with its code.
    #[arg(short, long)]
    attach: bool,
    /// The containers: names or IDs.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Arguments of `rbuild rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Remove the container's anonymous volumes too (those made for its image's VOLUMEs).
    #[arg(short, long)]
    volumes: bool,
    /// The containers: names or IDs.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Arguments of `rbuild wait` and `rbuild port`.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// The containers: names or IDs.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `rbuild volume`'s commands.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Make a volume.
    Create {
        /// Its name.
        name: String,
    },
    /// List volumes.
    Ls {
        /// Only show names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes as JSON.
    Inspect {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    Rm {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (-a: every unused volume).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
    },
}

/// `rbuild volume ...`.
pub fn volume(store: &Store, command: VolumeCommand) -> Result<ExitCode> {
    use rbuild_builder::container::volumes;
    match command {
        VolumeCommand::Create { name } => {
            volumes::ensure(store, &name, false, None)?;
            println!("{name}");
        }
        VolumeCommand::Ls { quiet } => {
            let all = volumes::list(store)?;
            if quiet {
                for v in all {
                    println!("{}", v.name);
                }
            } else {
                let rows: Vec<Vec<String>> =
                    all.into_iter().map(|v| vec![v.driver, v.name]).collect();
                print!("{}", human::table(&["DRIVER", "VOLUME NAME"], &rows));
            }
        }
        VolumeCommand::Inspect { names } => {
            let found: Vec<volumes::VolumeInfo> =
                names.iter().map(|n| volumes::inspect(store, n)).collect::<Result<_, _>>()?;
            println!("{}", serde_json::to_string_pretty(&found)?);
        }
        VolumeCommand::Rm { names } => {
            return each(&names, |n| volumes::remove(store, n));
        }
        VolumeCommand::Prune { all } => {
            for name in volumes::prune(store, all)? {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `rbuild exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep standard input open (it always is: the command shares rbuild's).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a pseudo-terminal (rbuild relays it).
    #[arg(short, long)]
    tty: bool,
    /// The user to run as: `name|uid[:group|gid]` (default: the container's).
    #[arg(short, long)]
    user: Option<String>,
    /// The working directory inside (default: the container's).
    #[arg(short, long)]
    workdir: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` for the caller's value).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// The container: name or ID.
    container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `rbuild exec`: a command in a running container's namespaces, cgroups and
/// confinement. The store is not opened (see [`container::exec`]).
pub fn exec(root: &std::path::Path, args: ExecArgs) -> Result<ExitCode> {
    let _ = args.interactive;
    let env = args
        .env
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some(_) => Some(e.clone()),
            None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect();
    let options = container::ExecOptions {
        command: args.command,
        env,
        workdir: args.workdir,
        user: args.user,
        tty: args.tty,
    };
    let code = container::exec(&root.join("containers"), &args.container, &options)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// Arguments of `rbuild cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// `CONTAINER:PATH` or a host path (`PATH/.`: the folder's contents).
    source: String,
    /// A host path or `CONTAINER:PATH` (the container must run).
    destination: String,
}

/// Splits `CONTAINER:PATH`; a host path (one with a `/` before any `:`) gives `None`.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// `rbuild cp`.
pub fn cp(store: &Store, args: CpArgs) -> Result<ExitCode> {
    use rbuild_builder::container::copy;
    match (container_path(&args.source), container_path(&args.destination)) {
        (Some((c, p)), None) => copy::copy_from(store, c, p, std::path::Path::new(&args.destination))?,
        (None, Some((c, p))) => copy::copy_into(store, c, std::path::Path::new(&args.source), p)?,
        _ => bail!("rbuild cp copies between a container and the host: one of CONTAINER:PATH and a host path each"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `rbuild commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// A comment for the new layer's history entry.
    #[arg(short, long)]
    message: Option<String>,
    /// The image's author.
    #[arg(short, long)]
    author: Option<String>,
    /// A Dockerfile instruction for the new image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// The container: name or ID.
    container: String,
    /// The new image's name (`name[:tag]`; none: untagged).
    image: Option<String>,
}

/// `rbuild commit`: prints the new image's ID.
pub fn commit(store: &Store, args: CommitArgs) -> Result<ExitCode> {
    let names = match &args.image {
        Some(n) => vec![n.parse::<rbuild_builder::reference::Reference>()?],
        None => Vec::new(),
    };
    let options = container::commit::CommitOptions {
        message: args.message,
        author: args.author,
        changes: args.change,
    };
    let image = container::commit::commit(store, &args.container, names, &options)?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}

/// How to start rbuild as the supervisor of a detached container.
pub fn supervisor(store: &Store) -> Result<container::Supervisor> {
    Ok(container::Supervisor {
        program: std::env::current_exe()?,
        args: vec![
            "--root".to_string(),
            store.root().display().to_string(),
            "__supervise".to_string(),
        ],
    })
}

/// The STATUS column: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
fn status(r: &Record) -> String {
    match r.state.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!("Up {}", human::since(r.state.started_at.as_deref())),
        Status::Exited => format!(
            "Exited ({}) {}",
            r.state.exit_code.unwrap_or(0),
            human::ago(r.state.finished_at.as_deref())
        ),
    }
}

fn ports(r: &Record) -> String {
    r.spec.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}

/// The COMMAND column: quoted, cut to 20 characters unless `--no-trunc`.
fn command(r: &Record, full: bool) -> String {
    let text = r.command();
    if full || text.chars().count() <= 20 {
        return format!("\"{text}\"");
    }
    let cut: String = text.chars().take(19).collect();
    format!("\"{cut}…\"")
}

/// One container as `ps --format` sees it (docker's field names).
fn ps_row(r: &Record, full: bool) -> serde_json::Value {
    serde_json::json!({
        "ID": if full { r.id.clone() } else { r.id[..12].to_string() },
        "Image": r.image_name,
        "Command": command(r, full),
        "CreatedAt": r.created,
        "RunningFor": human::ago(Some(&r.created)),
        "Status": status(r),
        "State": r.state.status.name(),
        "Ports": ports(r),
        "Names": r.name,
        "Mounts": r.volumes.join(","),
        "LocalVolumes": r.volumes.len().to_string(),
        "Labels": "",
        "Networks": "",
        "Size": "N/A",
    })
}

/// A `ps --filter`, read once (an `ancestor` image resolved once, not per container).
enum PsFilter {
    Status(String),
    Name(String),
    Id(String),
    /// The name given, and the ID of the image it names here, if any.
    Ancestor(String, Option<String>),
    Exited(String),
}

impl PsFilter {
    fn parse(store: &Store, filter: &str) -> Result<PsFilter> {
        let (key, value) = filter
            .split_once('=')
            .with_context(|| format!("bad filter {filter:?}: expected KEY=VALUE"))?;
        let value = value.to_string();
        Ok(match key {
            "status" => PsFilter::Status(value),
            "name" => PsFilter::Name(value),
            "id" => PsFilter::Id(value),
            "ancestor" => {
                let id = store.resolve(&value).ok().map(|i| i.id().to_string());
                PsFilter::Ancestor(value, id)
            }
            "exited" => PsFilter::Exited(value),
            _ => bail!("unknown filter {key:?} (ps takes status, name, id, ancestor, exited)"),
        })
    }

    fn passes(&self, r: &Record) -> bool {
        match self {
            PsFilter::Status(v) => r.state.status.name() == v,
            PsFilter::Name(v) => r.name.contains(v.as_str()),
            PsFilter::Id(v) => r.id.starts_with(v.as_str()),
            PsFilter::Ancestor(name, id) => {
                &r.image_name == name || id.as_ref().is_some_and(|i| *i == r.image)
            }
            PsFilter::Exited(v) => {
                r.state.status == Status::Exited
                    && r.state.exit_code.is_some_and(|c| c.to_string() == *v)
            }
        }
    }
}

/// `rbuild ps`.
pub fn ps(store: &Store, args: PsArgs) -> Result<ExitCode> {
    let mut all = container::list(store)?;
    // Newest first, as Docker lists them.
    all.reverse();
    let filters: Vec<PsFilter> =
        args.filters.iter().map(|f| PsFilter::parse(store, f)).collect::<Result<_>>()?;
    // A filter lists stopped containers without -a, as docker does.
    let shown: Vec<&Record> = all
        .iter()
        .filter(|r| args.all || r.state.status == Status::Running || !filters.is_empty())
        .filter(|r| filters.iter().all(|f| f.passes(r)))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in shown {
            writeln!(out, "{}", if args.no_trunc { &r.id } else { &r.id[..12] })?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = shown.iter().map(|r| ps_row(r, args.no_trunc)).collect();
    let titles = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Ports", "PORTS"),
        ("Names", "NAMES"),
        ("Mounts", "MOUNTS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Labels", "LABELS"),
        ("Networks", "NETWORKS"),
        ("Size", "SIZE"),
    ];
    let default =
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
    let text = crate::template::listing(args.format.as_deref(), &rows, &titles, default)?;
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A time given to `--since`: RFC 3339, or a duration back from now (`10m`).
fn since_time(text: &str) -> Result<String> {
    let secs = human::time_arg(text).ok_or_else(|| {
        anyhow::anyhow!("invalid --since {text:?}: RFC 3339, Unix seconds or a duration like 10m")
    })?;
    Ok(rbuild_builder::container::logs::rfc3339_at(secs.max(0) as u64))
}

/// `rbuild logs`.
pub fn logs(store: &Store, args: LogsArgs) -> Result<ExitCode> {
    let tail = match args.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or all"))?,
        ),
    };
    let since = args.since.as_deref().map(since_time).transpose()?;
    let options = logs::LogOptions { tail, since, follow: args.follow, from: None };
    print_logs(store, &args.container, &options, args.timestamps)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a container's log lines, each on the stream it was written to.
fn print_logs(store: &Store, what: &str, options: &logs::LogOptions, times: bool) -> Result<()> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    logs::read(store, what, options, |line| {
        let text = if times { format!("{} {}", line.time, line.log) } else { line.log.clone() };
        let written = if line.stream == "stderr" {
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        } else {
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
        written.is_ok()
    })?;
    Ok(())
}

/// `rbuild stop`: prints each container's name as given, as Docker does.
pub fn stop(store: &Store, args: StopArgs) -> Result<ExitCode> {
    each(&args.containers, |c| container::stop(store, c, args.time).map(|_| ()))
}

/// `rbuild kill`.
pub fn kill(store: &Store, args: KillArgs) -> Result<ExitCode> {
    let signal = container::control::parse_signal(&args.signal)?;
    each(&args.containers, |c| container::kill(store, c, signal).map(|_| ()))
}

/// `rbuild rm`.
pub fn rm(store: &Store, args: RmArgs) -> Result<ExitCode> {
    each(&args.containers, |c| container::remove(store, c, args.force, args.volumes).map(|_| ()))
}

/// `rbuild start`.
pub fn start(store: &Store, args: StartArgs) -> Result<ExitCode> {
    let supervisor = supervisor(store)?;
    if args.attach {
        let [one] = args.containers.as_slice() else {
            bail!("start --attach takes one container");
        };
        let r = container::find(store, one)?;
        // Only what this run writes: the log from its present end.
        let from = Some(logs::end(store, &r.id));
        supervisor.start(store, &r.id)?;
        let options = logs::LogOptions { follow: true, from, ..Default::default() };
        print_logs(store, &r.id, &options, false)?;
        let code = container::wait(store, &r.id)?;
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)));
    }
    each(&args.containers, |c| {
        let r = container::find(store, c)?;
        if rbuild_builder::container::record::running(store, &r.id) {
            return Ok(());
        }
        supervisor.start(store, &r.id)
    })
}

/// `rbuild restart`: stop, then start.
pub fn restart(store: &Store, args: StopArgs) -> Result<ExitCode> {
    let supervisor = supervisor(store)?;
    each(&args.containers, |c| {
        let r = container::stop(store, c, args.time)?;
        supervisor.start(store, &r.id)
    })
}

/// `rbuild top`: the container's processes.
pub fn top(store: &Store, args: ContainersArgs) -> Result<ExitCode> {
    for c in &args.containers {
        let rows: Vec<Vec<String>> = container::control::processes(store, c)?
            .into_iter()
            .map(|(pid, ppid, uid, cmd)| {
                vec![uid.to_string(), pid.to_string(), ppid.to_string(), cmd]
            })
            .collect();
        print!("{}", human::table(&["UID", "PID", "PPID", "CMD"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild attach`: the running container's output from now on, until it ends (its
/// standard input is not attached: a detached container reads /dev/null).
pub fn attach(store: &Store, args: AttachArgs) -> Result<ExitCode> {
    let r = container::find(store, &args.container)?;
    if !rbuild_builder::container::record::running(store, &r.id) {
        bail!("container {} is not running", r.name);
    }
    let options = logs::LogOptions {
        follow: true,
        from: Some(logs::end(store, &r.id)),
        ..Default::default()
    };
    print_logs(store, &r.id, &options, false)?;
    let code = container::wait(store, &r.id)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// Arguments of `rbuild attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The container: name or ID.
    container: String,
}

/// `rbuild wait`: prints each container's exit code once it ends.
pub fn wait(store: &Store, args: ContainersArgs) -> Result<ExitCode> {
    for c in &args.containers {
        println!("{}", container::wait(store, c)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild port`: the container's published ports (`80/tcp -> 0.0.0.0:8080`).
pub fn port(store: &Store, args: ContainersArgs) -> Result<ExitCode> {
    for c in &args.containers {
        let r = container::find(store, c)?;
        for p in &r.spec.ports {
            println!("{}/{} -> {}:{}", p.container_port, p.proto, p.host_ip, p.host_port);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `action` on each container, printing its name as given on success and the error
/// otherwise; fails when any failed.
fn each(
    names: &[String],
    mut action: impl FnMut(&str) -> rbuild_builder::Result<()>,
) -> Result<ExitCode> {
    let mut failed = false;
    for name in names {
        match action(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{} {:#}", human::error_tag(), anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
