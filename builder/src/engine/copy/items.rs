//! What a COPY or ADD places: its sources (the context, another stage or image, git
//! repositories, URLs, heredocs) turned into items, each a host path and where it goes
//! below the destination.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use rbuild_parser::Instruction;

use super::inputs::{archive_kind, fetch_git, file_name_of_url, is_git, is_url, plain_name};
use super::{CopyPlan, Origin};
use crate::engine::context::{has_wildcards, ContextEntry, Staging};
use crate::engine::rootfs::RootfsView;
use crate::engine::stage::State;
use crate::error::{Error, Result};

/// One thing to place in the layer.
#[derive(Debug)]
pub(super) struct Item {
    /// Path below the destination ("" for the destination itself).
    pub(super) dest_rel: PathBuf,
    /// Where its content is on the host.
    pub(super) host: PathBuf,
    pub(super) meta: Metadata,
    /// Its context entry, when it comes from the context (for content digests).
    pub(super) context: Option<ContextEntry>,
    /// ADD: extract this archive into the destination.
    pub(super) extract: bool,
    /// Inline content (a heredoc, a downloaded file's mode override).
    pub(super) mode_override: Option<u32>,
    /// Modification time override (downloads).
    pub(super) mtime_override: Option<i64>,
    /// The content's digest when it is known already (downloads).
    pub(super) content_digest: Option<String>,
}

impl Item {
    /// A file, directory or link placed as it is.
    pub(super) fn plain(dest_rel: PathBuf, host: PathBuf, meta: Metadata) -> Item {
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

/// The URLs and git repositories fetched, each with its content's digest or commit.
pub(super) type Pinned = Vec<(String, String)>;

/// What a COPY's sources gave.
pub(super) struct Gathered {
    pub(super) items: Vec<Item>,
    /// The digests of the URLs and git commits fetched (for the cache key).
    pub(super) pinned: Pinned,
    /// A source was a directory, so its content goes into the destination, which is
    /// made (0755, the step's owner, as BuildKit's mkdir makes it) even when the source
    /// is empty.
    pub(super) dir_source: bool,
}

/// Every item of `plan`'s sources, in order; downloads go to `tmp`.
pub(super) fn gather(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    tmp: &Path,
) -> Result<Gathered> {
    let (c, verb) = (plan.c, plan.verb);
    let mut items: Vec<Item> = Vec::new();
    let mut url_digests = Vec::new();
    let mut dir_source = false;
    // Sources found: more than one needs a directory destination.
    let mut matched = 0;
    for source in &plan.sources {
        if plan.add && is_git(source) {
            url_digests.push(git_items(state, inst, plan, source, tmp, &mut items)?);
            matched += 1;
            continue;
        }
        if plan.add && is_url(source) {
            let (item, digest) = url_item(state, inst, plan, source, tmp, items.len())?;
            url_digests.push((source.clone(), digest));
            items.push(item);
            matched += 1;
            continue;
        }
        if c.checksum.is_some() {
            return Err(state.error(inst, &format!("ADD --checksum is for URLs, not {source:?}")));
        }
        if plan.add && source.contains("://") {
            return Err(state.error(
                inst,
                &format!("ADD of {source:?}: only http and https URLs are supported"),
            ));
        }
        let (n, dir) = match &plan.origin {
            Origin::Context => context_items(state, inst, plan, source, &mut items)?,
            Origin::View(v, _) => view_items(state, inst, plan, v, source, &mut items)?,
        };
        matched += n;
        dir_source |= dir;
    }
    if (plan.many || matched > 1) && !plan.dest_is_dir {
        return Err(state.error(inst, &format!(
            "When using {verb} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    heredoc_items(state, inst, plan, tmp, &mut items)?;
    exclude(state, inst, plan, &mut items)?;
    Ok(Gathered { items, pinned: url_digests, dir_source })
}

/// A source of another stage or image (`--from`): its entry (links followed, named as
/// the source names it) or, for a wildcard in its last component, every entry that
/// matches (none is no error, as in BuildKit). Returns how many it matched, and whether
/// one was a directory.
fn view_items(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    v: &RootfsView,
    source: &str,
    items: &mut Vec<Item>,
) -> Result<(usize, bool)> {
    let trimmed = source.trim_end_matches('/');
    let found: Vec<(PathBuf, String)> = if has_wildcards(trimmed) {
        let (parent, pattern) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        if has_wildcards(parent) {
            return Err(state.error(
                inst,
                &format!("{}: --from takes wildcards in the last path component only", plan.verb),
            ));
        }
        let glob = rbuild_parser::dockerignore::Glob::new(pattern)
            .map_err(|e| state.error(inst, &format!("invalid source pattern {source:?}: {e}")))?;
        let parent_parts = v.resolve(if parent.is_empty() { "/" } else { parent }, true)?;
        v.read_dir(&parent_parts)?
            .into_keys()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| glob.matches(n))
            .map(|n| (PathBuf::from(&n), format!("{parent}/{n}")))
            .collect()
    } else {
        // A link copied by name keeps the name it was given, as from the context.
        let name = Path::new(trimmed).file_name().map(PathBuf::from).unwrap_or_default();
        vec![(name, source.to_string())]
    };
    let inside = plan.sources_go_inside() || found.len() > 1;
    let mut dir_source = false;
    for (name, path) in &found {
        let parts = v.resolve(path, true)?;
        let Some((host, meta)) = v.entry(&parts) else {
            let from = plan.c.from.as_deref().unwrap_or("");
            return Err(
                state.error(inst, &format!("{} failed: {source} not found in {from}", plan.verb))
            );
        };
        if meta.is_dir() {
            dir_source = true;
            for (rel, h, m) in v.walk(&parts)? {
                items.push(Item::plain(rel, h, m));
            }
        } else {
            let dest_rel = if inside { name.clone() } else { PathBuf::new() };
            items.push(Item::plain(dest_rel, host, meta));
        }
    }
    Ok((found.len(), dir_source))
}

/// ADD of a git repository: its tree (or the directory the URL names) at the commit
/// fetched, which `--checksum` may pin. Returns the source and its commit.
fn git_items(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    source: &str,
    tmp: &Path,
    items: &mut Vec<Item>,
) -> Result<(String, String)> {
    let dir = tmp.join(format!("git-{}", items.len()));
    let (commit, subdir) = fetch_git(source, &dir, plan.c.keep_git_dir)
        .map_err(|e| state.error(inst, &format!("ADD failed: {source}: {e}")))?;
    if let Some(want) = &plan.c.checksum {
        let want = state.expand(inst, want)?;
        if !commit.starts_with(want.trim()) {
            return Err(state
                .error(inst, &format!("ADD failed: {source} is at commit {commit}, not {want}")));
        }
    }
    let tree = RootfsView::new(vec![dir]);
    let parts = tree.resolve(&subdir, true)?;
    if !tree.entry(&parts).is_some_and(|(_, m)| m.is_dir()) {
        return Err(state.error(
            inst,
            &format!("ADD failed: {source}: {subdir} is not a directory of the repository"),
        ));
    }
    for (rel, host, meta) in tree.walk(&parts)? {
        items.push(Item::plain(rel, host, meta));
    }
    Ok((source.to_string(), commit))
}

/// ADD of an http(s) URL: the file downloaded (mode 0600, its `Last-Modified` time),
/// checked against `--checksum`, extracted only with `--unpack=true`. Returns the item
/// and the content's digest.
fn url_item(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    source: &str,
    tmp: &Path,
    n: usize,
) -> Result<(Item, String)> {
    let name = file_name_of_url(source);
    let dest_rel = if plan.sources_go_inside() {
        plain_name(&name, "the URL").map_err(|e| state.error(inst, &e))?
    } else {
        PathBuf::new()
    };
    let host = tmp.join(format!("download-{n}"));
    let verb = plan.verb;
    let mtime = state
        .shared
        .source
        .download(source, &host)
        .map_err(|e| state.error(inst, &format!("{verb} failed: downloading {source}: {e}")))?;
    let meta = fs::symlink_metadata(&host).map_err(Error::io("inspecting", host.clone()))?;
    let digest =
        crate::digest::sha256(&fs::read(&host).map_err(Error::io("reading", host.clone()))?);
    if let Some(want) = &plan.c.checksum {
        let want = state.expand(inst, want)?;
        let want = if want.contains(':') { want } else { format!("sha256:{want}") };
        if digest.to_string() != want {
            return Err(state.error(
                inst,
                &format!("ADD failed: {source} has the checksum {digest}, not {want}"),
            ));
        }
    }
    let extract = plan.c.unpack == Some(true) && archive_kind(&host).is_some();
    let item = Item {
        extract,
        mode_override: Some(0o600),
        mtime_override: mtime,
        content_digest: Some(digest.to_string()),
        ..Item::plain(if extract { PathBuf::new() } else { dest_rel }, host, meta)
    };
    Ok((item, digest.to_string()))
}

/// A source of the build context: the entries it selects (a directory stands for its
/// content), named as Docker names them; `--parents` keeps their path from a `/./`
/// pivot on. Returns how many it matched, and whether one was a directory.
fn context_items(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    source: &str,
    items: &mut Vec<Item>,
) -> Result<(usize, bool)> {
    let (c, ctx) = (plan.c, &state.shared.context);
    let selected = ctx.select(source)?;
    if selected.is_empty() && has_wildcards(source) {
        // A wildcard that matches nothing copies nothing, as in BuildKit.
        return Ok((0, false));
    }
    if selected.is_empty() {
        let cleaned = rbuild_parser::dockerignore::clean_path(source.trim_start_matches('/'));
        let why = if ctx.excluded(&cleaned) && ctx.host_path(&cleaned).exists() {
            " (it is excluded by .dockerignore)"
        } else {
            ""
        };
        return Err(state.error(inst, &format!(
            "{} failed: file not found in build context or excluded by .dockerignore: {source}{why}",
            plan.verb
        )));
    }
    let pivot = match source.rfind("/./") {
        Some(i) if c.parents => {
            let p = rbuild_parser::dockerignore::clean_path(source[..i].trim_start_matches('/'));
            if p == "." {
                String::new()
            } else {
                format!("{p}/")
            }
        }
        _ => String::new(),
    };
    let kept = |path: &str| PathBuf::from(path.strip_prefix(pivot.as_str()).unwrap_or(path));
    // A wildcard matching one entry names it as a plain source would.
    let inside = plan.sources_go_inside() || selected.len() > 1;
    let count = selected.len();
    let mut dir_source = false;
    for e in selected {
        if e.meta.is_dir() {
            dir_source = true;
            let under = ctx.under(&e.path)?;
            items.reserve(under.len());
            for inner in under {
                let rel = if c.parents {
                    kept(&inner.path)
                } else {
                    let below = inner.path.strip_prefix(&e.path).unwrap_or(&inner.path);
                    PathBuf::from(below.trim_start_matches('/'))
                };
                let host = ctx.host_path(&inner.path);
                let meta = (*inner.meta).clone();
                items.push(Item { context: Some(inner.clone()), ..Item::plain(rel, host, meta) });
            }
            continue;
        }
        let host = ctx.host_path(&e.path);
        let extract = plan.add
            && c.unpack != Some(false)
            && e.meta.is_file()
            && archive_kind(&host).is_some();
        // A named source keeps its name even when it was a link followed.
        let named = if has_wildcards(source) { e.path.as_str() } else { source };
        let name = Path::new(named.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let dest_rel = if c.parents {
            kept(&e.path)
        } else if extract || !inside {
            PathBuf::new()
        } else {
            name
        };
        let meta = (*e.meta).clone();
        items.push(Item { context: Some(e), extract, ..Item::plain(dest_rel, host, meta) });
    }
    Ok((count, dir_source))
}

/// Heredocs: inline files named by their terminator, written to `tmp`.
fn heredoc_items(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    tmp: &Path,
    items: &mut Vec<Item>,
) -> Result<()> {
    for h in &plan.c.heredocs {
        let host = tmp.join(format!("heredoc-{}", items.len()));
        let body = if h.expand {
            state.expand(inst, &h.content).unwrap_or_else(|_| h.content.clone())
        } else {
            h.content.clone()
        };
        fs::write(&host, body).map_err(Error::io("writing", host.clone()))?;
        let meta = fs::symlink_metadata(&host).map_err(Error::io("inspecting", host.clone()))?;
        let dest_rel = if plan.sources_go_inside() {
            plain_name(&h.name, "the heredoc name").map_err(|e| state.error(inst, &e))?
        } else {
            PathBuf::new()
        };
        items.push(Item { mode_override: Some(0o644), ..Item::plain(dest_rel, host, meta) });
    }
    Ok(())
}

/// `--exclude`: drops the items its patterns match, by their path below the destination
/// or in the context.
fn exclude(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    plan: &CopyPlan<'_>,
    items: &mut Vec<Item>,
) -> Result<()> {
    if plan.c.exclude.is_empty() {
        return Ok(());
    }
    let patterns: Vec<String> =
        plan.c.exclude.iter().map(|p| state.expand(inst, p)).collect::<Result<_>>()?;
    let matcher = rbuild_parser::dockerignore::IgnoreMatcher::parse(&patterns.join("\n"))
        .map_err(|e| state.error(inst, &format!("{} --exclude: {e}", plan.verb)))?;
    items.retain(|i| {
        let rel = i.dest_rel.to_string_lossy();
        let hit = (!rel.is_empty() && matcher.excludes(&rel))
            || i.context.as_ref().is_some_and(|e| matcher.excludes(&e.path));
        !hit
    });
    Ok(())
}

/// Whether `i` is a regular file of the context (its digest comes from the context).
fn context_file(i: &Item) -> bool {
    i.context.as_ref().is_some_and(|e| e.meta.is_file())
}

/// What an item is, in the words of the cache key (without its place): mode, owner, mode
/// override, extraction, then the link's target, the content's digest (`digest` for a
/// context file) or whether it is a directory. Written into `line`, cleared first.
fn item_line(plan: &CopyPlan<'_>, i: &Item, digest: Option<&str>, line: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt;
    let m = &i.meta;
    // The owner is part of a source's identity even where COPY gives the files to
    // root, as the build issue asks and as Docker's classic builder did.
    let owner = (m.uid(), m.gid());
    line.clear();
    // Writing to a String cannot fail.
    let _ = write!(line, "{:o}\0{owner:?}\0{:?}\0{}\0", m.mode(), i.mode_override, i.extract);
    if m.file_type().is_symlink() {
        let target = fs::read_link(&i.host).map(|t| t.display().to_string());
        let _ = write!(line, "link:{}", target.unwrap_or_default());
    } else if let Some(d) = digest.or(i.content_digest.as_deref()) {
        let _ = write!(line, "file:{d}");
    } else if m.is_file() && i.context.is_none() && matches!(plan.origin, Origin::Context) {
        let bytes = fs::read(&i.host).map_err(Error::io("reading", i.host.clone()))?;
        let _ = write!(line, "file:{}", crate::digest::sha256(&bytes));
    } else {
        let _ = write!(line, "{}", m.is_dir());
    }
    Ok(())
}

/// Each item's [`item_line`], made on every core with the content digests of its context
/// files (large ones read for them are copied into `staging` when given): `each` puts
/// the item and its line into its part's `R`; the parts come back in the items' order.
fn lines_in_parts<R: Default + Send>(
    state: &State<'_, '_>,
    plan: &CopyPlan<'_>,
    items: &[Item],
    staging: Option<&Staging>,
    each: impl Fn(&mut R, &Item, &str) + Sync,
) -> Result<Vec<R>> {
    state.shared.context.in_parts(items, staging, |hasher, part| {
        let (mut out, mut line) = (R::default(), String::new());
        for i in part {
            let digest = match i.context.as_ref().filter(|_| context_file(i)) {
                Some(entry) => Some(hasher.digest(entry)?),
                None => None,
            };
            item_line(plan, i, digest.as_deref(), &mut line)?;
            each(&mut out, i, &line);
        }
        Ok(out)
    })
}

/// The digest of what the items are: their places, modes, owners and content (the
/// part of the cache key that stands for the files): the sha256 of each item's place, a
/// NUL, its [`item_line`] and a newline. Large context files read for it are copied into
/// `staging` on the way. The lines are written on every core, each its part of the items
/// with their content digests, and hashed in order.
pub(super) fn listing_digest(
    state: &State<'_, '_>,
    plan: &CopyPlan<'_>,
    items: &[Item],
    staging: &Staging,
) -> Result<String> {
    use sha2::Digest as _;
    let parts =
        lines_in_parts(state, plan, items, Some(staging), |text: &mut Vec<u8>, i, line| {
            text.extend_from_slice(i.dest_rel.as_os_str().as_encoded_bytes());
            text.push(0);
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        })?;
    let mut listing = sha2::Sha256::default();
    for part in parts {
        listing.update(&part);
    }
    Ok(hex::encode(listing.finalize()))
}

/// The same by source path, made only when the step misses the cache: kept to say which
/// files changed when it misses again later.
pub(super) fn file_list(
    state: &State<'_, '_>,
    plan: &CopyPlan<'_>,
    items: &[Item],
) -> Result<super::super::explain::FileList> {
    let parts = lines_in_parts(state, plan, items, None, |files: &mut Vec<_>, i, line| {
        let source =
            i.context.as_ref().map_or_else(|| i.dest_rel.display().to_string(), |e| e.path.clone());
        files.push((source, line.to_string()));
    })?;
    Ok(parts.into_iter().flatten().collect())
}
