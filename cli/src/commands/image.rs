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
use rbuild_builder::workflow::PruneOptions;
use serde_json::{json, Value};

use crate::human;

/// Output format of the listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// An aligned table.
    Table,
    /// JSON, one array.
    Json,
}

/// Arguments of `rbuild images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
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
}

/// Arguments of `rbuild history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The image: name, ID or digest.
    image: String,
    /// Do not truncate the CREATED BY column or IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
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

/// `rbuild images`.
pub fn images(store: &Store, args: ImagesArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for entry in store.images()? {
        let image = store.image(&entry)?;
        let id = short_id(&image, args.no_trunc);
        let names: Vec<(String, String)> = if entry.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            entry
                .names
                .iter()
                .map(|n| (n.familiar_repository(), n.tag().unwrap_or("<none>").to_string()))
                .collect()
        };
        for (repo, tag) in names {
            json_rows.push(json!({
                "Repository": repo, "Tag": tag, "ID": image.id().to_string(),
                "Digest": entry.manifest.digest().to_string(),
                "CreatedAt": created(&image), "Size": image.size(),
            }));
            rows.push(vec![
                repo,
                tag,
                id.clone(),
                human::ago(created(&image)),
                human::size(image.size()),
            ]);
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for row in rows {
            if !seen.contains(&row[2]) {
                writeln!(out, "{}", row[2])?;
                seen.push(row[2].clone());
            }
        }
    } else if args.format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json_rows)?)?;
    } else {
        out.write_all(
            human::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows).as_bytes(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild inspect`.
pub fn inspect(store: &Store, args: InspectArgs) -> Result<ExitCode> {
    let _in_use = store.in_use()?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match store.resolve(name) {
            Ok(image) => out.push(store.inspect_view(&image)?),
            // As `docker inspect`: a container of that name or ID when no image has it.
            Err(e) => match rbuild_builder::container::find(store, name) {
                Ok(rec) => out.push(rbuild_builder::container::control::inspect_view(store, &rec)),
                Err(_) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            },
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
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
    let ids: Vec<String> = (0..rows.len())
        .map(|i| if i == 0 { top.clone() } else { "<missing>".to_string() })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.format == ListFormat::Json {
        let v: Vec<Value> = rows
            .iter()
            .zip(&ids)
            .map(|(r, id)| {
                let mut v = json!({"ID": id, "CreatedAt": r.created, "CreatedBy": r.created_by,
                    "Size": r.size, "Comment": r.comment});
                if let Some(s) = &r.step {
                    v["Step"] = json!(s.number);
                    v["CacheKey"] = json!(s.cache_key.as_ref().map(|k| k.0.clone()));
                    v["Cached"] = json!(s.cached);
                    v["DurationSeconds"] = json!(s.duration_ms as f64 / 1000.0);
                }
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .zip(ids)
        .map(|(r, id)| {
            let by = r.created_by.replace('\n', " ");
            let by = if !args.no_trunc && by.chars().count() > 45 {
                by.chars().take(44).collect::<String>() + "…"
            } else {
                by
            };
            let mut row = vec![id, human::ago(r.created.as_deref()), by, human::size(r.size)];
            if built_here {
                let (step, cache, time) = match &r.step {
                    Some(s) if s.cache_key.is_some() => (
                        s.number.to_string(),
                        if s.cached { "cached" } else { "ran" }.to_string(),
                        format!("{:.2}s", s.duration_ms as f64 / 1000.0),
                    ),
                    Some(s) => (s.number.to_string(), String::new(), String::new()),
                    None => Default::default(),
                };
                let key = r
                    .step
                    .as_ref()
                    .and_then(|s| s.cache_key.as_ref())
                    .map(|k| if args.no_trunc { k.0.clone() } else { k.short().to_string() })
                    .unwrap_or_default();
                row.extend([step, cache, time, key]);
            }
            row.push(r.comment);
            row
        })
        .collect();
    let header: &[&str] = if built_here {
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "STEP", "CACHE", "TIME", "CACHE KEY", "COMMENT"]
    } else {
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    };
    out.write_all(human::table(header, &table).as_bytes())?;
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
                eprintln!("error: {name}: {e}");
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
    let options = PruneOptions {
        build_cache: args.build_cache,
        cache_mounts: args.cache_mounts,
        all_snapshots: args.all,
    };
    let report = rbuild_builder::workflow::prune(store, options)?;
    for d in &report.deleted {
        println!("Deleted: {d}");
    }
    println!(
        "Deleted {} untagged images; total reclaimed space: {}",
        report.deleted.len(),
        human::size(report.freed)
    );
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
        vec!["Unused blobs".to_string(), human::size(get("unused"))],
        // The build cache arrives with `rbuild build`.
        vec!["Build cache".to_string(), human::size(0)],
    ];
    print!("{}", human::table(&["TYPE", "SIZE"], &rows));
    Ok(ExitCode::SUCCESS)
}
