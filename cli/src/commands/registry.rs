//! The registry commands: pull, push, login, logout.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use rbuild_builder::engine::Platform;
use rbuild_builder::reference::Reference;
use rbuild_builder::remote;
use rbuild_builder::store::Store;
use rbuild_registry_client::{Client, CredentialSource, Credentials, DockerConfig};

use crate::progress::{self, BuildOutput, ProgressMode};
use crate::shared_flags::RegistryArgs;

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
    /// Pull every tag of the repository (the reference then names no tag).
    #[arg(short = 'a', long)]
    all_tags: bool,
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
    /// Push every local tag of the repository IMAGE names (which then names no tag).
    #[arg(short = 'a', long)]
    all_tags: bool,
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

/// The reporter of a transfer command: nothing with `quiet`, else bars on a terminal
/// and Docker's lines elsewhere.
fn reporter(quiet: bool) -> Box<dyn BuildOutput> {
    progress::reporter(if quiet { ProgressMode::Quiet } else { ProgressMode::Auto }, false)
}

/// `rbuild pull`.
pub fn pull(store: &Store, args: PullArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let client = remote::client(args.registry.options())?;
    let references = if args.all_tags {
        if args.reference.contains('@')
            || args.reference.rsplit('/').next().is_some_and(|l| l.contains(':'))
        {
            bail!("pull --all-tags takes a repository without a tag or digest");
        }
        let tags = remote::list_tags(&client, &reference)?;
        if tags.is_empty() {
            bail!("the repository {} has no tags", reference.familiar_repository());
        }
        tags.iter()
            .map(|t| Reference::parse(&format!("{}:{t}", reference.repository())))
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else {
        vec![reference]
    };
    for reference in &references {
        let pulled = remote::pull_image(
            store,
            &client,
            reference,
            &platform,
            reporter(args.quiet).as_ref(),
        )?;
        if args.quiet {
            println!("{}", pulled.image_id);
        } else {
            println!("Digest: {}", pulled.digest);
            println!("Status: Downloaded image for {}", reference.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild push`.
pub fn push(store: &Store, args: PushArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let client = remote::client(args.registry.options())?;
    if args.all_tags {
        if args.destination.is_some() {
            bail!("push --all-tags takes no destination: each tag goes to its own name");
        }
        let wanted = Reference::parse(&args.image)?;
        if args.image.rsplit('/').next().is_some_and(|l| l.contains(':'))
            || args.image.contains('@')
        {
            bail!("push --all-tags takes a repository without a tag or digest");
        }
        let mut pushed = 0;
        for entry in store.images()? {
            for name in entry.names.iter().filter(|n| n.repository() == wanted.repository()) {
                let image = store.image(&entry)?;
                let digest = remote::push_image(
                    store,
                    &client,
                    &image,
                    name,
                    reporter(args.quiet).as_ref(),
                )?;
                if args.quiet {
                    println!("{digest}");
                }
                pushed += 1;
            }
        }
        if pushed == 0 {
            bail!("no local image is named {}", wanted.familiar_repository());
        }
        return Ok(ExitCode::SUCCESS);
    }
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
    let digest = remote::push_image(store, &client, &image, &dest, reporter(args.quiet).as_ref())?;
    if args.quiet {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
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
    let client = Client::new(args.options.options(), Arc::new(Given(registry.clone(), creds)))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(client.check(&registry))
        .context("logging in")?;
    let path = DockerConfig::default_path();
    let mut config =
        DockerConfig::load(&path).with_context(|| format!("reading {}", path.display()))?;
    config.login(&registry, &username, &password).context("saving the credentials")?;
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
    if config.logout(&registry).context("removing the credentials")? {
        config.save(&path).with_context(|| format!("writing {}", path.display()))?;
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
