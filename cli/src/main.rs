//! `rbuild`: build OCI images from Dockerfiles without a daemon.
//!
//! This binary is the only part of rbuild that prints. Flags are parsed by clap into raw
//! structs, turned into validated options, and handed to the library crates; every error
//! comes back here and is shown with its whole chain.

mod commands;
mod human;
mod progress;
mod shared_flags;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use clap::{Parser, Subcommand};

/// Build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Without a command, `build` is meant: `rbuild -t NAME .` builds ./Dockerfile \
        (a first word that is neither a command nor an existing path is an unknown command).\n\n\
        As a normal user with ranges in /etc/subuid and /etc/subgid and newuidmap installed \
        (Debian: uidmap), rbuild runs in a user namespace of those ids, as rootless Podman \
        does: images keep their files' owners and RUN may run as any of their users. \
        RBUILD_SUBIDS=off goes without (the sandbox then maps only the caller)."
)]
struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides it.
    #[arg(long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// The image store's directory [default: $RBUILD_ROOT, else /var/lib/rbuild for root,
    /// else $XDG_DATA_HOME/rbuild or ~/.local/share/rbuild].
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile (the default command: `rbuild -t name .`).
    Build(Box<commands::build::BuildArgs>),
    /// Parse a Dockerfile and print its instructions, AST dump or stage graph.
    Parse(commands::parse::ParseArgs),
    /// List images.
    Images(commands::image::ImagesArgs),
    /// Show details of images as JSON, in the shape of `docker image inspect`.
    Inspect(commands::image::InspectArgs),
    /// Show the layers of an image and what created each.
    History(commands::image::HistoryArgs),
    /// Give an image another name.
    Tag(commands::image::TagArgs),
    /// Remove image names, and images whose last name goes.
    Rmi(commands::image::RmiArgs),
    /// Write images to a tar archive (Docker or OCI layout).
    Save(commands::image::SaveArgs),
    /// Read images from a tar archive (Docker or OCI layout, plain or gzip).
    Load(commands::image::LoadArgs),
    /// Remove untagged images, unused blobs and leftovers of interrupted commands.
    Prune(commands::image::PruneArgs),
    /// Show the space the store uses.
    Du,
    /// Docker's names for store-wide commands: `system df` (as `du`), `system prune`.
    #[command(subcommand)]
    System(commands::image::SystemCommand),
    /// Docker's name for the build cache: `builder prune`.
    #[command(subcommand)]
    Builder(commands::image::BuilderCommand),
    /// Print a shell completion script (`source <(rbuild completion bash)`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages into a directory: rbuild.1 and rbuild-COMMAND.1 for each command.
    Man {
        /// Where to write them (made when missing).
        dir: PathBuf,
    },
    /// Check the store: blobs against their digests, images against their blobs, names
    /// against images, layer snapshots against what they held when made. Exits 1 when
    /// something is wrong (and, with --repair, could not be mended).
    Fsck(commands::image::FsckArgs),
    /// Download an image from a registry into the store.
    Pull(commands::registry::PullArgs),
    /// Upload an image from the store to a registry.
    Push(commands::registry::PushArgs),
    /// Save credentials for a registry in the docker config file.
    Login(commands::registry::LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(commands::registry::LogoutArgs),
    /// Run a command in an image, in a sandbox: a new container.
    Run(Box<commands::run::RunArgs>),
    /// List containers (running ones; -a for all).
    Ps(commands::container::PsArgs),
    /// Print a container's output.
    Logs(commands::container::LogsArgs),
    /// Stop running containers: their stop signal, then SIGKILL after a timeout.
    Stop(commands::container::StopArgs),
    /// Send a signal to running containers (SIGKILL unless -s).
    Kill(commands::container::KillArgs),
    /// Start stopped containers again, their file system changes kept.
    Start(commands::container::StartArgs),
    /// Stop containers, then start them again.
    Restart(commands::container::StopArgs),
    /// Remove containers (-f: running ones too).
    Rm(commands::container::RmArgs),
    /// Wait until containers end; print their exit codes.
    Wait(commands::container::ContainersArgs),
    /// Copy files between a container and the host.
    Cp(commands::container::CpArgs),
    /// Make an image of a container's changes.
    Commit(commands::container::CommitArgs),
    /// Manage volumes: create, ls, inspect, rm, prune.
    #[command(subcommand)]
    Volume(commands::container::VolumeCommand),
    /// Run a command in a running container (its namespaces, cgroups and confinement).
    Exec(commands::container::ExecArgs),
    /// List a running container's processes.
    Top(commands::container::ContainersArgs),
    /// Print a running container's output from now on, until it ends.
    Attach(commands::container::AttachArgs),
    /// List a container's published ports.
    Port(commands::container::ContainersArgs),
    /// Internal: supervise a detached container.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The container's ID.
        id: String,
    },
    /// Internal: run one sandbox spec for a build step.
    #[command(name = "__sandbox", hide = true)]
    Sandbox {
        /// The spec file.
        spec: PathBuf,
        /// The build's process: the sandbox ends when it does.
        parent: u32,
    },
}

/// The sandbox helper a build starts for each RUN (`__sandbox SPEC PARENT`), run before
/// the command line is parsed: building clap's parser of every command (twice, with
/// [`with_default_command`]) took 0.6 ms of each step's start. Arguments of another shape
/// go to clap, which says what is wrong with them.
fn sandbox_helper_first(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    let [_, command, spec, parent] = args else { return None };
    if command != "__sandbox" {
        return None;
    }
    let parent: u32 = parent.to_str()?.parse().ok()?;
    Some(exit_code(commands::build::sandbox_helper(std::path::Path::new(spec), parent)))
}

/// The arguments with `build` put in where no subcommand is named, so that
/// `rbuild -t name .` means `rbuild build -t name .`. A bare word that is neither a
/// command nor an existing path (`rbuild imagse`) is an unknown command, said as such with
/// the nearest command, rather than a build context that does not exist.
fn with_default_command(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let known: Vec<String> = command
        .get_subcommands()
        .flat_map(|s| {
            std::iter::once(s.get_name().to_string()).chain(s.get_all_aliases().map(String::from))
        })
        .chain(["help".to_string()])
        .collect();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--root" {
            i += 2;
            continue;
        }
        if a.starts_with("--root=") || a == "--verbose" {
            i += 1;
            continue;
        }
        if known.iter().any(|k| *k == a)
            || ["-h", "--help", "-V", "--version"].contains(&a.as_ref())
        {
            return Ok(args);
        }
        let bare_word = !a.starts_with('-')
            && a != "."
            && !a.contains('/')
            && !a.contains(':')
            && !std::path::Path::new(a.as_ref()).exists();
        if bare_word {
            let nearest = known
                .iter()
                .map(|k| (strsim::levenshtein(k, &a), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| format!(" (did you mean `rbuild {k}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown command {a:?}{nearest}; `rbuild --help` lists the commands, and a \
                 folder of that name is built with `rbuild build {a}` or `rbuild ./{a}`"
            ));
        }
        let mut out = args.clone();
        out.insert(i, "build".into());
        return Ok(out);
    }
    Ok(args)
}

/// `rbuild man DIR`: a page for rbuild and one for each command (and subcommand).
fn man_pages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    let mut queue = vec![(String::from("rbuild"), Cli::command())];
    while let Some((name, cmd)) = queue.pop() {
        if cmd.is_hide_set() {
            continue;
        }
        for sub in cmd.get_subcommands() {
            queue.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let cmd = cmd.name(name.clone());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    println!("{written} man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only on a terminal, and not when NO_COLOR asks for none.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(human::colour_on_stderr())
        .init();
}

/// A reader of rbuild's output that went away (`rbuild images | head -1`) ends rbuild
/// quietly, with the status a shell expects of SIGPIPE, not with a panic's message.
/// (SIGPIPE itself stays ignored, as Rust sets it: a socket's peer closing must not kill
/// rbuild.)
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// rbuild allocates with mimalloc rather than glibc's malloc. A no-op rebuild of a
/// 30,000-file context allocates some 25 MB of small objects (the listing, each COPY's
/// items, the stat cache) and frees them step by step, across threads: 108-114 ms with
/// glibc's allocator, 93-100 ms with mimalloc (means of 8, alternating). Without its
/// transparent huge pages (feature `no_thp`): with them, page faults fell from 7,000 to
/// 700 but not the time, and a cold build of a 5 GB context peaked at 100 MB instead of
/// 81 (glibc: 68-83 MB). A process starts some 0.6 ms slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_broken_pipe();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = sandbox_helper_first(&args) {
        return code;
    }
    let args = match with_default_command(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{} {message}", human::error_tag());
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    // Commands that use the store run in a user namespace (before any thread exists): a
    // normal user's of its subordinate ids when there are some; root's where root may
    // make namespaces only there (the container isolation, when asked for, needs none).
    let container_asked = matches!(&cli.command,
        Command::Build(b) if b.isolation == commands::build::IsolationArg::Container);
    if !container_asked
        && !matches!(
            cli.command,
            Command::Parse(_)
                | Command::Completion { .. }
                | Command::Man { .. }
                | Command::Login(_)
                | Command::Logout(_)
                | Command::Sandbox { .. }
                | Command::Supervise { .. }
                | Command::Exec(_)
        )
    {
        use rbuild_builder::sandbox::subids::{enter, Entry, SWITCH_VAR};
        match enter() {
            Entry::Ran(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Entry::NotEntered(_) => {}
            Entry::Failed(why) if rbuild_builder::users::is_root() => {
                eprintln!("rbuild: warning: root may not make namespaces here, nor a user namespace ({why})")
            }
            Entry::Failed(why) => eprintln!(
                "rbuild: warning: not using subordinate ids ({why}); the sandbox maps only \
                 you, so RUN as another user and --chown to one are refused (set \
                 {SWITCH_VAR}=off to go without them silently)"
            ),
        }
    }
    init_logging(cli.verbose);
    let store = || {
        let root = cli.root.clone().unwrap_or_else(rbuild_builder::store::default_root);
        rbuild_builder::store::Store::open(&root)
            .with_context(|| format!("opening the image store at {}", root.display()))
    };
    use commands::image;
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(args),
        Command::Images(args) => store().and_then(|s| image::images(&s, args)),
        Command::Inspect(args) => store().and_then(|s| image::inspect(&s, args)),
        Command::History(args) => store().and_then(|s| image::history(&s, args)),
        Command::Tag(args) => store().and_then(|s| image::tag(&s, args)),
        Command::Rmi(args) => store().and_then(|s| image::rmi(&s, args)),
        Command::Save(args) => store().and_then(|s| image::save(&s, args)),
        Command::Load(args) => store().and_then(|s| image::load(&s, args)),
        Command::Prune(args) => store().and_then(|s| image::prune(&s, args)),
        Command::Du => store().and_then(|s| image::du(&s)),
        Command::System(c) => store().and_then(|s| image::system(&s, c)),
        Command::Builder(c) => store().and_then(|s| image::builder(&s, c)),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rbuild", &mut script);
            // print! so that a reader that went away ends rbuild quietly (see above).
            print!("{}", String::from_utf8_lossy(&script));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man_pages(&dir),
        Command::Fsck(args) => store().and_then(|s| image::fsck(&s, args)),
        Command::Pull(args) => store().and_then(|s| commands::registry::pull(&s, args)),
        Command::Push(args) => store().and_then(|s| commands::registry::push(&s, args)),
        Command::Login(args) => commands::registry::login(args),
        Command::Logout(args) => commands::registry::logout(args),
        Command::Run(args) => store().and_then(|s| commands::run::run(&s, *args)),
        Command::Ps(args) => store().and_then(|s| commands::container::ps(&s, args)),
        Command::Logs(args) => store().and_then(|s| commands::container::logs(&s, args)),
        Command::Stop(args) => store().and_then(|s| commands::container::stop(&s, args)),
        Command::Kill(args) => store().and_then(|s| commands::container::kill(&s, args)),
        Command::Start(args) => store().and_then(|s| commands::container::start(&s, args)),
        Command::Restart(args) => store().and_then(|s| commands::container::restart(&s, args)),
        Command::Rm(args) => store().and_then(|s| commands::container::rm(&s, args)),
        Command::Wait(args) => store().and_then(|s| commands::container::wait(&s, args)),
        Command::Port(args) => store().and_then(|s| commands::container::port(&s, args)),
        Command::Volume(c) => store().and_then(|s| commands::container::volume(&s, c)),
        Command::Commit(args) => store().and_then(|s| commands::container::commit(&s, args)),
        Command::Cp(args) => store().and_then(|s| commands::container::cp(&s, args)),
        Command::Top(args) => store().and_then(|s| commands::container::top(&s, args)),
        Command::Attach(args) => store().and_then(|s| commands::container::attach(&s, args)),
        Command::Exec(args) => {
            let root = cli.root.clone().unwrap_or_else(rbuild_builder::store::default_root);
            commands::container::exec(&root, args)
        }
        Command::Supervise { id } => store().and_then(|s| {
            let code = rbuild_builder::container::supervise(&s, &id)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
        }),
        Command::Build(args) => store().and_then(|s| commands::build::run(&s, *args)),
        Command::Sandbox { spec, parent } => commands::build::sandbox_helper(&spec, parent),
    };
    rbuild_builder::store::remove_process_dirs();
    exit_code(result)
}

/// A command's exit code; its error said first.
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{} {err:#}", human::error_tag());
            ExitCode::FAILURE
        }
    }
}
