//! `rbuild build` (the default command): a Dockerfile and its context into an image.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::engine::flags::{self, DockerfileInput};
use rbuild_builder::engine::shared_cache::CacheLocation;
use rbuild_builder::engine::{
    context, BuildOptions, Executor, InPlaceExecutor, NamedContext, Platform, ProcessExecutor,
};
use rbuild_builder::export::Output;
use rbuild_builder::reference::Reference;
use rbuild_builder::remote::RegistrySource;
use rbuild_builder::sandbox::environment::{self, Isolation};
use rbuild_builder::sandbox::Network;
use rbuild_builder::store::Store;
use rbuild_builder::workflow::{self, BuildJob};
use rbuild_parser::Dockerfile;

use crate::progress::{self, ProgressMode};
use crate::shared_flags::RegistryArgs;

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

/// How RUN steps are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// New Linux namespaces for each RUN (a user namespace as a normal user); as root in
    /// a container that allows none and marks itself as throwaway (RBUILD_KEEP set, as in
    /// rbuild's own image), the container (see `container`), said in one line.
    Auto,
    /// New Linux namespaces only.
    Sandbox,
    /// Each RUN in the container rbuild runs in, on its own root file system, as kaniko
    /// does. WARNING: this removes and rewrites the files of that container (all but its
    /// mount points, rbuild's own files, the store and the context): use it only in a
    /// throwaway container, such as a CI job's. Refused outside a container.
    Container,
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
    /// Serve the package files RUN steps' apt fetches over plain HTTP from the store's
    /// download cache, and keep new ones there (each checked: indexes by their digest,
    /// packages whole, as apt checks them again). The image does not change; the step's
    /// apt is pointed at the cache by APT_CONFIG unless the Dockerfile sets APT_CONFIG
    /// or http_proxy. `builder prune` empties it.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    download_cache: bool,
    /// Run every step of these stages (names or indexes; repeatable or comma-separated)
    /// again, while the others may come from the cache.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Say for every step that misses the cache why it did (by default only steps that
    /// ran in the last build of the same tag and target are explained).
    #[arg(long)]
    pub explain: bool,
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
    pub extras: crate::shared_flags::RunExtrasArgs,
    /// A named context (repeatable): `NAME=DIR` (files for `COPY --from=NAME` and
    /// `RUN --mount=from=NAME`) or `NAME=docker-image://REF` (an image for `FROM NAME` too).
    /// A stage of that name wins over it.
    #[arg(long = "build-context", value_name = "NAME=DIR|docker-image://REF")]
    pub build_contexts: Vec<String>,
    /// Write the build's result as buildx does: `containerimage.digest`,
    /// `containerimage.config.digest`, `containerimage.descriptor`, `image.name`.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Add an annotation to the image's manifest: `KEY=VALUE` or `manifest:KEY=VALUE`
    /// (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Accepted for buildx's scripts: the image always lands in rbuild's store.
    #[arg(long)]
    pub load: bool,
    /// Provenance attestations (buildx): only `false`/`0` is accepted; rbuild makes none.
    #[arg(long, value_name = "BOOL|mode=...", num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// SBOM attestations (buildx): only `false`/`0` is accepted; rbuild makes none.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Attestations (buildx `--attest type=...`): refused unless `disabled=true`.
    #[arg(long, value_name = "type=TYPE,...")]
    pub attest: Vec<String>,
    /// Also run rbuild's set of hadolint rules (those that need no shell parser, with
    /// hadolint's codes, levels and messages): with `--check` among its findings, in a
    /// build at its end.
    #[arg(long)]
    pub hadolint: bool,
    /// Run only the build checks and print each finding in full; nothing is built. Exit
    /// status 1 when something is found. The same as `--call=check`.
    #[arg(long)]
    pub check: bool,
    /// What to do with the Dockerfile: `build` it, `check` it (as `--check`), print the
    /// `outline` of the target (its build arguments, secrets and SSH agents), or list its
    /// `targets` (stages, with the comment above each FROM as description).
    #[arg(long, value_enum, default_value = "build")]
    pub call: CallArg,
    /// How RUN steps are isolated: `auto`, `sandbox` or `container` (see below).
    #[arg(long, value_enum, default_value = "auto")]
    pub isolation: IsolationArg,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The build context: a directory; `-` for a tar archive on standard input; a git
    /// repository (`URL[#REF[:DIR]]`); or an http(s) URL of a tar archive (or of a lone
    /// Dockerfile).
    #[arg(value_name = "PATH")]
    path: String,
}

/// `--call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CallArg {
    /// Build the image.
    Build,
    /// Run the build checks only.
    Check,
    /// The target's build arguments, secrets and SSH agents.
    Outline,
    /// The stages one can build.
    Targets,
}

/// `rbuild build`.
pub fn run(store: &Store, args: BuildArgs) -> Result<ExitCode> {
    let output = args.output.as_deref().map(Output::parse).transpose()?;
    let stdout_taken = output.as_ref().is_some_and(Output::to_stream);
    if stdout_taken && std::io::stdout().is_terminal() {
        bail!("refusing to write an archive or a tar to a terminal: give dest=FILE or redirect the output");
    }
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
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let platform = platform.unwrap_or_else(Platform::host);
    flags::check_platform(&platform)?;
    let stdin_context = args.path == "-";
    if stdin_context && args.file.as_deref() == Some("-") {
        bail!("the context and the Dockerfile cannot both come from standard input");
    }
    let tar_context = if stdin_context {
        let dir = context::extract_tar(store, std::io::stdin().lock())
            .context("extracting the context from standard input")?;
        Some(dir)
    } else {
        None
    };
    let remote = if context::is_remote(&args.path) {
        let source = RegistrySource::new(args.registry.options());
        let fetched = context::fetch_remote(store, &args.path, &source)
            .with_context(|| format!("fetching the build context {}", args.path))?;
        Some(fetched)
    } else {
        None
    };
    let context_dir = match (&tar_context, &remote) {
        (Some(dir), _) => dir.path().to_path_buf(),
        (None, Some(fetched)) => fetched.path.clone(),
        (None, None) => PathBuf::from(&args.path),
    };
    if !context_dir.is_dir() {
        bail!("unable to prepare context: path {:?} not found or not a directory", args.path);
    }
    // In a remote context, -f names a file of the context.
    let file = match (&remote, &args.file) {
        (Some(_), Some(f)) if f != "-" && !f.starts_with('/') => {
            Some(context_dir.join(f).display().to_string())
        }
        _ => args.file.clone(),
    };
    let dockerfile = DockerfileInput::read(
        file.as_deref(),
        &context_dir,
        stdin_context || remote.is_some(),
        std::io::stdin().lock(),
    )?;
    let df = match rbuild_parser::parse(&dockerfile.text) {
        Ok(df) => df,
        Err(e) => {
            if mode == ProgressMode::Json {
                // The event stream ends with the failure, where it is, as for a failed step.
                let v = serde_json::json!({"event": "failed", "error": e.kind.to_string(),
                    "file": dockerfile.name, "line": e.span.start.line, "column": e.span.start.column});
                println!("{v}");
            }
            bail!("{}", rbuild_parser::render_error(&dockerfile.name, &dockerfile.text, &e))
        }
    };
    let job = BuildJob {
        cache_from: args
            .cache_from
            .iter()
            .map(|t| CacheLocation::parse(t, "src"))
            .collect::<Result<_, _>>()?,
        cache_to: args.cache_to.as_deref().map(|t| CacheLocation::parse(t, "dest")).transpose()?,
        output,
        push: args.push,
        registry: args.registry.options(),
    };
    for (flag, value) in [("--provenance", &args.provenance), ("--sbom", &args.sbom)] {
        if value.as_deref().is_some_and(|v| !matches!(v, "false" | "0" | "disabled=true")) {
            bail!("{flag}: rbuild does not make attestations; give {flag}=false or leave it out");
        }
    }
    if let Some(a) = args.attest.iter().find(|a| !a.split(',').any(|p| p == "disabled=true")) {
        bail!("--attest {a:?}: rbuild does not make attestations (disabled=true is accepted)");
    }
    let _ = args.load;
    let mut named_contexts = std::collections::BTreeMap::new();
    for c in &args.build_contexts {
        let (name, value) = c
            .split_once('=')
            .with_context(|| format!("invalid --build-context {c:?}: NAME=VALUE"))?;
        named_contexts.insert(name.to_lowercase(), NamedContext::parse(value)?);
    }
    let mut annotations = std::collections::BTreeMap::new();
    for a in &args.annotations {
        let a = a.strip_prefix("manifest:").unwrap_or(a);
        let (k, v) =
            a.split_once('=').with_context(|| format!("invalid --annotation {a:?}: KEY=VALUE"))?;
        if ["index", "index-descriptor", "manifest-descriptor"]
            .iter()
            .any(|p| k.starts_with(&format!("{p}:")) || k.starts_with(&format!("{p}[")))
        {
            bail!("--annotation {a:?}: rbuild writes one manifest, so only manifest annotations are taken");
        }
        annotations.insert(k.to_string(), v.to_string());
    }
    let build_args = flags::key_values(&args.build_args, "build argument")?;
    let options = BuildOptions {
        tags: tags.clone(),
        source_date_epoch: flags::source_date_epoch(&build_args),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        run_extras: args.extras.extras()?,
        named_contexts,
        annotations,
        pull: args.pull,
        labels: flags::key_values(&args.labels, "label")?,
        network: match args.network {
            NetworkArg::None => Network::None,
            NetworkArg::Host => Network::Host,
            NetworkArg::Default => Network::Private,
        },
        allow_host_network: flags::host_network_allowed(&args.allow)?,
        platform,
        secrets: flags::secrets(&args.secrets)?,
        ssh: flags::ssh_agents(&args.ssh)?,
        download_cache: args.download_cache,
        ..BuildOptions::new(context_dir, dockerfile)
    };
    let call = if args.check { CallArg::Check } else { args.call };
    match call {
        CallArg::Build => {}
        CallArg::Check => return check(store, &df, &options, args.hadolint),
        CallArg::Outline => return outline(&df, &options),
        CallArg::Targets => return targets(&df, &options),
    }
    let requested = match args.isolation {
        IsolationArg::Auto => None,
        IsolationArg::Sandbox => Some(Isolation::Sandbox),
        IsolationArg::Container => Some(Isolation::Container),
    };
    let (isolation, said) = environment::choose(requested).map_err(anyhow::Error::msg)?;
    if let Some(line) = said {
        eprintln!("rbuild: {line}");
    }
    if isolation == Isolation::Sandbox && store.on_overlayfs() {
        eprintln!(
            "rbuild: the store ({}) is on overlayfs, which overlayfs cannot stack on: each RUN \
             copies its layers (slower); a volume for the store (--root) avoids it",
            store.root().display()
        );
    }
    let executor: Box<dyn Executor> = match isolation {
        Isolation::Sandbox => Box::new(ProcessExecutor::new(
            std::env::current_exe().context("finding rbuild's own executable")?,
            vec!["__sandbox".to_string()],
        )),
        Isolation::Container => {
            let mut keep = environment::container_keep_paths();
            keep.push(std::path::absolute(store.root()).context("the store's path")?);
            keep.push(std::path::absolute(&options.context).context("the context's path")?);
            keep.extend(
                args.file.iter().filter(|f| *f != "-").filter_map(|f| std::path::absolute(f).ok()),
            );
            Box::new(InPlaceExecutor::new(&keep, store.whiteout_mode()))
        }
    };
    let reporter = progress::reporter(mode, args.explain);
    // Not locked for the whole build: stage threads print their events meanwhile.
    let mut stdout = std::io::stdout();
    let built = workflow::build(
        store,
        &df,
        &options,
        &job,
        executor.as_ref(),
        reporter.as_ref(),
        &mut stdout,
    );
    reporter.finish(built.as_ref());
    if args.hadolint {
        for line in hadolint_lines(&df, &options.dockerfile_name) {
            eprintln!("{line}");
        }
    }
    let result = built?;
    if let Some(path) = &args.metadata_file {
        let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let mut meta = serde_json::json!({
            "containerimage.config.digest": result.image_id.to_string(),
            "containerimage.digest": result.manifest.digest().to_string(),
            "containerimage.descriptor": {
                "mediaType": result.manifest.media_type().to_string(),
                "digest": result.manifest.digest().to_string(),
                "size": result.manifest.size(),
            },
        });
        if !names.is_empty() {
            meta["image.name"] = names.join(",").into();
        }
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, result.image_id.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
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

/// `--check`: every finding in full, then BuildKit's closing line.
fn check(
    store: &Store,
    df: &Dockerfile,
    options: &BuildOptions,
    hadolint: bool,
) -> Result<ExitCode> {
    let found = rbuild_builder::engine::lint::check_only(store, df, options)?;
    let mut out = std::io::stdout().lock();
    for f in &found {
        let detail = progress::check_detail(&options.dockerfile_name, &options.dockerfile_text, f);
        writeln!(out, "{detail}")?;
    }
    let extra = if hadolint { hadolint_lines(df, &options.dockerfile_name) } else { Vec::new() };
    for line in &extra {
        writeln!(out, "{line}")?;
    }
    if !extra.is_empty() {
        writeln!(out)?;
    }
    match found.len() + extra.len() {
        0 => writeln!(out, "Check complete, no warnings found.")?,
        1 => writeln!(out, "Check complete, 1 warning has been found!")?,
        n => writeln!(out, "Check complete, {n} warnings have been found!")?,
    }
    Ok(if found.is_empty() && extra.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// hadolint's findings, one line each (`Dockerfile:3 DL3006 warning: ...`).
fn hadolint_lines(df: &Dockerfile, file: &str) -> Vec<String> {
    rbuild_parser::checks::hadolint::hadolint(df)
        .iter()
        .map(|f| format!("{file}:{} {} {}: {}", f.line, f.code, f.level, f.message))
        .collect()
}

/// The comment right above line `line` whose first word is `name`: the rest, as the
/// description BuildKit reads for `--call=outline|targets`.
fn description(lines: &[&str], line: usize, name: &str) -> String {
    match rbuild_parser::checks::comment_above(lines, line).and_then(|c| c.split_once(' ')) {
        Some((first, rest)) if first == name => rest.trim().to_string(),
        _ => String::new(),
    }
}

/// `--call=targets`: the stages, the default (last) one marked.
fn targets(df: &Dockerfile, options: &BuildOptions) -> Result<ExitCode> {
    let graph = rbuild_parser::StageGraph::build(df, &options.build_args)?;
    let last = graph.stages.len().saturating_sub(1);
    let lines: Vec<&str> = options.dockerfile_text.lines().collect();
    let mut rows = Vec::new();
    for (i, st) in graph.stages.iter().enumerate() {
        let Some(name) = &st.name else { continue };
        let shown = if i == last { format!("{name} (default)") } else { name.clone() };
        rows.push(vec![shown, description(&lines, st.span.start.line, name)]);
    }
    print!("{}", crate::human::table(&["TARGET", "DESCRIPTION"], &rows));
    Ok(ExitCode::SUCCESS)
}

/// `--call=outline`: the build arguments the target's stages declare (with the value the
/// build would use), the secrets and SSH agents their RUN steps mount.
fn outline(df: &Dockerfile, options: &BuildOptions) -> Result<ExitCode> {
    use rbuild_parser::{InstructionKind, MountKind};
    let graph = rbuild_parser::StageGraph::build(df, &options.build_args)?;
    let order = graph.order_for(options.target.as_deref())?;
    let target = order.last().map(|i| &graph.stages[*i]);
    let mut args: Vec<Vec<String>> = Vec::new();
    let (mut secrets, mut ssh) = (Vec::new(), Vec::new());
    let lines: Vec<&str> = options.dockerfile_text.lines().collect();
    for &i in &order {
        for inst in &graph.stages[i].instructions {
            match &inst.kind {
                InstructionKind::Arg(pairs) => {
                    for (k, default) in pairs {
                        if args.iter().any(|a| &a[0] == k) {
                            continue;
                        }
                        let global = graph.global_args.iter().find(|(g, _)| g == k);
                        let value = options
                            .build_args
                            .get(k)
                            .cloned()
                            .or_else(|| default.clone())
                            .or_else(|| global.and_then(|g| g.1.clone()))
                            .unwrap_or_default();
                        args.push(vec![
                            k.clone(),
                            value,
                            description(&lines, inst.span.start.line, k),
                        ]);
                    }
                }
                InstructionKind::Run { mounts, .. } => {
                    for m in mounts {
                        let id = m.id.clone().or_else(|| m.target.clone()).unwrap_or_default();
                        match m.kind {
                            MountKind::Secret if !secrets.contains(&id) => secrets.push(id),
                            MountKind::Ssh => {
                                let id = m.id.clone().unwrap_or_else(|| "default".into());
                                if !ssh.contains(&id) {
                                    ssh.push(id);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    if let Some(t) = target {
        let name = t.name.clone().unwrap_or_else(|| format!("stage {}", t.index));
        out.push_str(&format!("TARGET:      {name}\n"));
        if let Some(n) = &t.name {
            let d = description(&lines, t.span.start.line, n);
            if !d.is_empty() {
                out.push_str(&format!("DESCRIPTION: {d}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&crate::human::table(&["BUILD ARG", "VALUE", "DESCRIPTION"], &args));
    if !secrets.is_empty() {
        let rows: Vec<Vec<String>> = secrets.into_iter().map(|s| vec![s]).collect();
        out.push_str(&format!("\n{}", crate::human::table(&["SECRET"], &rows)));
    }
    if !ssh.is_empty() {
        let rows: Vec<Vec<String>> = ssh.into_iter().map(|s| vec![s]).collect();
        out.push_str(&format!("\n{}", crate::human::table(&["SSH"], &rows)));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The hidden `__sandbox SPEC` helper: runs one sandbox spec (written by the build) and
/// exits with the command's status. A process of its own, single-threaded, as the
/// sandbox needs.
pub fn sandbox_helper(spec: &std::path::Path, parent: u32) -> Result<ExitCode> {
    let code = rbuild_builder::sandbox::run_spec_file(spec, parent)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
