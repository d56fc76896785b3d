//! COPY and ADD (and the directory WORKDIR makes): files placed into a new directory that
//! becomes the layer's snapshot, with Docker's rules for sources and destinations.
//!
//! - A source directory stands for its content; a file is copied into the destination
//!   when that ends with `/` or is a directory already, else becomes the destination.
//! - Several sources (or a wildcard) need a directory destination.
//! - The destination's parents keep the owner and mode they have in the image; new ones
//!   are `root` and 0755. The destination is resolved through the image's symbolic links.
//! - Files from the context belong to root unless `--chown`; files from a stage or image
//!   keep their owners. Modes and modification times are kept; `--chmod` replaces modes.
//! - ADD extracts local tar archives (plain, gzip, bzip2, xz, zstd, recognised by their
//!   first bytes) and downloads http(s) URLs.

use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use filetime::FileTime;
use rbuild_parser::{CopySource, Instruction};
use serde_json::json;

use super::cache::{CacheKey, CacheRecord};
use super::context::{has_wildcards, ContextEntry};
use super::record::StepRecord;
use super::rootfs::RootfsView;
use super::run::reuse;
use super::sources::{
    apply_chmod, archive_kind, fetch_git, file_name_of_url, is_git, is_url, open_archive,
    plain_name, resolve_owner,
};
use super::stage::{FinishedStep, State};
use super::Event;
use crate::error::{Error, Result};
use crate::snapshot::{overlay_changes, ApplyOptions, WhiteoutMode};

/// One thing to place in the layer.
#[derive(Debug)]
struct Item {
    /// Path below the destination ("" for the destination itself).
    dest_rel: PathBuf,
    /// Where its content is on the host.
    host: PathBuf,
    meta: Metadata,
    /// Its context entry, when it comes from the context (for content digests).
    context: Option<ContextEntry>,
    /// ADD: extract this archive into the destination.
    extract: bool,
    /// Inline content (a heredoc, a downloaded file's mode override).
    mode_override: Option<u32>,
    /// Modification time override (downloads).
    mtime_override: Option<i64>,
    /// The content's digest when it is known already (downloads).
    content_digest: Option<String>,
}

impl Item {
    /// A file, directory or link placed as it is.
    fn plain(dest_rel: PathBuf, host: PathBuf, meta: Metadata) -> Item {
        Item {
            dest_rel,
            host,
            meta,
            context: None,
            extract: false,
            mode_override: None,
            mtime_override: None,
            content_digest: None,
        }
    }
}

/// Where sources are read from.
enum Origin {
    Context,
    /// Another stage's or an image's file system, with the key that stands for it.
    View(RootfsView, String),
}

/// How items are placed in the layer directory.
struct PlaceRules<'a> {
    /// `--chown`, resolved.
    owner: Option<(u32, u32)>,
    /// Keep the sources' owners (a stage's or image's files) rather than root's.
    keep_owners: bool,
    /// `--chmod`.
    chmod: Option<&'a str>,
    /// rbuild runs as root (and so can set owners).
    as_root: bool,
}

impl PlaceRules<'_> {
    /// Checks `--chmod` against every item first, so placing cannot fail half way on it.
    fn check(&self, items: &[Item]) -> std::result::Result<(), String> {
        if let Some(spec) = self.chmod {
            for i in items {
                apply_chmod(spec, i.meta.mode(), i.meta.is_dir())?;
            }
        }
        Ok(())
    }

    fn mode(&self, i: &Item) -> u32 {
        let mode = i.mode_override.unwrap_or(i.meta.mode() & 0o7777);
        match self.chmod {
            Some(spec) => apply_chmod(spec, mode, i.meta.is_dir()).unwrap_or(mode),
            None => mode,
        }
    }

    fn owner(&self, i: &Item) -> (u32, u32) {
        match self.owner {
            Some(o) => o,
            None if self.keep_owners => (i.meta.uid(), i.meta.gid()),
            None => (0, 0),
        }
    }

    /// Removes what an earlier item put at `target` when this one cannot go over it.
    fn replace(&self, target: &Path, i: &Item) -> Result<()> {
        if let Ok(old) = fs::symlink_metadata(target) {
            if old.is_dir() && !i.meta.is_dir() {
                fs::remove_dir_all(target).map_err(Error::io("replacing", target))?;
            } else if !old.is_dir() {
                fs::remove_file(target).map_err(Error::io("replacing", target))?;
            }
        }
        Ok(())
    }

    /// Creates one item at `target` with its owner, mode and time (a directory's time is
    /// set later, by `finish_dir`, once its content is in).
    fn place(&self, i: &Item, target: &Path, reporter: &&dyn super::Reporter) -> Result<()> {
        let ft = i.meta.file_type();
        if ft.is_dir() {
            if !target.is_dir() {
                fs::create_dir_all(target).map_err(Error::io("creating", target))?;
            }
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
            }
        }
        if ft.is_symlink() {
            let t =
                fs::read_link(&i.host).map_err(Error::io("reading the link", i.host.clone()))?;
            std::os::unix::fs::symlink(&t, target).map_err(Error::io("creating", target))?;
        } else if ft.is_file() {
            fs::copy(&i.host, target).map_err(Error::io("copying to", target))?;
        } else {
            reporter
                .event(Event::Warning(format!("skipping the special file {}", i.host.display())));
            return Ok(());
        }
        let (uid, gid) = self.owner(i);
        // Files rbuild creates as root are root's already.
        if self.as_root && (uid, gid) != (0, 0) {
            std::os::unix::fs::lchown(target, Some(uid), Some(gid))
                .map_err(Error::io("changing the owner of", target))?;
        }
        if !ft.is_symlink() {
            let mode = self.mode(i);
            // fs::copy kept the source's mode; only a different one needs a chmod.
            if mode != i.meta.mode() & 0o7777 || !self.as_root {
                fs::set_permissions(target, fs::Permissions::from_mode(mode))
                    .map_err(Error::io("setting the mode of", target))?;
            }
        }
        let (secs, nanos) = match i.mtime_override {
            Some(t) => (t, 0),
            None => (i.meta.mtime(), i.meta.mtime_nsec() as u32),
        };
        let t = FileTime::from_unix_time(secs, nanos);
        filetime::set_symlink_file_times(target, t, t)
            .map_err(Error::io("setting the times of", target))
    }

    /// A directory's owner, mode and time, once its content is in.
    fn finish_dir(&self, i: &Item, target: &Path) -> Result<()> {
        let (uid, gid) = self.owner(i);
        if self.as_root && (uid, gid) != (0, 0) {
            std::os::unix::fs::lchown(target, Some(uid), Some(gid))
                .map_err(Error::io("changing the owner of", target))?;
        }
        fs::set_permissions(target, fs::Permissions::from_mode(self.mode(i)))
            .map_err(Error::io("setting the mode of", target))?;
        let t = FileTime::from_unix_time(i.mtime_override.unwrap_or(i.meta.mtime()), 0);
        filetime::set_symlink_file_times(target, t, t)
            .map_err(Error::io("setting the times of", target))
    }
}

/// Runs COPY (or ADD with `add`). Returns whether it came from the cache.
pub(super) fn copy(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    c: &CopySource,
    add: bool,
    number: usize,
) -> Result<bool> {
    let shared = state.shared;
    let verb = if add { "ADD" } else { "COPY" };

    let sources: Vec<String> =
        c.sources.iter().map(|s| state.expand(inst, s)).collect::<Result<_>>()?;
    if c.keep_git_dir && !(add && sources.iter().any(|s| is_git(s))) {
        return Err(state.error(inst, "--keep-git-dir is for ADD of a git repository"));
    }
    let dest_word = state.expand(inst, &c.dest)?;
    let chown = c.chown.as_deref().map(|s| state.expand(inst, s)).transpose()?;
    let chmod = c.chmod.clone();
    if let Some(m) = &chmod {
        apply_chmod(m, 0o644, false).map_err(|e| state.error(inst, &e))?;
    }
    let dest = state.absolute(&dest_word);
    let dest_wants_dir = dest_word.ends_with('/') || dest_word == "." || dest_word.ends_with("/.");
    let view = state.view()?;
    // --link: the layer does not depend on the layers below: the destination is not
    // resolved through them, and new parents are root's 0755 directories.
    let dest_view = if c.link { RootfsView::default() } else { view.clone() };
    let dest_parts = dest_view.resolve(&dest, true)?;
    let dest_is_dir = dest_wants_dir
        || dest_view.entry(&dest_parts).is_some_and(|(_, m)| m.is_dir())
        || c.parents
        || (add && sources.iter().any(|s| is_git(s)));

    let many = sources.len() + c.heredocs.len() > 1
        || sources.iter().any(|s| has_wildcards(s) && !is_url(s));

    let origin = match &c.from {
        None => Origin::Context,
        Some(from) => {
            let from = state.expand(inst, from)?;
            match super::stage_by_ref(&shared.graph, &from) {
                Some(i) => {
                    let done = shared
                        .done
                        .lock()
                        .map_err(|_| Error::Build("a stage thread panicked".into()))?;
                    let o = done
                        .get(&i)
                        .cloned()
                        .ok_or_else(|| Error::Build(format!("stage {from} has not been built")))?;
                    Origin::View(
                        RootfsView::new(o.snapshots.clone()),
                        format!("stage:{}", o.chain.0),
                    )
                }
                None => {
                    let image = copy_from_image(state, &from)?;
                    let snaps = shared.store.snapshots(&image)?;
                    Origin::View(RootfsView::new(snaps), format!("image:{}", image.id()))
                }
            }
        }
    };
    let tmp_downloads = tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(shared.store.tmp_dir())
        .map_err(Error::io("creating a directory in", shared.store.tmp_dir()))?;

    // What goes where.
    let mut items: Vec<Item> = Vec::new();
    let mut url_digests = Vec::new();
    for source in &sources {
        if add && is_git(source) {
            let dir = tmp_downloads.path().join(format!("git-{}", items.len()));
            let (commit, subdir) = fetch_git(source, &dir, c.keep_git_dir)
                .map_err(|e| state.error(inst, &format!("ADD failed: {source}: {e}")))?;
            if let Some(want) = &c.checksum {
                let want = state.expand(inst, want)?;
                if !commit.starts_with(want.trim()) {
                    return Err(state.error(
                        inst,
                        &format!("ADD failed: {source} is at commit {commit}, not {want}"),
                    ));
                }
            }
            url_digests.push((source.clone(), commit));
            let tree = RootfsView::new(vec![dir]);
            let parts = tree.resolve(&subdir, true)?;
            match tree.entry(&parts) {
                Some((_, m)) if m.is_dir() => {}
                _ => {
                    return Err(state.error(
                        inst,
                        &format!(
                            "ADD failed: {source}: {subdir} is not a directory of the repository"
                        ),
                    ))
                }
            }
            for (rel, host, meta) in tree.walk(&parts)? {
                items.push(Item::plain(rel, host, meta));
            }
            continue;
        }
        if add && is_url(source) {
            let name = file_name_of_url(source);
            let dest_rel = if dest_is_dir || many {
                plain_name(&name, "the URL").map_err(|e| state.error(inst, &e))?
            } else {
                PathBuf::new()
            };
            let host = tmp_downloads.path().join(format!("download-{}", items.len()));
            let mtime = shared.source.download(source, &host).map_err(|e| {
                state.error(inst, &format!("{verb} failed: downloading {source}: {e}"))
            })?;
            let meta =
                fs::symlink_metadata(&host).map_err(Error::io("inspecting", host.clone()))?;
            let digest = crate::digest::sha256(
                &fs::read(&host).map_err(Error::io("reading", host.clone()))?,
            );
            if let Some(want) = &c.checksum {
                let want = state.expand(inst, want)?;
                let want = if want.contains(':') { want } else { format!("sha256:{want}") };
                if digest.to_string() != want {
                    return Err(state.error(
                        inst,
                        &format!("ADD failed: {source} has the checksum {digest}, not {want}"),
                    ));
                }
            }
            url_digests.push((source.clone(), digest.to_string()));
            // A download is extracted only when asked (--unpack=true).
            let extract = c.unpack == Some(true) && archive_kind(&host).is_some();
            items.push(Item {
                extract,
                mode_override: Some(0o600),
                mtime_override: mtime,
                content_digest: Some(digest.to_string()),
                ..Item::plain(if extract { PathBuf::new() } else { dest_rel }, host, meta)
            });
            continue;
        }
        if c.checksum.is_some() {
            return Err(state.error(inst, &format!("ADD --checksum is for URLs, not {source:?}")));
        }
        if add && source.contains("://") {
            return Err(state.error(
                inst,
                &format!("ADD of {source:?}: only http and https URLs are supported"),
            ));
        }
        match &origin {
            Origin::Context => {
                let selected = shared.context.select(source)?;
                if selected.is_empty() {
                    let cleaned =
                        rbuild_parser::dockerignore::clean_path(source.trim_start_matches('/'));
                    let why = if shared.context.excluded(&cleaned)
                        && shared.context.host_path(&cleaned).exists()
                    {
                        " (it is excluded by .dockerignore)"
                    } else {
                        ""
                    };
                    return Err(state.error(inst, &format!(
                        "{verb} failed: file not found in build context or excluded by .dockerignore: {source}{why}"
                    )));
                }
                // --parents keeps the source's path, from a `/./` pivot on when it has one.
                let pivot = match source.rfind("/./") {
                    Some(i) if c.parents => {
                        let p = rbuild_parser::dockerignore::clean_path(
                            source[..i].trim_start_matches('/'),
                        );
                        if p == "." {
                            String::new()
                        } else {
                            format!("{p}/")
                        }
                    }
                    _ => String::new(),
                };
                let kept =
                    |path: &str| PathBuf::from(path.strip_prefix(pivot.as_str()).unwrap_or(path));
                for e in selected {
                    if e.meta.is_dir() {
                        for inner in shared.context.under(&e.path)? {
                            let rel = if c.parents {
                                kept(&inner.path)
                            } else {
                                PathBuf::from(
                                    inner
                                        .path
                                        .strip_prefix(&e.path)
                                        .unwrap_or(&inner.path)
                                        .trim_start_matches('/'),
                                )
                            };
                            let host = shared.context.host_path(&inner.path);
                            let meta = inner.meta.clone();
                            items.push(Item {
                                context: Some(inner),
                                ..Item::plain(rel, host, meta)
                            });
                        }
                        continue;
                    }
                    let host = shared.context.host_path(&e.path);
                    let extract = add
                        && c.unpack != Some(false)
                        && e.meta.is_file()
                        && archive_kind(&host).is_some();
                    // A named source keeps its name even when it was a link followed.
                    let named =
                        if has_wildcards(source) { e.path.as_str() } else { source.as_str() };
                    let name = Path::new(named.trim_end_matches('/'))
                        .file_name()
                        .map(PathBuf::from)
                        .unwrap_or_default();
                    let dest_rel = if c.parents {
                        kept(&e.path)
                    } else if extract || !(dest_is_dir || many) {
                        PathBuf::new()
                    } else {
                        name
                    };
                    let meta = e.meta.clone();
                    items.push(Item {
                        context: Some(e),
                        extract,
                        ..Item::plain(dest_rel, host, meta)
                    });
                }
            }
            Origin::View(v, _) => {
                let parts = v.resolve(source, true)?;
                let Some((host, meta)) = v.entry(&parts) else {
                    return Err(state.error(
                        inst,
                        &format!(
                            "{verb} failed: {source} not found in {}",
                            c.from.as_deref().unwrap_or("")
                        ),
                    ));
                };
                if meta.is_dir() {
                    for (rel, h, m) in v.walk(&parts)? {
                        items.push(Item::plain(rel, h, m));
                    }
                } else {
                    let name = parts.last().map(PathBuf::from).unwrap_or_default();
                    let dest_rel = if dest_is_dir || many { name } else { PathBuf::new() };
                    items.push(Item::plain(dest_rel, host, meta));
                }
            }
        }
    }
    // Heredocs are inline files named by their terminator... the destination holds them.
    for h in &c.heredocs {
        let host = tmp_downloads.path().join(format!("heredoc-{}", items.len()));
        let body = if h.expand {
            state.expand(inst, &h.content).unwrap_or_else(|_| h.content.clone())
        } else {
            h.content.clone()
        };
        fs::write(&host, body).map_err(Error::io("writing", host.clone()))?;
        let meta = fs::symlink_metadata(&host).map_err(Error::io("inspecting", host.clone()))?;
        let dest_rel = if dest_is_dir || many {
            plain_name(&h.name, "the heredoc name").map_err(|e| state.error(inst, &e))?
        } else {
            PathBuf::new()
        };
        items.push(Item { mode_override: Some(0o644), ..Item::plain(dest_rel, host, meta) });
    }
    if !c.exclude.is_empty() {
        let patterns: Vec<String> =
            c.exclude.iter().map(|p| state.expand(inst, p)).collect::<Result<_>>()?;
        let matcher = rbuild_parser::dockerignore::IgnoreMatcher::parse(&patterns.join("\n"))
            .map_err(|e| state.error(inst, &format!("{verb} --exclude: {e}")))?;
        items.retain(|i| {
            let rel = i.dest_rel.to_string_lossy();
            let hit = (!rel.is_empty() && matcher.excludes(&rel))
                || i.context.as_ref().is_some_and(|e| matcher.excludes(&e.path));
            !hit
        });
    }
    if many && !dest_is_dir {
        return Err(state.error(inst, &format!(
            "When using {verb} with more than one source file, the destination must be a directory and end with a /"
        )));
    }

    // The key: exactly what the layer will hold.
    let context_files: Vec<&ContextEntry> =
        items.iter().filter_map(|i| i.context.as_ref()).filter(|e| e.meta.is_file()).collect();
    let digests = shared.context.content_digests(&context_files)?;
    let mut listing = sha2::Sha256::default();
    for i in &items {
        use sha2::Digest as _;
        let m = &i.meta;
        let what = if m.file_type().is_symlink() {
            format!(
                "link:{}",
                fs::read_link(&i.host).map(|t| t.display().to_string()).unwrap_or_default()
            )
        } else if let Some(d) = i.context.as_ref().and_then(|e| digests.get(&e.path)) {
            format!("file:{d}")
        } else if let Some(d) = &i.content_digest {
            format!("file:{d}")
        } else if m.is_file() && i.context.is_none() && matches!(origin, Origin::Context) {
            format!(
                "file:{}",
                crate::digest::sha256(
                    &fs::read(&i.host).map_err(Error::io("reading", i.host.clone()))?
                )
            )
        } else {
            format!("{}", m.is_dir())
        };
        // The owner is part of a source's identity even where COPY gives the files to
        // root, as the build issue asks and as Docker's classic builder did.
        let owner = (m.uid(), m.gid());
        listing.update(
            format!(
                "{}\0{:o}\0{:?}\0{:?}\0{}\0{what}\n",
                i.dest_rel.display(),
                m.mode(),
                owner,
                i.mode_override,
                i.extract
            )
            .as_bytes(),
        );
    }
    let listing: String = {
        use sha2::Digest as _;
        listing.finalize().iter().map(|b| format!("{b:02x}")).collect()
    };
    let origin_key = match &origin {
        Origin::Context => "context".to_string(),
        Origin::View(_, k) => k.clone(),
    };
    let dest_key = RootfsView::display(&dest_parts);
    // A linked layer's key does not depend on the steps before it; the chain after it
    // depends on both.
    let before = state.chain.clone();
    let parent = if c.link { CacheKey::base("link") } else { state.chain.clone() };
    let key = CacheKey::new(
        &parent,
        json!({"op": verb, "dest": dest_key, "dest_is_dir": dest_is_dir, "chown": chown, "chmod": chmod,
               "origin": origin_key, "files": listing, "urls": url_digests}),
    );
    // What the layer holds depends only on these inputs, the destination's parents (whose
    // metadata the layer copies) and how times and owners are written: when another chain
    // made the same layer, it is used again without writing anything.
    let parent_dirs =
        if dest_is_dir { dest_parts.len() } else { dest_parts.len().saturating_sub(1) };
    let parents: Vec<serde_json::Value> = (1..=parent_dirs)
        .map(|n| match dest_view.entry(&dest_parts[..n]) {
            Some((_, m)) if m.is_dir() => json!([m.mode(), m.uid(), m.gid(), m.mtime()]),
            _ => serde_json::Value::Null,
        })
        .collect();
    let content_key = CacheKey::new(
        &CacheKey::base("layer-content"),
        json!({"op": verb, "dest": dest_key, "dest_is_dir": dest_is_dir, "chown": chown, "chmod": chmod,
               "origin": origin_key, "files": listing, "urls": url_digests, "parents": parents,
               "epoch": shared.options.source_date_epoch, "root": crate::snapshot::is_root()}),
    );
    let relink = |state: &mut State<'_, '_>, key: &CacheKey| {
        if c.link {
            state.chain = CacheKey::new(&before, json!({"linked": key.0}));
        }
    };
    let created_by = format!(
        "{verb} {}",
        inst.original.trim().split_once(char::is_whitespace).map_or("", |p| p.1).trim()
    );
    if !shared.options.no_cache {
        if let Some(record) = shared.store.cache_lookup(&key) {
            shared.reporter.event(Event::Cached { number });
            reuse(state, number, key.clone(), record, created_by)?;
            relink(state, &key);
            return Ok(true);
        }
    }
    state.all_cached = false;
    if !shared.options.no_cache {
        if let Some(record) = shared.store.cache_lookup(&content_key).filter(|r| r.layer.is_some())
        {
            super::run::reuse_layer(state, number, key.clone(), record, created_by)?;
            relink(state, &key);
            return Ok(false);
        }
    }
    let started = Instant::now();
    let owner = chown
        .as_deref()
        .map(|s| resolve_owner(&view, s))
        .transpose()
        .map_err(|e| state.error(inst, &e))?;
    if !crate::snapshot::is_root() && owner.is_some_and(|o| o != (0, 0)) {
        // A rootless build maps only its caller (to root); other owners need root.
        return Err(state.error(
            inst,
            &format!("{verb} --chown to a user other than root needs rbuild to run as root"),
        ));
    }
    let layer_dir = shared.store.snapshot_tempdir()?;
    let root = layer_dir.path();
    let dest_host = make_parents(&dest_view, root, &dest_parts, dest_is_dir, owner)?;
    let rules = PlaceRules {
        owner,
        keep_owners: !matches!(origin, Origin::Context),
        chmod: chmod.as_deref(),
        as_root: crate::snapshot::is_root(),
    };
    rules.check(&items).map_err(|e| state.error(inst, &e))?;
    // Targets first, in order: a link an earlier item placed is followed inside the layer
    // directory (as if it were `/`), never out of it. Archives are extracted here.
    let mut targets: Vec<(PathBuf, &Item)> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    let mut links_placed = false;
    let mut unique = true;
    for i in &items {
        let target = if i.dest_rel.as_os_str().is_empty() {
            dest_host.clone()
        } else if links_placed || !unique {
            let rel = dest_host.join(&i.dest_rel);
            let rel = rel.strip_prefix(root).unwrap_or(&rel).to_path_buf();
            crate::snapshot::path::entry_destination(root, &rel)?.1
        } else {
            dest_host.join(&i.dest_rel)
        };
        if i.extract {
            fs::create_dir_all(&target).map_err(Error::io("creating", target.clone()))?;
            let reader = open_archive(&i.host)?;
            let options =
                ApplyOptions { whiteouts: WhiteoutMode::Remove, ..ApplyOptions::default() };
            crate::snapshot::apply_layer(reader, &target, options).map_err(|e| {
                state.error(inst, &format!("ADD failed: extracting {}: {e}", i.host.display()))
            })?;
            // What the archive holds is unknown here: resolve every later target.
            links_placed = true;
            continue;
        }
        if i.meta.file_type().is_symlink() {
            links_placed = true;
        }
        if !seen.insert(target.clone()) {
            unique = false;
        }
        targets.push((target, i));
    }
    let t_place = Instant::now();
    if unique {
        // Directories and links in order, then the files' content on every core (their
        // directories all exist by then), then the directories' metadata, deepest first.
        for (target, i) in &targets {
            if !i.meta.file_type().is_file() {
                rules.place(i, target, &shared.reporter)?;
            }
        }
        let files: Vec<&(PathBuf, &Item)> =
            targets.iter().filter(|(_, i)| i.meta.file_type().is_file()).collect();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
        if files.len() < 64 || threads < 2 {
            for (target, i) in files {
                rules.place(i, target, &shared.reporter)?;
            }
        } else {
            let chunk = files.len().div_ceil(threads);
            let rules = &rules;
            let reporter = &shared.reporter;
            std::thread::scope(|scope| {
                let handles: Vec<_> = files
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter().try_for_each(|(t, i)| rules.place(i, t, reporter))
                        })
                    })
                    .collect();
                handles.into_iter().try_for_each(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Build("a copying thread panicked".into())))
                })
            })?;
        }
    } else {
        // The same target more than once: strictly in order, each replacing the last.
        for (target, i) in &targets {
            rules.replace(target, i)?;
            rules.place(i, target, &shared.reporter)?;
        }
    }
    for (target, i) in targets.iter().rev() {
        if i.meta.is_dir() {
            rules.finish_dir(i, target)?;
        }
    }
    tracing::debug!(
        items = items.len(),
        placed_ms = t_place.elapsed().as_millis() as u64,
        "COPY placed its files"
    );
    restore_parent_times(&dest_view, root, &dest_parts, dest_is_dir);
    commit(state, root, vec![key.clone(), content_key], created_by, number, started)?;
    relink(state, &key);
    Ok(false)
}

/// Makes the destination's parent directories in the layer (with their mode and owner from
/// the image when they exist there; their times come last, `restore_parent_times`) and
/// returns the host path of the destination directory
/// (of its parent when the destination is a file).
fn make_parents(
    view: &RootfsView,
    root: &Path,
    dest_parts: &[std::ffi::OsString],
    dest_is_dir: bool,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf> {
    let dirs = if dest_is_dir { dest_parts.len() } else { dest_parts.len().saturating_sub(1) };
    let mut host = root.to_path_buf();
    for n in 1..=dirs {
        host.push(&dest_parts[n - 1]);
        let existing = view.entry(&dest_parts[..n]).filter(|(_, m)| m.is_dir());
        fs::create_dir(&host).map_err(Error::io("creating", host.clone()))?;
        let (mode, uid, gid) = match &existing {
            Some((_, m)) => (m.mode() & 0o7777, m.uid(), m.gid()),
            None if n == dirs && dest_is_dir => {
                let (u, g) = owner.unwrap_or((0, 0));
                (0o755, u, g)
            }
            None => (0o755, 0, 0),
        };
        fs::set_permissions(&host, fs::Permissions::from_mode(mode))
            .map_err(Error::io("setting the mode of", host.clone()))?;
        if crate::snapshot::is_root() {
            std::os::unix::fs::lchown(&host, Some(uid), Some(gid))
                .map_err(Error::io("changing the owner of", host.clone()))?;
        }
    }
    if dest_is_dir {
        Ok(host)
    } else {
        Ok(host.join(dest_parts.last().cloned().unwrap_or_default()))
    }
}

/// Gives the destination's parents that the image has their times from the image again,
/// deepest first, once everything is placed below them (placing changed them).
fn restore_parent_times(
    view: &RootfsView,
    root: &Path,
    dest_parts: &[std::ffi::OsString],
    dest_is_dir: bool,
) {
    let dirs = if dest_is_dir { dest_parts.len() } else { dest_parts.len().saturating_sub(1) };
    for n in (1..=dirs).rev() {
        if let Some((_, m)) = view.entry(&dest_parts[..n]).filter(|(_, m)| m.is_dir()) {
            let host: PathBuf = std::iter::once(root.as_os_str().to_os_string())
                .chain(dest_parts[..n].iter().cloned())
                .collect();
            let t = FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
            let _ = filetime::set_symlink_file_times(&host, t, t);
        }
    }
}

/// Commits the layer directory `root` as the step's layer.
fn commit(
    state: &mut State<'_, '_>,
    root: &Path,
    keys: Vec<CacheKey>,
    created_by: String,
    number: usize,
    started: Instant,
) -> Result<()> {
    let shared = state.shared;
    let t0 = Instant::now();
    let changes = overlay_changes(root)?;
    let created = super::now_rfc3339(shared.options.source_date_epoch);
    let (layer, writer) = super::run::write_layer_blob(
        shared.store,
        root,
        &changes,
        shared.options.source_date_epoch,
    )?;
    let snapshot = shared.store.adopt_snapshot(root, &layer.diff_id)?;
    tracing::debug!(
        layer_ms = t0.elapsed().as_millis() as u64,
        bytes = layer.size,
        "layer committed"
    );
    let duration = started.elapsed();
    let record = CacheRecord {
        layer: Some(layer.clone()),
        created: created.clone(),
        duration_ms: duration.as_millis() as u64,
    };
    let key = keys[0].clone();
    shared.finish_layer(writer, &layer, keys, record);
    state.finish_step(FinishedStep {
        number,
        key,
        created_by,
        layer: Some(layer),
        snapshot: Some(snapshot),
        created,
        cached: false,
        duration_ms: duration.as_millis() as u64,
        has_log: false,
    })
}

/// An image named by `COPY --from`, pulled once per build when missing.
fn copy_from_image(
    state: &State<'_, '_>,
    name: &str,
) -> Result<std::sync::Arc<crate::store::Image>> {
    let shared = state.shared;
    if let Some(i) = shared.images.lock().ok().and_then(|m| m.get(name).cloned()) {
        return Ok(i);
    }
    let image = std::sync::Arc::new(super::stage::base_image(shared, state.stage, name)?);
    if let Ok(mut m) = shared.images.lock() {
        m.insert(name.to_string(), image.clone());
    }
    Ok(image)
}

/// WORKDIR: makes the directory (in a layer of its own) when the image lacks it.
pub(super) fn make_workdir(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    path: &str,
    number: usize,
) -> Result<bool> {
    let created_by = format!("WORKDIR {path}");
    let view = state.view()?;
    let parts = view.resolve(path, true)?;
    if view.entry(&parts).is_some_and(|(_, m)| m.is_dir()) {
        state.add_history(created_by.clone(), true, None);
        state.record_step(StepRecord {
            number,
            created_by,
            cache_key: None,
            cached: state.all_cached,
            duration_ms: (std::time::Duration::ZERO).as_millis() as u64,
            size: 0,
            has_log: false,
        });
        return Ok(state.all_cached);
    }
    if view.entry(&parts).is_some() {
        return Err(
            state.error(inst, &format!("WORKDIR {path}: a file of that name is in the way"))
        );
    }
    let key =
        CacheKey::new(&state.chain, json!({"op": "mkdir", "path": RootfsView::display(&parts)}));
    let shared = state.shared;
    if !shared.options.no_cache {
        if let Some(record) = shared.store.cache_lookup(&key) {
            shared.reporter.event(Event::Cached { number });
            reuse(state, number, key, record, created_by)?;
            return Ok(true);
        }
    }
    state.all_cached = false;
    let started = Instant::now();
    let layer_dir = shared.store.snapshot_tempdir()?;
    make_parents(&view, layer_dir.path(), &parts, true, None)?;
    restore_parent_times(&view, layer_dir.path(), &parts, true);
    commit(state, layer_dir.path(), vec![key], created_by, number, started)?;
    Ok(false)
}
