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

pub(super) mod inputs;
mod items;
mod place;

use std::time::Instant;

use rbuild_parser::{CopySource, Instruction};
use serde_json::json;

use super::cache::CacheKey;
use super::commit::{commit, reuse};
use super::rootfs::RootfsView;
use super::stage::State;
use super::Event;
use crate::error::{Error, Result};
use inputs::{apply_chmod, is_git, resolve_owner};
pub(crate) use place::{make_parents, restore_parent_times};

/// Where sources are read from.
enum Origin {
    Context,
    /// Another stage's or an image's file system, with the key that stands for it.
    View(RootfsView, String),
}

/// A COPY or ADD with its words expanded and its destination resolved.
struct CopyPlan<'c> {
    c: &'c CopySource,
    add: bool,
    verb: &'static str,
    sources: Vec<String>,
    /// The destination as written, expanded.
    dest_word: String,
    chown: Option<String>,
    /// The stage's file system before the step.
    view: RootfsView,
    /// Where the destination is resolved: the stage's file system, or nothing (`--link`).
    dest_view: RootfsView,
    dest_parts: Vec<std::ffi::OsString>,
    dest_is_dir: bool,
    /// More than one source given (a wildcard counts by what it matches).
    many: bool,
    origin: Origin,
}

impl CopyPlan<'_> {
    /// The history entry, as BuildKit writes it: the verb, `--parents`, `--chown` (unless
    /// it expanded to nothing) and `--chmod` (no other flag), the sources as expanded,
    /// `<<NAME` for each heredoc, the destination as expanded, and `# buildkit`.
    fn history_text(&self) -> String {
        let mut text = self.verb.to_string();
        if self.c.parents {
            text.push_str(" --parents");
        }
        if let Some(chown) = self.chown.as_ref().filter(|c| !c.is_empty()) {
            text.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = &self.c.chmod {
            text.push_str(&format!(" --chmod={chmod}"));
        }
        for source in &self.sources {
            text.push(' ');
            text.push_str(source);
        }
        for heredoc in &self.c.heredocs {
            text.push_str(&format!(" <<{}", heredoc.name));
        }
        format!("{text} {} # buildkit", self.dest_word)
    }

    /// Whether sources go into the destination by name (rather than becoming it).
    fn sources_go_inside(&self) -> bool {
        self.dest_is_dir || self.many
    }

    /// The number of the destination's parent directories the layer holds.
    fn parent_dirs(&self) -> usize {
        if self.dest_is_dir {
            self.dest_parts.len()
        } else {
            self.dest_parts.len().saturating_sub(1)
        }
    }
}

/// Expands the instruction's words and resolves its destination and origin.
fn plan<'c>(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    c: &'c CopySource,
    add: bool,
) -> Result<CopyPlan<'c>> {
    let verb = if add { "ADD" } else { "COPY" };
    let sources: Vec<String> =
        c.sources.iter().map(|s| state.expand(inst, s)).collect::<Result<_>>()?;
    let git = add && sources.iter().any(|s| is_git(s));
    if c.keep_git_dir && !git {
        return Err(state.error(inst, "--keep-git-dir is for ADD of a git repository"));
    }
    let dest_word = state.expand(inst, &c.dest)?;
    let chown = c.chown.as_deref().map(|s| state.expand(inst, s)).transpose()?;
    if let Some(m) = &c.chmod {
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
        || git;
    // A wildcard counts by what it matches (in `items::gather`).
    let many = sources.len() + c.heredocs.len() > 1;
    let origin = origin(state, inst, c)?;
    Ok(CopyPlan {
        c,
        add,
        verb,
        sources,
        dest_word,
        chown,
        view,
        dest_view,
        dest_parts,
        dest_is_dir,
        many,
        origin,
    })
}

/// `--from`: a finished stage, else an image (pulled once per build when missing).
fn origin(state: &mut State<'_, '_>, inst: &Instruction, c: &CopySource) -> Result<Origin> {
    let Some(from) = &c.from else { return Ok(Origin::Context) };
    let from = state.expand(inst, from)?;
    let (view, key) = state.shared.view_of(state.stage, &from)?;
    Ok(Origin::View(view, key))
}

/// The step's cache keys: its chain key, and a content key that stands for exactly what
/// the layer holds (its inputs, the destination's parents whose metadata the layer
/// copies, and how times and owners are written), so that a layer another chain made is
/// used again without writing anything.
fn keys(
    state: &State<'_, '_>,
    plan: &CopyPlan<'_>,
    listing: &str,
    gathered: &items::Gathered,
) -> (CacheKey, CacheKey, serde_json::Value, CacheKey) {
    let c = plan.c;
    let origin_key = match &plan.origin {
        Origin::Context => "context".to_string(),
        Origin::View(_, k) => k.clone(),
    };
    let dest_key = RootfsView::display(&plan.dest_parts);
    // The metadata of the destination's parents that the image has (the layer copies it).
    let parents: Vec<serde_json::Value> = (1..=plan.parent_dirs())
        .map(|n| match plan.view.entry(&plan.dest_parts[..n]) {
            Some((_, m)) if m.is_dir() => {
                use std::os::unix::fs::MetadataExt;
                json!([m.mode(), m.uid(), m.gid(), m.mtime()])
            }
            _ => serde_json::Value::Null,
        })
        .collect();
    let mut inputs = json!({"op": plan.verb, "dest": dest_key, "dest_is_dir": plan.dest_is_dir,
        "chown": plan.chown, "chmod": c.chmod, "origin": origin_key, "files": listing,
        "urls": gathered.pinned, "dir_source": gathered.dir_source});
    // A linked layer's key does not depend on the steps before it, only on the parents'
    // metadata it copies; the chain after it depends on both.
    let parent = if c.link {
        inputs["parents"] = json!(parents);
        CacheKey::base("link")
    } else {
        state.chain.clone()
    };
    let key = CacheKey::new(&parent, inputs.clone());
    let mut content = inputs.clone();
    content["parents"] = json!(parents);
    content["epoch"] = json!(state.shared.options.source_date_epoch);
    content["root"] = json!(crate::users::is_root());
    (key, CacheKey::new(&CacheKey::base("layer-content"), content), inputs, parent)
}

/// Refuses what BuildKit refuses to copy over the image: a directory where the image has a
/// link or a file ("cannot copy to non-directory"), a file where it has a directory
/// ("cannot replace to directory ... with file"). The destination itself was resolved
/// (its links followed); below it, nothing is followed.
fn check_collisions(
    plan: &CopyPlan<'_>,
    gathered: &items::Gathered,
) -> std::result::Result<(), String> {
    let view = &plan.dest_view;
    let display = |parts: &[std::ffi::OsString]| RootfsView::display(parts);
    match view.entry(&plan.dest_parts) {
        None => return Ok(()),
        Some((_, m)) if !m.is_dir() && gathered.dir_source && !plan.dest_is_dir => {
            return Err(format!("cannot copy to non-directory: {}", display(&plan.dest_parts)));
        }
        Some((_, m)) if !m.is_dir() => return Ok(()),
        Some(_) => {}
    }
    for i in gathered.items.iter().filter(|i| !i.extract && !i.dest_rel.as_os_str().is_empty()) {
        let mut parts = plan.dest_parts.clone();
        parts.extend(i.dest_rel.components().map(|c| c.as_os_str().to_os_string()));
        match view.entry(&parts) {
            Some((_, m)) if i.meta.is_dir() && !m.is_dir() => {
                return Err(format!("cannot copy to non-directory: {}", display(&parts)));
            }
            Some((_, m)) if !i.meta.is_dir() && m.is_dir() => {
                return Err(format!("cannot replace to directory {} with file", display(&parts)));
            }
            _ => {}
        }
    }
    Ok(())
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
    let plan = plan(state, inst, c, add)?;
    let verb = plan.verb;
    let tmp = tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(shared.store.tmp_dir())
        .map_err(Error::io("creating a directory in", shared.store.tmp_dir()))?;
    let gathered = items::gather(state, inst, &plan, tmp.path())?;
    let items = &gathered.items;
    let staging = crate::engine::context::Staging::new(tmp.path().join("staged"));
    let listing = items::listing_digest(state, &plan, items, &staging)?;
    let (key, content_key, inputs, parent) = keys(state, &plan, &listing, &gathered);
    state.note_inputs(&parent, &inputs, Vec::new());
    let before = state.chain.clone();
    let relink = |state: &mut State<'_, '_>, key: &CacheKey| {
        if c.link {
            state.chain = CacheKey::new(&before, json!({"linked": key.0}));
        }
    };
    let created_by = plan.history_text();
    if state.uses_cache() {
        if let Some(record) = shared.store.cache_lookup(&key) {
            shared.reporter.event(Event::Cached { number });
            reuse(state, number, key.clone(), record, created_by)?;
            relink(state, &key);
            return Ok(true);
        }
    }
    let files = items::file_list(state, &plan, items)?;
    if let Some(p) = state.notes.pending.as_mut() {
        p.files = files;
    }
    state.explain_miss(number, &key);
    state.all_cached = false;
    if state.uses_cache() {
        if let Some(record) = shared.store.cache_lookup(&content_key).filter(|r| r.layer.is_some())
        {
            super::commit::reuse_layer(state, number, key.clone(), record, created_by)?;
            relink(state, &key);
            return Ok(false);
        }
    }
    let started = Instant::now();
    let owner = plan
        .chown
        .as_deref()
        .map(|s| resolve_owner(&plan.view, s))
        .transpose()
        .map_err(|e| state.error(inst, &e))?;
    if !crate::users::is_root() && owner.is_some_and(|o| o != (0, 0)) {
        // A rootless build maps only its caller (to root); other owners need root.
        return Err(state.error(
            inst,
            &format!("{verb} --chown to a user other than root needs rbuild to run as root"),
        ));
    }
    let layer_dir = shared.store.snapshot_tempdir()?;
    let root = layer_dir.path();
    // Parents the image has keep their metadata in the layer, `--link` or not (BuildKit's
    // linked layers show them so too); `--link` only resolves the destination without
    // the image's links.
    let (view, parts) = (&plan.view, &plan.dest_parts);
    if items.is_empty() && !gathered.dir_source {
        // Nothing matched: BuildKit commits an empty layer, without the destination.
        commit(state, root, vec![key.clone(), content_key], created_by, number, started, false)?;
        relink(state, &key);
        return Ok(false);
    }
    // A directory's content goes into the destination, made as BuildKit makes it.
    let dest_host =
        make_parents(view, root, parts, plan.dest_is_dir || gathered.dir_source, owner)?;
    let rules = place::PlaceRules {
        owner,
        keep_owners: !matches!(plan.origin, Origin::Context),
        chmod: c.chmod.as_deref(),
        as_root: crate::users::is_root(),
        staged: Some(&staging),
    };
    rules.check(items).map_err(|e| state.error(inst, &e))?;
    check_collisions(&plan, &gathered).map_err(|e| state.error(inst, &e))?;
    let t_place = Instant::now();
    let step_error = |message: &str| state.error(inst, message);
    place::place_all(
        &rules,
        &plan.dest_view,
        root,
        &dest_host,
        items,
        shared.reporter,
        &step_error,
    )?;
    tracing::debug!(
        items = items.len(),
        placed_ms = t_place.elapsed().as_millis() as u64,
        "COPY placed its files"
    );
    restore_parent_times(view, root, parts, plan.dest_is_dir);
    commit(state, root, vec![key.clone(), content_key], created_by, number, started, false)?;
    relink(state, &key);
    Ok(false)
}
