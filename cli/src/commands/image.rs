//! The image commands: images, inspect, history, tag, rmi, save, load, prune, du.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rbuild_builder::archive::{self, ArchiveFormat};
use rbuild_builder::reference::Reference;
use rbuild_builder::store::{Image, Store};
use rbuild_builder::workflow::{ImageFilter, PruneOptions};
use serde_json::{json, Value};

use crate::{human, template};

/// Arguments of `rbuild images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Output format: `table` (the default), `json` (one object per line) or a Go template
    /// over the fields ID, Repository, Tag, Digest, CreatedAt, CreatedSince, Size,
    /// VirtualSize, SharedSize, UniqueSize, Containers (`table` before a template aligns
    /// its tab-separated columns under a header).
    #[arg(long)]
    format: Option<String>,
    /// Show only the images that pass a filter (repeatable; all must pass):
    /// `dangling=true|false`, `label=KEY` or `label=KEY=VALUE`, `before=IMAGE`,
    /// `since=IMAGE`, `reference=PATTERN` (`*` and `?` wildcards, as `busy*:1.*`).
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Show the manifest digest column.
    #[arg(long)]
    digests: bool,
    /// Accepted for docker's scripts: rbuild keeps no intermediate images, so every image
    /// is always listed.
    #[arg(short, long)]
    all: bool,
    /// Show full image IDs.
    #[arg(long)]
    no_trunc: bool,
}

/// Arguments of `rbuild inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images (names, IDs or digests) or containers (names or IDs).
    #[arg(required = true)]
    images: Vec<String>,
    /// Print each object through a Go template instead of the JSON array, as
    /// `{{.Id}}`, `{{.Config.Env}}`, `{{json .Config}}`, `{{index .RepoTags 0}}`
    /// (`json`: each object as one line of JSON).
    #[arg(short, long)]
    format: Option<String>,
    /// Look only for objects of this kind.
    #[arg(long = "type", value_enum)]
    kind: Option<InspectKind>,
}

/// What `rbuild inspect --type` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectKind {
    /// Images.
    Image,
    /// Containers.
    Container,
}

/// Arguments of `rbuild history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The image: name, ID or digest.
    image: String,
    /// Do not truncate the CREATED BY column or IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Output format: `table` (the default), `json` (one object per line) or a Go template
    /// over the fields ID, CreatedAt, CreatedSince, CreatedBy, Size, Comment and, for images
    /// built here, Step, Cache (`cached` or `ran`), Cached, Time, DurationSeconds, CacheKey,
    /// CacheMiss (why a step that ran missed the cache).
    #[arg(long)]
    format: Option<String>,
    /// Print sizes in bytes rather than docker's 4.26MB (`--human=false` as docker spells it).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    human: bool,
    /// Only show the layers' IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Print the full log kept for build step STEP (its number in the build output) of
    /// an image built here, instead of the history.
    #[arg(long, value_name = "STEP")]
    logs: Option<usize>,
}

/// Arguments of `rbuild tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to name: name, ID or digest.
    source: String,
    /// The new name, `[registry/]repository[:tag]`.
    target: String,
}

/// Arguments of `rbuild rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images: names, IDs or digests. A name is removed; the image goes with its last name.
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image given by ID even when several names refer to it, or when a
    /// container was made from it (the container keeps its layers).
    #[arg(short, long)]
    force: bool,
}

/// Archive formats of `rbuild save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaveFormat {
    /// The layout `docker save` writes (also readable as an OCI layout).
    Docker,
    /// An OCI image layout.
    Oci,
}

/// Arguments of `rbuild save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Images to save: names, IDs or digests.
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    format: SaveFormat,
}

/// Arguments of `rbuild load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this file (a tar archive, plain or gzip) instead of standard input.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

/// Arguments of `rbuild prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every extracted layer snapshot, not only those no image uses (they are made
    /// again when needed).
    #[arg(short, long)]
    all: bool,
    /// Also forget the build cache (cache records, kept step logs, context hashes).
    #[arg(long)]
    build_cache: bool,
    /// Also remove the directories of `RUN --mount=type=cache`.
    #[arg(long)]
    cache_mounts: bool,
    #[command(flatten)]
    confirm: PruneConfirm,
}

/// What every prune command takes: `-f`, and `--filter` over the images it would remove.
#[derive(Debug, Args)]
pub struct PruneConfirm {
    /// Do not ask first (rbuild asks only when standard input is a terminal).
    #[arg(short, long)]
    force: bool,
    /// Only images that pass (repeatable): `until=TIME` (made before it: RFC 3339, Unix
    /// seconds, or a duration back from now like `24h`), `label=KEY[=VALUE]`,
    /// `label!=KEY[=VALUE]`.
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

impl PruneConfirm {
    fn filter(&self) -> Result<ImageFilter> {
        let mut f = ImageFilter::default();
        for text in &self.filters {
            let label = |v: &str| match v.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (v.to_string(), None),
            };
            if let Some(v) = text.strip_prefix("until=") {
                let t = human::time_arg(v).with_context(|| format!("bad filter {text:?}: until takes RFC 3339, Unix seconds or a duration such as 24h"))?;
                f.until = Some(t);
            } else if let Some(v) = text.strip_prefix("label!=") {
                f.not_labels.push(label(v));
            } else if let Some(v) = text.strip_prefix("label=") {
                f.labels.push(label(v));
            } else {
                bail!("bad filter {text:?}: prune takes until=, label= and label!=");
            }
        }
        Ok(f)
    }

    /// Asks `question` on a terminal unless `-f`; whether to go on.
    fn confirmed(&self, warning: &str) -> Result<bool> {
        if self.force || !std::io::stdin().is_terminal() {
            return Ok(true);
        }
        eprint!("WARNING! This will remove:\n{warning}\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
    }
}

/// `rbuild system`: docker's names for store-wide commands.
#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show the space the store uses (the same as `rbuild du`).
    Df,
    /// Remove stopped containers, untagged images and the build cache (as `docker system
    /// prune`); `-a` also images no container uses, `--volumes` also unused volumes.
    Prune(SystemPruneArgs),
}

/// Arguments of `rbuild system prune`.
#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Also remove images with names that no container uses.
    #[arg(short, long)]
    all: bool,
    /// Also remove volumes no container uses.
    #[arg(long)]
    volumes: bool,
    #[command(flatten)]
    confirm: PruneConfirm,
}

/// `rbuild builder`: docker's name for the build cache.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Forget the build cache (cache records, step logs); `-a` also the directories of
    /// `RUN --mount=type=cache`.
    Prune(BuilderPruneArgs),
}

/// Arguments of `rbuild builder prune`.
#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Also remove the cache mounts' directories.
    #[arg(short, long)]
    all: bool,
    /// Do not ask first (rbuild asks only when standard input is a terminal).
    #[arg(short, long)]
    force: bool,
}

/// Arguments of `rbuild fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Also compare every layer snapshot with its layer extracted again from its blob,
    /// file contents included (slower; without it, a snapshot is compared with the record
    /// of its files made when it was extracted).
    #[arg(long)]
    full: bool,
    /// Mend what can be mended: remove corrupt blobs, extract broken snapshots again, and
    /// remove images (and their names) whose blobs are gone, since they cannot be made
    /// whole here (pull or build them again).
    #[arg(long)]
    repair: bool,
}

fn short_id(image: &Image, no_trunc: bool) -> String {
    let hex = image.id().digest();
    if no_trunc {
        image.id().to_string()
    } else {
        hex[..12.min(hex.len())].to_string()
    }
}

fn created(image: &Image) -> Option<&str> {
    image.config.created().as_deref()
}

/// A filter of `rbuild images --filter`.
enum ListFilter {
    Dangling(bool),
    Label(String, Option<String>),
    Before(i64),
    Since(i64),
    Reference(rbuild_parser::dockerignore::Glob),
}

impl ListFilter {
    fn parse(store: &Store, text: &str) -> Result<ListFilter> {
        let (key, value) = text
            .split_once('=')
            .with_context(|| format!("bad filter {text:?}: expected KEY=VALUE"))?;
        let time_of = |name: &str| -> Result<i64> {
            let image = store.resolve(name)?;
            created(&image)
                .and_then(human::parse_rfc3339)
                .with_context(|| format!("image {name} has no creation time"))
        };
        Ok(match key {
            "dangling" => match value {
                "true" | "1" => ListFilter::Dangling(true),
                "false" | "0" => ListFilter::Dangling(false),
                _ => bail!("bad filter {text:?}: dangling is true or false"),
            },
            "label" => match value.split_once('=') {
                Some((k, v)) => ListFilter::Label(k.into(), Some(v.into())),
                None => ListFilter::Label(value.into(), None),
            },
            "before" => ListFilter::Before(time_of(value)?),
            "since" => ListFilter::Since(time_of(value)?),
            "reference" => ListFilter::Reference(
                rbuild_parser::dockerignore::Glob::new(value)
                    .map_err(|e| anyhow::anyhow!("bad reference pattern {value:?}: {e}"))?,
            ),
            _ => bail!(
                "unknown filter {key:?} (images takes dangling, label, before, since, reference)"
            ),
        })
    }

    /// Whether an image passes; `name` is one of its (repository, tag) rows.
    fn passes(&self, image: &Image, name: Option<&Reference>) -> bool {
        let time = created(image).and_then(human::parse_rfc3339);
        match self {
            ListFilter::Dangling(d) => image.entry.names.is_empty() == *d,
            ListFilter::Label(k, v) => {
                let labels = image.config.config().as_ref().and_then(|c| c.labels().clone());
                labels
                    .and_then(|l| l.get(k).cloned())
                    .is_some_and(|got| v.is_none() || v.as_ref() == Some(&got))
            }
            ListFilter::Before(t) => time.is_some_and(|c| c < *t),
            ListFilter::Since(t) => time.is_some_and(|c| c > *t),
            ListFilter::Reference(glob) => name.is_some_and(|n| {
                let repo = n.familiar_repository();
                let full = format!("{repo}:{}", n.tag().unwrap_or("latest"));
                glob.matches(&repo) || glob.matches(&full)
            }),
        }
    }
}

/// Docker's local time form, in UTC: `2024-05-01 12:00:00 +0000 UTC`.
fn docker_time(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(human::parse_rfc3339) {
        Some(t) => human::utc(t) + " +0000 UTC",
        None => String::new(),
    }
}

/// `rbuild images`.
pub fn images(store: &Store, args: ImagesArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let filters: Vec<ListFilter> =
        args.filters.iter().map(|f| ListFilter::parse(store, f)).collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for entry in store.images()? {
        let image = store.image(&entry)?;
        // Reads each layer's trailer or header: once per image, not per name.
        let size = human::size(store.image_size(&image));
        let names: Vec<Option<&Reference>> = if entry.names.is_empty() {
            vec![None]
        } else {
            entry.names.iter().map(Some).collect()
        };
        for name in names {
            if !filters.iter().all(|f| f.passes(&image, name)) {
                continue;
            }
            let (repo, tag) = match name {
                Some(n) => (n.familiar_repository(), n.tag().unwrap_or("<none>").to_string()),
                None => ("<none>".into(), "<none>".into()),
            };
            rows.push(json!({
                "Containers": "N/A",
                "CreatedAt": docker_time(created(&image)),
                "CreatedSince": human::ago(created(&image)),
                "Digest": entry.manifest.digest().to_string(),
                "ID": short_id(&image, args.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            }));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for row in rows {
            let id = row["ID"].as_str().unwrap_or_default().to_string();
            if !seen.contains(&id) {
                writeln!(out, "{id}")?;
                seen.push(id);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let columns: &[&str] = if args.digests {
        &["Repository", "Tag", "Digest", "ID", "CreatedSince", "Size"]
    } else {
        &["Repository", "Tag", "ID", "CreatedSince", "Size"]
    };
    let titles = [
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("Containers", "CONTAINERS"),
    ];
    let columns: Vec<String> = columns.iter().map(|c| format!("{{{{.{c}}}}}")).collect();
    let text = template::listing(args.format.as_deref(), &rows, &titles, &columns.join("\t"))?;
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `rbuild inspect`.
pub fn inspect(store: &Store, args: InspectArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let mut out = Vec::new();
    let mut failed = false;
    let template = match args.format.as_deref() {
        Some("json") => Some(template::Template::parse("{{json .}}")?),
        Some(f) => Some(template::Template::parse(f)?),
        None => None,
    };
    for name in &args.images {
        let image = match args.kind {
            Some(InspectKind::Container) => None,
            _ => Some(store.resolve(name)),
        };
        let view = match image {
            Some(Ok(image)) => Ok(store.inspect_view(&image)?),
            // As `docker inspect`: a container of that name or ID when no image has it.
            Some(Err(e)) if args.kind == Some(InspectKind::Image) => Err(e.to_string()),
            other => match rbuild_builder::container::find(store, name) {
                Ok(rec) => Ok(rbuild_builder::container::control::inspect_view(store, &rec)),
                Err(e) => Err(match other {
                    Some(Err(image_error)) => image_error.to_string(),
                    _ => e.to_string(),
                }),
            },
        };
        match view {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("{} {e}", human::error_tag());
                failed = true;
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    match template {
        Some(t) => {
            for v in &out {
                writeln!(stdout, "{}", t.execute(v)?)?;
            }
        }
        None => writeln!(stdout, "{}", serde_json::to_string_pretty(&out)?)?,
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `rbuild history`.
pub fn history(store: &Store, args: HistoryArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let image = store.resolve(&args.image)?;
    if let Some(number) = args.logs {
        let mut log = store.open_step_log(&image, &args.image, number)?;
        std::io::copy(&mut log, &mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let (rows, built_here) = store.history(&image);
    let top = short_id(&image, args.no_trunc);
    let mut out = std::io::stdout().lock();
    let rows: Vec<Value> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let by = r.created_by.replace('\n', " ");
            let by = if !args.no_trunc && by.chars().count() > 45 {
                by.chars().take(44).collect::<String>() + "…"
            } else {
                by
            };
            let mut v = json!({
                "ID": if i == 0 { top.clone() } else { "<missing>".to_string() },
                "CreatedAt": r.created.clone().unwrap_or_default(),
                "CreatedSince": human::ago(r.created.as_deref()),
                "CreatedBy": by,
                "Size": if args.human { human::size(r.size) } else { r.size.to_string() },
                "Comment": r.comment,
                "Step": "", "Cache": "", "Time": "", "CacheKey": "", "CacheMiss": "",
            });
            if let Some(s) = &r.step {
                v["Step"] = json!(s.number);
                if let Some(key) = &s.cache_key {
                    v["CacheKey"] = json!(key.0);
                    v["Cache"] = json!(if s.cached { "cached" } else { "ran" });
                    v["Time"] = json!(format!("{:.2}s", s.duration_ms as f64 / 1000.0));
                } else {
                    v["CacheKey"] = Value::Null;
                }
                v["Cached"] = json!(s.cached);
                v["CacheMiss"] = json!(s.miss.clone().unwrap_or_default());
                v["DurationSeconds"] = json!(s.duration_ms as f64 / 1000.0);
            }
            v
        })
        .collect();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let key = if args.no_trunc { "{{.CacheKey}}" } else { "{{truncate .CacheKey 12}}" };
    let default = if built_here {
        format!("{{{{.ID}}}}\t{{{{.CreatedSince}}}}\t{{{{.CreatedBy}}}}\t{{{{.Size}}}}\t{{{{.Step}}}}\t{{{{.Cache}}}}\t{{{{.Time}}}}\t{key}\t{{{{.CacheMiss}}}}\t{{{{.Comment}}}}")
    } else {
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".to_string()
    };
    let titles = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
        ("Step", "STEP"),
        ("Cache", "CACHE"),
        ("Cached", "CACHED"),
        ("Time", "TIME"),
        ("DurationSeconds", "DURATION SECONDS"),
        ("CacheKey", "CACHE KEY"),
        ("CacheMiss", "WHY IT RAN"),
    ];
    let text = template::listing(args.format.as_deref(), &rows, &titles, &default)?;
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `rbuild tag`.
pub fn tag(store: &Store, args: TagArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let target = Reference::parse(&args.target)?;
    store.tag(&args.source, &target)?;
    Ok(ExitCode::SUCCESS)
}

/// `rbuild rmi`.
pub fn rmi(store: &Store, args: RmiArgs) -> Result<ExitCode> {
    let mut failed = false;
    let containers = rbuild_builder::container::list(store)?;
    for name in &args.images {
        // As Docker: an image a container was made from stays unless forced (the
        // container keeps its layers either way).
        if !args.force {
            if let Ok(image) = store.resolve(name) {
                let id = image.id().to_string();
                if let Some(c) = containers.iter().find(|c| c.image == id) {
                    eprintln!(
                        "error: {name}: container {} ({}) uses this image: remove the container first, or use -f",
                        c.name,
                        &c.id[..12]
                    );
                    failed = true;
                    continue;
                }
            }
        }
        match store.remove(name, args.force) {
            Ok(report) => {
                for n in report.untagged {
                    println!("Untagged: {}", n.familiar());
                }
                for d in report.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => {
                eprintln!("{} {name}: {e}", human::error_tag());
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `rbuild save`.
pub fn save(store: &Store, args: SaveArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let mut images = Vec::new();
    for name in &args.images {
        let image = store.resolve(name)?;
        // Save under the name given when it is one; an ID saves every name the image has.
        let names = match Reference::parse(name) {
            Ok(r) if image.entry.names.contains(&r) => vec![r],
            _ => image.entry.names.clone(),
        };
        images.push((image, names));
    }
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    write_archive(store, &images, format, args.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes images as an archive to the file `output`, or to standard output when `None`
/// (never a terminal).
fn write_archive(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    format: ArchiveFormat,
    output: Option<&std::path::Path>,
) -> Result<()> {
    let stdout = std::io::stdout();
    if output.is_none() && stdout.is_terminal() {
        bail!("refusing to write an archive to a terminal: use a file or redirect the output");
    }
    rbuild_builder::export::write_archive(store, images, format, output, &mut stdout.lock())?;
    Ok(())
}

/// `rbuild load`.
pub fn load(store: &Store, args: LoadArgs) -> Result<ExitCode> {
    let input: Box<dyn Read> = match &args.input {
        Some(path) => {
            Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive given: use -i FILE or pipe one to standard input");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let loaded = archive::load(store, input).context("loading the archive")?;
    if !args.quiet {
        for image in loaded {
            if image.names.is_empty() {
                println!("Loaded image ID: {}", image.id);
            }
            for n in image.names {
                println!("Loaded image: {}", n.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild prune`.
pub fn prune(store: &Store, args: PruneArgs) -> Result<ExitCode> {
    let mut warning = String::from("  - untagged images\n  - blobs no image uses");
    if args.build_cache {
        warning.push_str("\n  - the build cache");
    }
    if args.cache_mounts {
        warning.push_str("\n  - the cache mounts' directories");
    }
    if !args.confirm.confirmed(&warning)? {
        return Ok(ExitCode::SUCCESS);
    }
    let options = PruneOptions {
        build_cache: args.build_cache,
        cache_mounts: args.cache_mounts,
        all_snapshots: args.all,
        filter: args.confirm.filter()?,
        ..Default::default()
    };
    let report = rbuild_builder::workflow::prune(store, options)?;
    for n in &report.untagged {
        println!("Untagged: {}", n.familiar());
    }
    for d in &report.deleted {
        println!("Deleted: {d}");
    }
    println!(
        "Deleted {} untagged image{}; total reclaimed space: {}",
        report.deleted.len(),
        if report.deleted.len() == 1 { "" } else { "s" },
        human::size(report.freed)
    );
    Ok(ExitCode::SUCCESS)
}

/// `rbuild system ...`.
pub fn system(store: &Store, command: SystemCommand) -> Result<ExitCode> {
    let args = match command {
        SystemCommand::Df => return du(store),
        SystemCommand::Prune(args) => args,
    };
    let mut warning =
        String::from("  - all stopped containers\n  - all dangling images\n  - all build cache");
    if args.all {
        warning = warning.replace("all dangling images", "all images without a container");
    }
    if args.volumes {
        warning.push_str("\n  - all volumes not used by a container");
    }
    if !args.confirm.confirmed(&warning)? {
        return Ok(ExitCode::SUCCESS);
    }
    let stopped: Vec<String> = rbuild_builder::container::list(store)?
        .into_iter()
        .filter(|r| !rbuild_builder::container::record::running(store, &r.id))
        .map(|r| r.id)
        .collect();
    if !stopped.is_empty() {
        println!("Deleted Containers:");
        for id in &stopped {
            rbuild_builder::container::control::remove(store, id, false, false)?;
            println!("{id}");
        }
        println!();
    }
    if args.volumes {
        let gone = rbuild_builder::container::volumes::prune(store, true)?;
        if !gone.is_empty() {
            println!("Deleted Volumes:\n{}\n", gone.join("\n"));
        }
    }
    let options = PruneOptions {
        build_cache: true,
        all_images: args.all,
        filter: args.confirm.filter()?,
        ..Default::default()
    };
    let report = rbuild_builder::workflow::prune(store, options)?;
    if !report.deleted.is_empty() {
        println!("Deleted Images:");
        for n in &report.untagged {
            println!("untagged: {}", n.familiar());
        }
        for d in &report.deleted {
            println!("deleted: {d}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human::size(report.freed));
    Ok(ExitCode::SUCCESS)
}

/// `rbuild builder prune`.
pub fn builder(store: &Store, command: BuilderCommand) -> Result<ExitCode> {
    let BuilderCommand::Prune(args) = command;
    let confirm = PruneConfirm { force: args.force, filters: Vec::new() };
    if !confirm.confirmed("  - all build cache")? {
        return Ok(ExitCode::SUCCESS);
    }
    let options = PruneOptions { build_cache: true, cache_mounts: args.all, ..Default::default() };
    let report = rbuild_builder::workflow::prune(store, options)?;
    println!("Total:\t{}", human::size(report.freed));
    Ok(ExitCode::SUCCESS)
}

/// `rbuild fsck`.
pub fn fsck(store: &Store, args: FsckArgs) -> Result<ExitCode> {
    let options = rbuild_builder::store::FsckOptions { full: args.full, repair: args.repair };
    let report = store.fsck(options)?;
    for p in &report.problems {
        match &p.repaired {
            Some(done) => println!("{}: {done}", p.what),
            None => println!("{}", p.what),
        }
    }
    println!(
        "checked {} blobs, {} images, {} snapshots: {}",
        report.blobs,
        report.images,
        report.snapshots,
        if report.problems.is_empty() {
            "no problem".to_string()
        } else if report.sound() {
            format!("{} problems, all mended", report.problems.len())
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    Ok(if report.sound() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `rbuild du`.
pub fn du(store: &Store) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let usage = store.disk_usage()?;
    let get = |k: &str| usage.get(k).copied().unwrap_or(0);
    let rows = vec![
        vec!["Images (blobs)".to_string(), human::size(get("images"))],
        vec!["Layer snapshots".to_string(), human::size(get("snapshots"))],
        vec!["Build cache".to_string(), human::size(get("build cache"))],
        vec!["Unused blobs".to_string(), human::size(get("unused"))],
    ];
    print!("{}", human::table(&["TYPE", "SIZE"], &rows));
    Ok(ExitCode::SUCCESS)
}
