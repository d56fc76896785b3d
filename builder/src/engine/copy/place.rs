//! Placing a COPY's items in the new layer's directory: the destination's parents as
//! the image has them, each item with its owner, mode and time, links followed only
//! inside the layer, files copied on every core.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::inputs::{apply_chmod, open_archive};
use super::items::Item;
use crate::engine::context::Staging;
use crate::engine::rootfs::RootfsView;
use crate::engine::{Event, Reporter};
use crate::error::{Error, Result};
use crate::snapshot::{ApplyOptions, WhiteoutMode};

/// How items are placed in the layer directory.
pub(super) struct PlaceRules<'a> {
    /// `--chown`, resolved.
    pub(super) owner: Option<(u32, u32)>,
    /// Keep the sources' owners (a stage's or image's files) rather than root's.
    pub(super) keep_owners: bool,
    /// `--chmod`.
    pub(super) chmod: Option<&'a str>,
    /// rbuild runs as root (and so can set owners).
    pub(super) as_root: bool,
    /// Copies of context files made while they were hashed, moved into place.
    pub(super) staged: Option<&'a Staging>,
}

impl PlaceRules<'_> {
    /// Checks `--chmod` against every item first, so placing cannot fail half way on it.
    pub(super) fn check(&self, items: &[Item]) -> std::result::Result<(), String> {
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
    fn place(&self, i: &Item, target: &Path, reporter: &dyn Reporter) -> Result<()> {
        let ft = i.meta.file_type();
        if ft.is_dir() {
            if !target.is_dir() {
                fs::create_dir_all(target).map_err(Error::io("creating", target))?;
            }
            return Ok(());
        }
        let (secs, nanos) = match i.mtime_override {
            Some(t) => (t, 0),
            None => (i.meta.mtime(), i.meta.mtime_nsec() as u32),
        };
        let time = FileTime::from_unix_time(secs, nanos);
        let (uid, gid) = self.owner(i);
        // Files rbuild creates as root are root's already.
        let chown = self.as_root && (uid, gid) != (0, 0);
        if ft.is_file() {
            // The owner, mode and times through the open file, not its path again.
            let staged = self.staged.zip(i.context.as_ref()).and_then(|(s, e)| s.take(&e.path));
            let file = match staged {
                Some(copy) => move_content(&copy, &i.host, target)?,
                None => copy_content(&i.host, target)?,
            };
            if chown {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                    .map_err(Error::io("changing the owner of", target))?;
            }
            // After the owner: changing it clears the set-user-ID and set-group-ID bits.
            file.set_permissions(fs::Permissions::from_mode(self.mode(i)))
                .map_err(Error::io("setting the mode of", target))?;
            return filetime::set_file_handle_times(&file, Some(time), Some(time))
                .map_err(Error::io("setting the times of", target));
        }
        if !ft.is_symlink() {
            reporter
                .event(Event::Warning(format!("skipping the special file {}", i.host.display())));
            return Ok(());
        }
        let t = fs::read_link(&i.host).map_err(Error::io("reading the link", i.host.clone()))?;
        with_parent(target, || std::os::unix::fs::symlink(&t, target))
            .map_err(Error::io("creating", target))?;
        if chown {
            std::os::unix::fs::lchown(target, Some(uid), Some(gid))
                .map_err(Error::io("changing the owner of", target))?;
        }
        filetime::set_symlink_file_times(target, time, time)
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

/// Runs `make` (which creates `target`), and once more after making `target`'s parent
/// when it says that is missing: every file of a context directory finds its directory
/// made already, and a check per file was a path lookup more (each component again).
fn with_parent<T>(target: &Path, make: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    match make() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match target.parent() {
            Some(parent) if !parent.exists() => {
                fs::create_dir_all(parent)?;
                make()
            }
            _ => Err(e),
        },
        made => made,
    }
}

/// Copies a regular file's content to `target` (created, or emptied when it exists) and
/// returns it open.
fn copy_content(host: &Path, target: &Path) -> Result<fs::File> {
    let mut src = fs::File::open(host).map_err(Error::io("reading", host))?;
    let mut dst = with_parent(target, || {
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(target)
    })
    .map_err(Error::io("copying to", target))?;
    // File to file: the kernel copies (copy_file_range), as fs::copy does.
    std::io::copy(&mut src, &mut dst).map_err(Error::io("copying to", target))?;
    Ok(dst)
}

/// Moves the staged copy `copy` of `host` to `target` and returns it open; copies `host`
/// when the move fails.
fn move_content(copy: &Path, host: &Path, target: &Path) -> Result<fs::File> {
    if with_parent(target, || fs::rename(copy, target)).is_err() {
        return copy_content(host, target);
    }
    fs::File::open(target).map_err(Error::io("opening", target))
}

/// Places `items` below `dest_host` in the layer directory `root`. Targets first, in
/// order: a link an earlier item placed is followed inside the layer directory (as if it
/// were `/`), never out of it; archives are extracted then, over `view` (the image the
/// layer goes on; `step_error` makes the error of one that does not extract).
pub(super) fn place_all(
    rules: &PlaceRules<'_>,
    view: &RootfsView,
    root: &Path,
    dest_host: &Path,
    items: &[Item],
    reporter: &dyn Reporter,
    step_error: &dyn Fn(&str) -> Error,
) -> Result<()> {
    let mut targets: Vec<(PathBuf, &Item)> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    let mut links_placed = false;
    let mut unique = true;
    for i in items {
        let target = if i.dest_rel.as_os_str().is_empty() {
            dest_host.to_path_buf()
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
            let rel = target.strip_prefix(root).unwrap_or(&target);
            let lookup = |parts: &[std::ffi::OsString]| view.entry(parts);
            let below = crate::snapshot::Below {
                at: rel.components().map(|c| c.as_os_str().to_os_string()).collect(),
                entry: &lookup,
            };
            crate::snapshot::apply_layer_below(reader, root, &below, options).map_err(|e| {
                step_error(&format!("ADD failed: extracting {}: {e}", i.host.display()))
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
    place_targets(rules, &targets, unique, reporter)?;
    for (target, i) in targets.iter().rev() {
        if i.meta.is_dir() {
            rules.finish_dir(i, target)?;
        }
    }
    Ok(())
}

/// Creates the targets. When each is placed once: directories and links in order, then
/// the files' content on every core (their directories all exist by then). Else
/// strictly in order, each replacing the last.
fn place_targets(
    rules: &PlaceRules<'_>,
    targets: &[(PathBuf, &Item)],
    unique: bool,
    reporter: &dyn Reporter,
) -> Result<()> {
    if !unique {
        for (target, i) in targets {
            rules.replace(target, i)?;
            rules.place(i, target, reporter)?;
        }
        return Ok(());
    }
    for (target, i) in targets {
        if !i.meta.file_type().is_file() {
            rules.place(i, target, reporter)?;
        }
    }
    // Files hard-linked to each other at their source stay one file with several names,
    // as in BuildKit: the first of each group is copied, the others linked to it after.
    let mut first_of: std::collections::HashMap<(u64, u64), &Path> = Default::default();
    let mut links: Vec<(&Path, &Path)> = Vec::new();
    let mut files: Vec<&(PathBuf, &Item)> = Vec::new();
    for t in targets.iter().filter(|(_, i)| i.meta.file_type().is_file()) {
        let (target, i) = (t.0.as_path(), t.1);
        if i.meta.nlink() > 1 && i.mode_override.is_none() {
            let inode = (i.meta.dev(), i.meta.ino());
            if let Some(first) = first_of.get(&inode) {
                links.push((target, first));
                continue;
            }
            first_of.insert(inode, target);
        }
        files.push(t);
    }
    copy_files(rules, &files, reporter)?;
    for (target, first) in links {
        fs::hard_link(first, target).map_err(Error::io("linking", target))?;
    }
    Ok(())
}

/// Copies the files' content on every core (their directories all exist by then).
fn copy_files(
    rules: &PlaceRules<'_>,
    files: &[&(PathBuf, &Item)],
    reporter: &dyn Reporter,
) -> Result<()> {
    let threads = crate::cores().min(8);
    if files.len() < 64 || threads < 2 {
        return files.iter().try_for_each(|(target, i)| rules.place(i, target, reporter));
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().try_for_each(|(t, i)| rules.place(i, t, reporter)))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(Error::Panicked("a copying thread"))))
    })
}

/// Makes the destination's parent directories in the layer (with their mode and owner from
/// the image when they exist there, else 0755 and `owner`; their times come last, `restore_parent_times`) and
/// returns the host path of the destination directory
/// (of its parent when the destination is a file).
pub(crate) fn make_parents(
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
        // Directories made here belong to the step's owner, parents included, as
        // BuildKit makes them; existing ones keep what the image gives them.
        let (mode, uid, gid) = match &existing {
            Some((_, m)) => (m.mode() & 0o7777, m.uid(), m.gid()),
            None => {
                let (u, g) = owner.unwrap_or((0, 0));
                (0o755, u, g)
            }
        };
        fs::set_permissions(&host, fs::Permissions::from_mode(mode))
            .map_err(Error::io("setting the mode of", host.clone()))?;
        if crate::users::is_root() {
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
pub(crate) fn restore_parent_times(
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
