//! The registry commands: pull, push, login, logout.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use rbuild_builder::reference::Reference;
use rbuild_builder::store::Store;
use rbuild_registry_client::{
    Client, ClientOptions, CredentialSource, Credentials, DockerConfig, Progress, Repository,
};

/// Options every registry command takes.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Reach this registry (`HOST[:PORT]`) over plain HTTP when it does not speak TLS
    /// (loopback registries always may). A certificate that does not verify is an error
    /// either way, never a reason to fall back to HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
    /// Also trust this CA certificate (PEM) for HTTPS.
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
    /// How many blobs to transfer at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Seconds a request that moves no blob (ping, token, manifest) may take in all.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    registry_timeout: u64,
    /// Seconds one blob download or upload request may take in all.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    registry_transfer_timeout: u64,
    /// Seconds a connection may go without delivering a byte.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    registry_stall_timeout: u64,
}

/// Arguments of `rbuild pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: `[registry/]repository[:tag|@digest]`.
    reference: String,
    /// For a multi-platform image, the platform to pull: `os/arch[/variant]` (default: this
    /// machine's).
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Arguments of `rbuild push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: a name, ID or digest of the local store.
    image: String,
    /// Where to push it, `registry/repository:tag` (default: the image's name).
    destination: Option<String>,
    /// Print only the pushed manifest's digest.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Arguments of `rbuild login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    registry: Option<String>,
    /// The user name.
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    options: RegistryArgs,
}

/// Arguments of `rbuild logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    registry: Option<String>,
}

fn client(args: &RegistryArgs, credentials: Arc<dyn CredentialSource>) -> Result<Client> {
    let options = ClientOptions {
        insecure_registries: args.insecure.clone(),
        ca_files: args.ca_files.clone(),
        concurrency: args.concurrency as usize,
        request_timeout: std::time::Duration::from_secs(args.registry_timeout),
        transfer_timeout: std::time::Duration::from_secs(args.registry_transfer_timeout),
        stall_timeout: std::time::Duration::from_secs(args.registry_stall_timeout),
        ..ClientOptions::default()
    };
    Ok(Client::new(options, credentials)?)
}

fn docker_config() -> Result<Arc<DockerConfig>> {
    let path = DockerConfig::default_path();
    Ok(Arc::new(DockerConfig::load(&path).with_context(|| format!("reading {}", path.display()))?))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Plain progress lines, Docker style, on standard output.
struct Lines {
    quiet: bool,
    verb: &'static str,
}

impl Progress for Lines {
    fn start(&self, digest: &str, _size: u64) {
        if !self.quiet {
            println!("{}: {}", short(digest), self.verb);
        }
    }
    fn advance(&self, _: &str, _: u64) {}
    fn skipped(&self, digest: &str, why: &str) {
        if !self.quiet {
            println!("{}: {why}", short(digest));
        }
    }
    fn done(&self, digest: &str) {
        if !self.quiet {
            println!(
                "{}: {} complete",
                short(digest),
                if self.verb == "Pushing" { "Push" } else { "Pull" }
            );
        }
    }
}

/// A progress bar per blob, on a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
    verb: &'static str,
}

impl Bars {
    fn new(verb: &'static str) -> Self {
        Bars { multi: indicatif::MultiProgress::new(), bars: Default::default(), verb }
    }

    fn bar(&self, digest: &str) -> Option<indicatif::ProgressBar> {
        self.bars.lock().ok()?.get(digest).cloned()
    }
}

impl Progress for Bars {
    fn start(&self, digest: &str, size: u64) {
        let bar = self.multi.add(indicatif::ProgressBar::new(size));
        let style = indicatif::ProgressStyle::with_template(
            "{prefix}: {msg:8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(short(digest).to_string());
        bar.set_message(self.verb);
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(digest.to_string(), bar);
        }
    }
    fn advance(&self, digest: &str, bytes: u64) {
        if let Some(b) = self.bar(digest) {
            b.inc(bytes);
        }
    }
    fn skipped(&self, digest: &str, why: &str) {
        let _ = self.multi.println(format!("{}: {why}", short(digest)));
    }
    fn done(&self, digest: &str) {
        if let Some(b) = self.bar(digest) {
            b.finish_with_message("done");
        }
    }
}

/// How a pull shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullOutput {
    /// Nothing.
    Quiet,
    /// Docker's lines (`Pulling from`, one line per blob).
    Lines,
    /// A bar per blob and no other text (inside a build's live display).
    Bars,
    /// Bars on a terminal, else lines.
    Auto,
}

/// Bars on a terminal, plain lines otherwise (and nothing with `quiet`).
fn progress(quiet: bool, verb: &'static str) -> Box<dyn Progress> {
    if !quiet && std::io::stdout().is_terminal() {
        Box::new(Bars::new(if verb == "Pushing" { "push" } else { "pull" }))
    } else {
        Box::new(Lines { quiet, verb })
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..12.min(hex.len())]
}

fn host_platform() -> (String, String, Option<String>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let variant = (arch == "arm64").then(|| "v8".to_string());
    ("linux".to_string(), arch.to_string(), variant)
}

fn parse_platform(p: &str) -> Result<(String, String, Option<String>)> {
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] => Ok((os.to_string(), arch.to_string(), None)),
        [os, arch, variant] => Ok((os.to_string(), arch.to_string(), Some(variant.to_string()))),
        _ => bail!("invalid platform {p:?}: expected os/arch[/variant]"),
    }
}

/// `rbuild pull`.
pub fn pull(store: &Store, args: PullArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let wanted = match &args.platform {
        Some(p) => parse_platform(p)?,
        None => host_platform(),
    };
    let client = client(&args.registry, docker_config()?)?;
    let output = if args.quiet { PullOutput::Quiet } else { PullOutput::Auto };
    let (config, digest) = pull_image(store, &client, &reference, &wanted, output)?;
    if args.quiet {
        println!("{config}");
    } else {
        println!("Digest: {digest}");
        println!("Status: Downloaded image for {}", reference.familiar());
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls `reference` for the platform `wanted` into the store, showing progress as
/// `output` says. Returns the config digest (image ID) and the digest the registry named (the
/// index's for a multi-platform image).
pub fn pull_image(
    store: &Store,
    client: &Client,
    reference: &Reference,
    wanted: &(String, String, Option<String>),
    output: PullOutput,
) -> Result<(Digest, String)> {
    let repo = Repository::new(reference.domain(), reference.path());
    let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest").to_string();
    let bars = match output {
        PullOutput::Bars => true,
        PullOutput::Auto => std::io::stdout().is_terminal(),
        PullOutput::Quiet | PullOutput::Lines => false,
    };
    if matches!(output, PullOutput::Lines | PullOutput::Auto) {
        println!(
            "{}: Pulling from {}",
            reference.tag().unwrap_or(&tag_or_digest),
            reference.familiar_repository()
        );
    }
    let rt = runtime()?;
    let _in_use = store.in_use()?;
    let (manifest, index) = rt.block_on(async {
        let first = client.pull_manifest(&repo, &tag_or_digest).await?;
        if !first.is_index() {
            return Ok::<_, anyhow::Error>((first, None));
        }
        let index: ImageIndex =
            serde_json::from_slice(&first.bytes).context("reading the image index")?;
        let (os, arch, variant) = wanted;
        let chosen = index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == *os
                        && p.architecture().to_string() == *arch
                        && (variant.is_none() || p.variant().as_deref() == variant.as_deref())
                })
            })
            .ok_or_else(|| {
                let v = variant.as_ref().map(|v| format!("/{v}")).unwrap_or_default();
                rbuild_registry_client::Error::NoPlatform(format!("{os}/{arch}{v}"))
            })?;
        let m = client.pull_manifest(&repo, chosen.digest().as_ref()).await?;
        Ok((m, Some(first)))
    })?;
    let parsed: ImageManifest =
        serde_json::from_slice(&manifest.bytes).context("reading the image manifest")?;
    let progress: Arc<dyn Progress> = if bars {
        Arc::new(Bars::new("pull"))
    } else {
        Arc::new(Lines { quiet: output == PullOutput::Quiet, verb: "Pulling fs layer" })
    };
    let blobs: Vec<Descriptor> =
        std::iter::once(parsed.config().clone()).chain(parsed.layers().iter().cloned()).collect();
    let missing: Vec<Descriptor> =
        blobs.iter().filter(|d| !store.has_blob(d.digest())).cloned().collect();
    download_blobs(&rt, client, &repo, store, missing, progress)?;
    // Layers are checked against their diff IDs whenever they are extracted (snapshots and
    // unpack hash the uncompressed stream); here only their number must agree.
    let config: ImageConfiguration = store.read_json(parsed.config().digest(), "image config")?;
    if config.rootfs().diff_ids().len() != parsed.layers().len() {
        bail!(
            "the image config lists {} layers but the manifest has {}",
            config.rootfs().diff_ids().len(),
            parsed.layers().len()
        );
    }
    for doc in std::iter::once(&manifest).chain(index.as_ref()) {
        let stored = store.put_bytes(&doc.bytes)?;
        if stored.to_string() != doc.digest {
            bail!("the stored manifest's digest {stored} differs from {}", doc.digest);
        }
    }
    let pulled: Vec<String> = blobs.iter().map(|d| d.digest().to_string()).collect();
    store.record_blob_sources(&repo.registry, &repo.name, &pulled)?;
    let media = MediaType::from(manifest.media_type.as_str());
    let digest: Digest = manifest.digest.parse().context("manifest digest")?;
    let desc = Descriptor::new(media, manifest.bytes.len() as u64, digest);
    let names: Vec<Reference> =
        if reference.digest().is_some() { Vec::new() } else { vec![reference.clone()] };
    store.add_image(&desc, &names)?;
    let named = index.as_ref().map_or(&manifest.digest, |i| &i.digest).clone();
    Ok((parsed.config().digest().clone(), named))
}

/// Downloads `blobs` into the store, each in its own task (so hashing and writing run on
/// every core), at most the client's concurrency at once.
fn download_blobs(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    repo: &Repository,
    store: &Store,
    blobs: Vec<Descriptor>,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    rt.block_on(async {
        stream::iter(blobs)
            .map(|d| {
                let (client, repo, store, progress) =
                    (client.clone(), repo.clone(), store.clone(), Arc::clone(&progress));
                tokio::spawn(async move {
                    // The client hashes every byte it hands over; the store need not again.
                    let mut writer = store.verified_blob_writer()?;
                    client
                        .pull_blob(
                            &repo,
                            d.digest().as_ref(),
                            d.size(),
                            &mut writer,
                            progress.as_ref(),
                        )
                        .await?;
                    writer.commit_verified(d.digest())?;
                    Ok::<_, anyhow::Error>(())
                })
            })
            .buffer_unordered(client.options().concurrency.max(1))
            .map(|joined| joined.map_err(anyhow::Error::from).and_then(|r| r))
            .try_collect::<Vec<_>>()
            .await
    })?;
    Ok(())
}

/// Downloads the manifest `reference` names and every blob it refers to into the store,
/// without naming anything (for a shared build cache). Returns the manifest.
pub fn pull_blobs(
    store: &Store,
    reference: &Reference,
    registry: &RegistryArgs,
) -> Result<ImageManifest> {
    let client = client(registry, docker_config()?)?;
    let repo = Repository::new(reference.domain(), reference.path());
    let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest").to_string();
    let rt = runtime()?;
    let _in_use = store.in_use()?;
    let pulled = rt.block_on(client.pull_manifest(&repo, &tag_or_digest))?;
    let manifest: ImageManifest =
        serde_json::from_slice(&pulled.bytes).context("reading the cache manifest")?;
    let progress: Arc<dyn Progress> = Arc::new(Lines { quiet: true, verb: "Pulling" });
    let missing: Vec<Descriptor> = std::iter::once(manifest.config().clone())
        .chain(manifest.layers().iter().cloned())
        .filter(|d| !store.has_blob(d.digest()))
        .collect();
    download_blobs(&rt, &client, &repo, store, missing, progress)?;
    Ok(manifest)
}

/// The builder's way to the network: base images through the registry client, ADD's
/// URLs through a plain HTTP client.
#[derive(Debug)]
pub struct NetworkSource {
    registry: RegistryArgs,
    output: PullOutput,
}

impl NetworkSource {
    /// A source with these registry options, showing pulls as `output` says.
    pub fn new(registry: RegistryArgs, output: PullOutput) -> Self {
        NetworkSource { registry, output }
    }
}

fn builder_error(e: anyhow::Error) -> rbuild_builder::Error {
    rbuild_builder::Error::Build(format!("{e:#}"))
}

impl rbuild_builder::engine::ImageSource for NetworkSource {
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &rbuild_builder::engine::Platform,
    ) -> rbuild_builder::Result<rbuild_builder::store::Image> {
        let wanted = (platform.os.clone(), platform.architecture.clone(), platform.variant.clone());
        let client = client(&self.registry, docker_config().map_err(builder_error)?)
            .map_err(builder_error)?;
        let (config, _) = pull_image(store, &client, reference, &wanted, self.output)
            .map_err(|e| builder_error(e.context(format!("pulling {}", reference.familiar()))))?;
        store.resolve(config.as_ref())
    }

    fn download(&self, url: &str, dest: &std::path::Path) -> rbuild_builder::Result<Option<i64>> {
        let rt = runtime().map_err(builder_error)?;
        rt.block_on(async {
            let response = reqwest::Client::new()
                .get(url)
                .timeout(std::time::Duration::from_secs(600))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| rbuild_builder::Error::Build(format!("{e}")))?;
            let modified = response
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            let mut file =
                std::fs::File::create(dest).map_err(rbuild_builder::Error::io("creating", dest))?;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| rbuild_builder::Error::Build(format!("{e}")))?;
                std::io::Write::write_all(&mut file, &chunk)
                    .map_err(rbuild_builder::Error::io("writing", dest))?;
            }
            Ok(modified)
        })
    }
}

/// `rbuild push`.
pub fn push(store: &Store, args: PushArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let image = store.resolve(&args.image)?;
    let dest = match &args.destination {
        Some(d) => Reference::parse(d)?,
        None => match Reference::parse(&args.image) {
            Ok(r) if image.entry.names.contains(&r) => r,
            _ => image.entry.names.first().cloned().ok_or_else(|| {
                anyhow::anyhow!("the image has no name to push to: give a destination")
            })?,
        },
    };
    let digest = push_image(store, &image, &dest, &args.registry, args.quiet)?;
    if args.quiet {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes `image` from the store to `dest` (which needs a tag), printing Docker's lines
/// unless `quiet`. Returns the pushed manifest's digest.
pub fn push_image(
    store: &Store,
    image: &rbuild_builder::store::Image,
    dest: &Reference,
    registry: &RegistryArgs,
    quiet: bool,
) -> Result<String> {
    let blobs: Vec<Descriptor> = image
        .manifest
        .layers()
        .iter()
        .cloned()
        .chain(std::iter::once(image.manifest.config().clone()))
        .collect();
    push_manifest(store, &image.entry.manifest, &blobs, dest, registry, quiet)
}

/// Pushes the blobs of the store's manifest `manifest_desc` (`blobs`: its config and
/// layers), then the manifest, to `dest` (which needs a tag). Returns the manifest's
/// digest.
pub fn push_manifest(
    store: &Store,
    manifest_desc: &Descriptor,
    blobs: &[Descriptor],
    dest: &Reference,
    registry: &RegistryArgs,
    quiet: bool,
) -> Result<String> {
    let Some(tag) = dest.tag().map(str::to_string) else {
        bail!("the destination needs a tag: {dest}")
    };
    let client = client(registry, docker_config()?)?;
    let repo = Repository::new(dest.domain(), dest.path());
    if !quiet {
        println!("The push refers to repository [{}]", dest.repository());
    }
    let progress: Arc<dyn Progress> = Arc::from(progress(quiet, "Pushing"));
    let blobs: Vec<Descriptor> = blobs.to_vec();
    let rt = runtime()?;
    rt.block_on(async {
        stream::iter(blobs.clone())
            .map(|d| {
                let (client, repo, progress) =
                    (client.clone(), repo.clone(), Arc::clone(&progress));
                let path = store.blob_path(d.digest());
                let sources = store.blob_sources(&repo.registry, d.digest().as_ref());
                tokio::spawn(async move {
                    client
                        .push_blob_from(
                            &repo,
                            d.digest().as_ref(),
                            d.size(),
                            &path,
                            &sources,
                            progress.as_ref(),
                        )
                        .await
                })
            })
            .buffer_unordered(client.options().concurrency.max(1))
            .map(|joined| {
                joined.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from))
            })
            .try_collect::<Vec<_>>()
            .await
    })?;
    let pushed: Vec<String> = blobs.iter().map(|d| d.digest().to_string()).collect();
    store.record_blob_sources(&repo.registry, &repo.name, &pushed)?;
    let manifest = store.read_blob(manifest_desc.digest())?;
    let media = manifest_desc.media_type().to_string();
    let digest = rt.block_on(client.push_manifest(&repo, &tag, &manifest, &media))?;
    if !quiet {
        println!("{tag}: digest: {digest} size: {}", manifest.len());
    }
    Ok(digest.to_string())
}

/// Credentials given on the command line, for checking them before they are saved.
#[derive(Debug)]
struct Given(String, Credentials);

impl CredentialSource for Given {
    fn credentials(&self, registry: &str) -> Option<Credentials> {
        (registry == self.0).then(|| self.1.clone())
    }
}

fn registry_host(arg: Option<&str>) -> String {
    let r = arg
        .unwrap_or("docker.io")
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        rbuild_registry_client::DOCKER_HUB_REGISTRY.to_string()
    } else {
        r.to_string()
    }
}

/// `rbuild login`.
pub fn login(args: LoginArgs) -> Result<ExitCode> {
    let registry = registry_host(args.registry.as_deref());
    let Some(username) = args.username.clone() else { bail!("give a user name with -u USER") };
    if !args.password_stdin {
        bail!("give the password on standard input with --password-stdin (it is never taken as an argument)");
    }
    if std::io::stdin().is_terminal() {
        bail!("--password-stdin: pipe the password in, for example: printf %s \"$PASS\" | rbuild login -u USER --password-stdin");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    let creds = Credentials::Basic { username: username.clone(), password: password.clone() };
    let client = client(&args.options, Arc::new(Given(registry.clone(), creds)))?;
    runtime()?.block_on(client.check(&registry)).context("logging in")?;
    let path = DockerConfig::default_path();
    let mut config =
        DockerConfig::load(&path).with_context(|| format!("reading {}", path.display()))?;
    config.set(&registry, &username, &password);
    config.save(&path).with_context(|| format!("writing {}", path.display()))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// `rbuild logout`.
pub fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let registry = registry_host(args.registry.as_deref());
    let path = DockerConfig::default_path();
    let mut config =
        DockerConfig::load(&path).with_context(|| format!("reading {}", path.display()))?;
    if config.remove(&registry) {
        config.save(&path).with_context(|| format!("writing {}", path.display()))?;
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
