//! `rbuild build` (the default command): a Dockerfile and its context into an image.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::engine::{self as build, BuildOptions, Platform, ProcessExecutor};
use rbuild_builder::reference::Reference;
use rbuild_builder::sandbox::Network;
use rbuild_builder::store::Store;

use super::registry::{NetworkSource, PullOutput, RegistryArgs};
use crate::progress::{self, ProgressMode};

/// RUN's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// A network namespace of the step's own, reaching the outside through slirp4netns
    /// (as BuildKit's default: the host's loopback services stay out of reach).
    #[value(alias = "bridge")]
    Default,
    /// The host's own network, for every RUN. It hands the steps the host's interfaces,
    /// its loopback services (databases, admin ports, cloud metadata) and, with raw
    /// sockets, the host's traffic.
    Host,
    /// Only a loopback interface.
    None,
}

/// Arguments of `rbuild build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name the image (`name[:tag]`); repeat for several names.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// The Dockerfile (default: PATH/Dockerfile, or PATH/Containerfile when only that
    /// exists); `-` reads it from standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// Set a build argument (`KEY=VALUE`, or `KEY` to take the caller's variable).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// Build this stage (a name or index) and what it needs, not the last stage.
    #[arg(long)]
    target: Option<String>,
    /// Run every step, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Pull every base image, even when it is in the store.
    #[arg(long)]
    pull: bool,
    /// Add a label to the image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    /// Output: `auto` (tty on a terminal, else plain), `tty`, `plain` (Docker's classic
    /// lines), `quiet`, or `json` (one event per line).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// The network of RUN steps.
    #[arg(long, value_enum, default_value_t = NetworkArg::Default)]
    network: NetworkArg,
    /// Entitlements the Dockerfile may use: `network.host` lets `RUN --network=host` have
    /// the host's own network (its interfaces, its loopback services, its traffic);
    /// without it such a step is refused, as BuildKit does.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    allow: Vec<String>,
    /// The platform to build for (only this machine's is supported).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR` (just
    /// `id=ID` takes the variable ID). Never stored in the image, its history or the cache.
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    secrets: Vec<String>,
    /// An SSH agent for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET`.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    ssh: Vec<String>,
    /// Export the build cache of every step (all stages): `type=registry,ref=REF` or
    /// `type=local,dest=DIR` (`mode=max` is accepted: it is the only mode).
    #[arg(long = "cache-to", value_name = "type=registry,ref=REF|type=local,dest=DIR")]
    cache_to: Option<String>,
    /// Import a build cache first: `type=registry,ref=REF` (or just `REF`) or
    /// `type=local,src=DIR`; repeatable. A missing cache is a warning, not an error.
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF|type=local,src=DIR")]
    cache_from: Vec<String>,
    /// Push every `-t` name to its registry after the build.
    #[arg(long)]
    push: bool,
    /// Also write the result out: `type=local,dest=DIR` (the final file system),
    /// `type=tar,dest=FILE|-` (the same as a tar), `type=docker,dest=FILE|-` or
    /// `type=oci,dest=FILE|-` (an image archive, as `rbuild save` writes); a bare `DIR`
    /// means `type=local,dest=DIR`.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    output: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The build context: a directory, or `-` for a tar archive on standard input.
    #[arg(value_name = "PATH")]
    path: String,
}

/// Where `--output` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    /// The final file system into a directory.
    Local(PathBuf),
    /// The final file system as a tar (`None`: standard output).
    Tar(Option<PathBuf>),
    /// An image archive (`None`: standard output).
    Archive(rbuild_builder::archive::ArchiveFormat, Option<PathBuf>),
}

fn parse_output(text: &str) -> Result<Output> {
    if !text.contains('=') {
        return Ok(Output::Local(PathBuf::from(text)));
    }
    let mut kind = None;
    let mut dest = None;
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(v.to_string()),
            _ => bail!("invalid --output {text:?}: expected type=TYPE,dest=PATH"),
        }
    }
    let file = |d: Option<String>| d.filter(|d| d != "-").map(PathBuf::from);
    use rbuild_builder::archive::ArchiveFormat;
    match kind.as_deref() {
        Some("local") => Ok(Output::Local(PathBuf::from(
            dest.with_context(|| format!("--output {text:?}: type=local needs dest=DIR"))?,
        ))),
        Some("tar") => Ok(Output::Tar(file(dest))),
        Some("docker") => Ok(Output::Archive(ArchiveFormat::Docker, file(dest))),
        Some("oci") => Ok(Output::Archive(ArchiveFormat::Oci, file(dest))),
        Some(other) => bail!("--output type {other:?} is not one of local, tar, docker, oci"),
        None => bail!("invalid --output {text:?}: type= is missing"),
    }
}

/// Writes the built image out as `--output` asks.
fn export(store: &Store, image_id: &str, tags: &[Reference], output: &Output) -> Result<()> {
    let image = store.resolve(image_id)?;
    match output {
        Output::Local(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            store
                .unpack(&image, dir)
                .with_context(|| format!("writing the file system to {}", dir.display()))?;
        }
        Output::Tar(dest) => {
            let tmp = tempfile::Builder::new()
                .prefix("export-")
                .tempdir_in(store.tmp_dir())
                .context("making a directory for the export")?;
            let root = tmp.path().join("rootfs");
            let empty = tmp.path().join("empty");
            std::fs::create_dir_all(&root)?;
            std::fs::create_dir_all(&empty)?;
            store.unpack(&image, &root)?;
            let changes = rbuild_builder::snapshot::diff_trees(&empty, &root)?;
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok());
            match dest {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    rbuild_builder::snapshot::write_tar(
                        &root,
                        &changes,
                        epoch,
                        None,
                        std::io::BufWriter::new(file),
                    )?;
                }
                None => {
                    if std::io::stdout().is_terminal() {
                        bail!("refusing to write a tar to a terminal: give dest=FILE or redirect the output");
                    }
                    rbuild_builder::snapshot::write_tar(
                        &root,
                        &changes,
                        epoch,
                        None,
                        std::io::BufWriter::new(std::io::stdout().lock()),
                    )?;
                }
            }
        }
        Output::Archive(format, dest) => {
            super::image::write_archive(
                store,
                &[(image, tags.to_vec())],
                *format,
                dest.as_deref(),
            )?;
        }
    }
    Ok(())
}

/// Where a shared build cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheLocation {
    Registry(Reference),
    Local(PathBuf),
}

fn parse_cache_location(text: &str, dir_key: &str) -> Result<CacheLocation> {
    if !text.contains('=') {
        return Ok(CacheLocation::Registry(Reference::parse(text)?));
    }
    let (mut kind, mut reference, mut dir) = (None, None, None);
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("ref", v)) => reference = Some(v.to_string()),
            Some((k, v)) if k == dir_key => dir = Some(PathBuf::from(v)),
            Some(("mode", "max" | "min")) | Some(("oci-mediatypes" | "compression" | "ignore-error", _)) => {}
            _ => bail!("invalid cache location {text:?}: expected type=registry,ref=REF or type=local,{dir_key}=DIR"),
        }
    }
    match kind.as_deref() {
        Some("registry") => Ok(CacheLocation::Registry(Reference::parse(
            &reference.with_context(|| format!("{text:?}: type=registry needs ref=REF"))?,
        )?)),
        Some("local") => Ok(CacheLocation::Local(
            dir.with_context(|| format!("{text:?}: type=local needs {dir_key}=DIR"))?,
        )),
        other => bail!("cache type {other:?} is not registry or local"),
    }
}

/// Reads `--secret` values.
fn read_secrets(items: &[String]) -> Result<BTreeMap<String, build::Secret>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for field in item.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", v)) => kind = Some(v.to_string()),
                _ => bail!("invalid --secret {item:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
            }
        }
        let Some(id) = id else { bail!("invalid --secret {item:?}: id= is missing") };
        let value = match (src, env, kind.as_deref()) {
            (Some(path), _, _) => std::fs::read(&path)
                .with_context(|| format!("--secret {id}: reading {}", path.display()))?,
            (None, Some(var), _) => std::env::var_os(&var)
                .with_context(|| format!("--secret {id}: the variable {var} is not set"))?
                .into_encoded_bytes(),
            (None, None, Some("file")) => std::fs::read(&id)
                .with_context(|| format!("--secret {id}: reading the file {id}"))?,
            (None, None, _) => std::env::var_os(&id)
                .with_context(|| {
                    format!("--secret {id}: give src=FILE or env=VAR (no variable {id} is set)")
                })?
                .into_encoded_bytes(),
        };
        out.insert(id, build::Secret(value));
    }
    Ok(out)
}

/// Reads `--ssh` agent sockets.
fn read_ssh(items: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (id, socket) = match item.split_once('=') {
            Some((id, path)) => {
                (id.to_string(), PathBuf::from(path.split(',').next().unwrap_or(path)))
            }
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").with_context(|| {
                    format!("--ssh {item}: SSH_AUTH_SOCK is not set; give {item}=SOCKET")
                })?;
                (item.clone(), PathBuf::from(sock))
            }
        };
        if !socket.exists() {
            bail!("--ssh {id}: {} does not exist", socket.display());
        }
        out.insert(id, socket);
    }
    Ok(out)
}

/// Checks that the kernel runs programs of the architecture `arch` through a registered
/// binfmt_misc handler (qemu-user), which RUN steps of a foreign platform need.
fn binfmt_handler(arch: &str) -> std::result::Result<(), String> {
    let machine = match arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        other => other,
    };
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let entries = std::fs::read_dir(dir).map_err(|_| {
        "no binfmt_misc handlers can be registered here (is binfmt_misc mounted?)".to_string()
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(machine) {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.lines().next() == Some("enabled") {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no binfmt_misc handler runs {machine} programs (install qemu-user-static, or register one)"
    ))
}

/// Whether a `# syntax=` image is Dockerfile 1.x, which rbuild's frontend serves.
fn builtin_syntax(value: &str) -> bool {
    let name = value.split('@').next().unwrap_or(value);
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let Some(tag) = name
        .strip_prefix("docker/dockerfile:")
        .or_else(|| name.strip_prefix("docker/dockerfile-upstream:"))
    else {
        return name == "docker/dockerfile";
    };
    let tag = tag.strip_suffix("-labs").unwrap_or(tag);
    tag.split('.').next() == Some("1")
        && tag.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => bail!("invalid {what} {item:?}: the key is empty"),
            None if what == "build argument" => {
                // `--build-arg KEY` takes the caller's value, and is ignored without one.
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            None => bail!("invalid {what} {item:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// Extracts a tar context from standard input into a new directory.
fn context_from_stdin(store: &Store) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(store.tmp_dir())
        .context("making a directory for the context")?;
    let stdin = std::io::stdin();
    let reader =
        rbuild_builder::snapshot::decompress(stdin.lock()).context("reading the context")?;
    let options = rbuild_builder::snapshot::ApplyOptions {
        preserve_owners: false,
        whiteouts: rbuild_builder::snapshot::WhiteoutMode::Remove,
    };
    rbuild_builder::snapshot::apply_layer(reader, dir.path(), options)
        .context("extracting the context from standard input")?;
    Ok(dir)
}

/// `rbuild build`.
pub fn run(store: &Store, args: BuildArgs) -> Result<ExitCode> {
    let output = args.output.as_deref().map(parse_output).transpose()?;
    let stdout_taken = matches!(output, Some(Output::Tar(None)) | Some(Output::Archive(_, None)));
    let mode = if args.quiet { ProgressMode::Quiet } else { args.progress.resolve() };
    // An archive on standard output leaves the progress no room there.
    let mode = if stdout_taken && mode == ProgressMode::Plain { ProgressMode::Quiet } else { mode };
    if args.push && args.tags.is_empty() {
        bail!("--push needs at least one -t NAME to push to");
    }
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<Result<_>>()?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let host = Platform::host();
    if platform.os != host.os {
        bail!("cannot build for {platform} on this {host} machine: only Linux images are built");
    }
    if platform.architecture != host.architecture {
        if let Err(why) = binfmt_handler(&platform.architecture) {
            bail!("cannot build for {platform} on this {host} machine: {why}");
        }
    }
    let stdin_context = args.path == "-";
    let stdin_dockerfile = args.file.as_deref() == Some("-");
    if stdin_context && stdin_dockerfile {
        bail!("the context and the Dockerfile cannot both come from standard input");
    }
    let _tmp_context;
    let context_dir = if stdin_context {
        let dir = context_from_stdin(store)?;
        let path = dir.path().to_path_buf();
        _tmp_context = Some(dir);
        path
    } else {
        _tmp_context = None;
        let p = PathBuf::from(&args.path);
        if !p.is_dir() {
            bail!("unable to prepare context: path {:?} not found or not a directory", args.path);
        }
        p
    };
    let (dockerfile_text, dockerfile_name, dockerfile_path) = if stdin_dockerfile {
        let text = rbuild_builder::limits::read_limited(
            std::io::stdin(),
            rbuild_builder::limits::MAX_DOCKERFILE_BYTES,
            std::path::Path::new("the Dockerfile on standard input"),
        )?;
        (String::from_utf8_lossy(&text).into_owned(), "-".to_string(), None)
    } else {
        let path = match &args.file {
            Some(f) => PathBuf::from(f),
            None => {
                let d = context_dir.join("Dockerfile");
                let c = context_dir.join("Containerfile");
                if !d.exists() && c.exists() {
                    c
                } else {
                    d
                }
            }
        };
        let bytes = rbuild_builder::limits::read_file_limited(
            &path,
            rbuild_builder::limits::MAX_DOCKERFILE_BYTES,
        )
        .with_context(|| format!("reading the Dockerfile {}", path.display()))?;
        let name = match &args.file {
            Some(f) => f.clone(),
            None if stdin_context => "Dockerfile".to_string(),
            None => {
                let shown = path.display().to_string();
                shown.strip_prefix("./").map(str::to_string).unwrap_or(shown)
            }
        };
        (String::from_utf8_lossy(&bytes).into_owned(), name, Some(path))
    };
    let df = match rbuild_parser::parse(&dockerfile_text) {
        Ok(df) => df,
        Err(e) => bail!("{}", rbuild_parser::render_error(&dockerfile_name, &dockerfile_text, &e)),
    };
    let cache_to = args.cache_to.as_deref().map(|t| parse_cache_location(t, "dest")).transpose()?;
    let cache_from: Vec<CacheLocation> =
        args.cache_from.iter().map(|t| parse_cache_location(t, "src")).collect::<Result<_>>()?;
    let reporter = progress::reporter(mode);
    for location in &cache_from {
        let imported = match location {
            CacheLocation::Local(dir) => {
                rbuild_builder::engine::shared_cache::read_local(store, dir)
                    .map_err(anyhow::Error::from)
            }
            CacheLocation::Registry(r) => super::registry::pull_blobs(store, r, &args.registry)
                .and_then(|m| Ok(rbuild_builder::engine::shared_cache::import(store, &m)?)),
        };
        match imported {
            Ok(n) => tracing::info!(records = n, "imported a build cache"),
            Err(e) => reporter.event(build::Event::Warning(format!(
                "no build cache imported from {location:?}: {e:#}"
            ))),
        }
    }
    if let Some(syntax) = df.tree.directive("syntax") {
        if !builtin_syntax(syntax) {
            reporter.event(build::Event::Warning(format!(
                "the syntax image {syntax} is not used: rbuild builds with its own Dockerfile frontend"
            )));
        }
    }
    let mut build_args = key_values(&args.build_args, "build argument")?;
    let epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    build_args.retain(|k, _| !k.is_empty());
    let options = BuildOptions {
        context: context_dir,
        dockerfile_text,
        dockerfile_name,
        dockerfile_path,
        tags: tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels: key_values(&args.labels, "label")?,
        network: match args.network {
            NetworkArg::None => Network::None,
            NetworkArg::Host => Network::Host,
            NetworkArg::Default => Network::Private,
        },
        allow_host_network: allow_host_network(&args.allow)?,
        platform,
        jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        source_date_epoch: epoch,
        secrets: read_secrets(&args.secrets)?,
        ssh: read_ssh(&args.ssh)?,
    };
    let executor = ProcessExecutor {
        program: std::env::current_exe().context("finding rbuild's own executable")?,
        args: vec!["__sandbox".to_string()],
    };
    let pulls = match mode {
        ProgressMode::Plain => PullOutput::Lines,
        ProgressMode::Tty => PullOutput::Bars,
        _ => PullOutput::Quiet,
    };
    let source = NetworkSource::new(args.registry.clone(), pulls);
    let result = build::build(store, &df, &options, &source, &executor, reporter.as_ref());
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            reporter.finish(None);
            return Err(e.into());
        }
    };
    reporter.finish(Some(&result));
    if let Some(path) = &args.iidfile {
        std::fs::write(path, result.image_id.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(output) = &output {
        export(store, result.image_id.as_ref(), &tags, output)?;
    }
    // The cache's config and manifest are named by nothing: no collection may run meanwhile.
    let _in_use = store.in_use()?;
    if let Some(location) = &cache_to {
        let bundle = rbuild_builder::engine::shared_cache::bundle(store, &result.steps)?;
        match location {
            CacheLocation::Local(dir) => {
                rbuild_builder::engine::shared_cache::write_local(store, &bundle, dir)
                    .with_context(|| format!("writing the build cache to {}", dir.display()))?
            }
            CacheLocation::Registry(r) => {
                super::registry::push_manifest(
                    store,
                    &bundle.manifest,
                    &bundle.blobs,
                    r,
                    &args.registry,
                    true,
                )
                .with_context(|| format!("pushing the build cache to {}", r.familiar()))?;
            }
        }
    }
    if args.push {
        for tag in &tags {
            let image = store.resolve(&tag.to_string())?;
            super::registry::push_image(
                store,
                &image,
                tag,
                &args.registry,
                mode != ProgressMode::Plain,
            )?;
        }
    }
    match mode {
        ProgressMode::Quiet if stdout_taken => eprintln!("{}", result.image_id),
        ProgressMode::Quiet => println!("{}", result.image_id),
        ProgressMode::Json => {}
        _ => {
            println!("Successfully built {}", &result.image_id.digest()[..12]);
            for t in &tags {
                println!("Successfully tagged {}", t.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The hidden `__sandbox SPEC` helper: runs one sandbox spec (written by the build) and
/// exits with the command's status. A process of its own, single-threaded, as the
/// sandbox needs.
pub fn sandbox_helper(spec: &std::path::Path, parent: u32) -> Result<ExitCode> {
    rbuild_builder::sandbox::exit_with_parent(parent)?;
    let bytes = std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?;
    let spec: rbuild_builder::sandbox::SandboxSpec =
        serde_json::from_slice(&bytes).context("reading the sandbox spec")?;
    let code = rbuild_builder::sandbox::run(&spec)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// Whether standard output is a terminal (for `--progress auto`).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Reads `--allow` values: `network.host` is granted; `security.insecure` is refused (the
/// sandbox has no insecure mode), as is anything unknown.
fn allow_host_network(allow: &[String]) -> Result<bool> {
    let mut host = false;
    for value in allow.iter().flat_map(|v| v.split(',')) {
        match value.trim() {
            "network.host" => host = true,
            "security.insecure" => {
                bail!("--allow security.insecure: rbuild's sandbox has no insecure mode")
            }
            other => bail!("--allow {other}: unknown entitlement (network.host is known)"),
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn syntax_images() {
        for ok in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7",
            "docker.io/docker/dockerfile:1.4-labs",
            "docker/dockerfile:1.6.0@sha256:ab",
        ] {
            assert!(super::builtin_syntax(ok), "{ok}");
        }
        for no in ["docker/dockerfile:2", "example.com/front:1", "docker/dockerfile:1.x"] {
            assert!(!super::builtin_syntax(no), "{no}");
        }
    }
}
