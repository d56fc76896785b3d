//! Layer snapshots stacked by copying, where overlayfs cannot stack them (a store on
//! overlayfs itself, or RUN in a container's own root file system): [`materialize`] makes
//! a directory hold the union of some snapshots, [`Scan`] records what a tree holds, and
//! [`Scan::changes_into`] writes what changed since, as a snapshot (an overlayfs upper
//! directory's layout) that the layer writer reads.
//!
//! Written here rather than taken from a crate: no crate applies overlayfs snapshots (with
//! both kinds of whiteouts) or records a tree's changes in that layout.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::WhiteoutMode;
use crate::error::{Error, Result};

/// Paths (relative to the root) that stacking and scanning leave alone: never removed,
/// written or looked into (mount points, rbuild's own files ...), with everything below
/// them.
#[derive(Debug, Clone, Default)]
pub struct KeepList {
    paths: Vec<PathBuf>,
}

impl KeepList {
    /// Keeps `paths` (relative to the root).
    pub fn new(paths: Vec<PathBuf>) -> KeepList {
        KeepList { paths }
    }

    /// Whether `rel` is kept (it or a directory above it is in the list).
    pub fn keeps(&self, rel: &Path) -> bool {
        self.paths.iter().any(|p| rel.starts_with(p))
    }

    /// Whether a kept path lies below the directory `rel`.
    fn kept_below(&self, rel: &Path) -> bool {
        self.paths.iter().any(|p| p.starts_with(rel) && p != rel)
    }
}

type Keep<'a> = &'a KeepList;

fn is_device_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

use super::apply::{record_opaque, record_whiteout, remove_any as remove};

/// Empties the directory `dir` (relative path `rel` below the root), but for kept paths.
fn clear(dir: &Path, rel: &Path, keep: Keep<'_>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let r = rel.join(e.file_name());
        if keep.keeps(&r) {
            continue;
        }
        let p = e.path();
        match fs::symlink_metadata(&p) {
            // A directory that holds kept paths is emptied around them.
            Ok(m) if m.is_dir() && keep.kept_below(&r) => clear(&p, &r, keep)?,
            _ => remove(&p)?,
        }
    }
    Ok(())
}

/// Makes `target` hold the union of `snapshots` (lowest first), as overlayfs would show
/// them: first emptied (kept paths stay), then each snapshot applied in turn.
pub fn materialize(snapshots: &[PathBuf], target: &Path, keep: Keep<'_>) -> Result<()> {
    clear(target, Path::new(""), keep)?;
    for s in snapshots {
        apply_snapshot(s, target, keep)?;
    }
    Ok(())
}

/// Applies one snapshot onto `target`: its whiteouts remove, its opaque directories empty
/// what is below them first, its entries replace what is there (directories merge).
pub fn apply_snapshot(snapshot: &Path, target: &Path, keep: Keep<'_>) -> Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dir_meta: Vec<(PathBuf, Metadata)> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src_dir = snapshot.join(&rel);
        let dst_dir = target.join(&rel);
        if !rel.as_os_str().is_empty() && super::is_opaque_dir(&src_dir) {
            clear(&dst_dir, &rel, keep)?;
        }
        let entries = fs::read_dir(&src_dir).map_err(Error::io("listing", src_dir.clone()))?;
        for e in entries {
            let e = e.map_err(Error::io("listing", src_dir.clone()))?;
            let name = e.file_name();
            if name == super::OPAQUE_FILE {
                continue;
            }
            if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(".wh.")) {
                if !keep.keeps(&rel.join(hidden)) {
                    remove(&dst_dir.join(hidden))?;
                }
                continue;
            }
            let r = rel.join(&name);
            if keep.keeps(&r) {
                continue;
            }
            let src = e.path();
            let m = fs::symlink_metadata(&src).map_err(Error::io("inspecting", src.clone()))?;
            let dst = dst_dir.join(&name);
            if is_device_whiteout(&m) {
                remove(&dst)?;
                continue;
            }
            if m.is_dir() {
                match fs::symlink_metadata(&dst) {
                    Ok(d) if d.is_dir() => {}
                    Ok(_) => {
                        remove(&dst)?;
                        fs::create_dir(&dst).map_err(Error::io("creating", dst.clone()))?;
                    }
                    Err(_) => fs::create_dir(&dst).map_err(Error::io("creating", dst.clone()))?,
                }
                dir_meta.push((dst, m));
                stack.push(r);
                continue;
            }
            remove(&dst)?;
            copy_entry(&src, &dst, &m, &mut links)?;
        }
    }
    // Directories' owners, modes and times once their content is in, deepest first.
    dir_meta.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (dst, m) in dir_meta {
        set_meta(&dst, &m)?;
    }
    Ok(())
}

/// Copies a tree listed as a view's walk gives it (path relative to the tree, host path,
/// metadata; parents before children) into the existing directory `dst`, with owners,
/// modes, times and hard links; `dst` itself gets `top`'s metadata when given.
pub(crate) fn copy_walked(
    entries: &[(PathBuf, PathBuf, Metadata)],
    dst: &Path,
    top: Option<&Metadata>,
) -> Result<()> {
    let mut links = HashMap::new();
    let mut dirs = Vec::new();
    for (rel, host, meta) in entries {
        let target = dst.join(rel);
        if meta.is_dir() {
            // An existing directory is merged into.
            if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                fs::create_dir(&target).map_err(Error::io("creating", target.clone()))?;
            }
            dirs.push((target, meta));
        } else {
            copy_entry(host, &target, meta, &mut links)?;
        }
    }
    // Directories last, deepest first: their times are not moved by what goes in them.
    for (dir, meta) in dirs.iter().rev() {
        set_meta(dir, meta)?;
    }
    if let Some(top) = top {
        set_meta(dst, top)?;
    }
    Ok(())
}

/// Copies a file, link or special file to `dst` (nothing there) with its owner, mode,
/// times and file capabilities; files hard-linked at the source stay linked.
fn copy_entry(
    src: &Path,
    dst: &Path,
    m: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let ft = m.file_type();
    if ft.is_file() && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            return fs::hard_link(first, dst).map_err(Error::io("linking", dst));
        }
        links.insert((m.dev(), m.ino()), dst.to_path_buf());
    }
    if ft.is_symlink() {
        let t = fs::read_link(src).map_err(Error::io("reading the link", src))?;
        std::os::unix::fs::symlink(&t, dst).map_err(Error::io("creating", dst))?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(Error::io("copying to", dst))?;
        if let Ok(Some(cap)) = xattr::get(src, "security.capability") {
            let _ = xattr::set(dst, "security.capability", &cap);
        }
    } else {
        let kind = if ft.is_char_device() {
            crate::sandbox::SpecialFile::Char
        } else if ft.is_block_device() {
            crate::sandbox::SpecialFile::Block
        } else {
            crate::sandbox::SpecialFile::Fifo
        };
        let rdev = m.rdev();
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        crate::sandbox::make_special(dst, kind, m.mode() & 0o7777, major, minor)?;
    }
    set_meta(dst, m)
}

/// Gives `dst` the owner (as root), mode and times of `m`.
pub(crate) fn set_meta(dst: &Path, m: &Metadata) -> Result<()> {
    if crate::users::is_root() {
        std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))
            .map_err(Error::io("changing the owner of", dst))?;
    }
    if !m.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(Error::io("setting the mode of", dst))?;
    }
    let t = FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
    filetime::set_symlink_file_times(dst, t, t).map_err(Error::io("setting the times of", dst))
}

/// What one entry was: enough to tell that it changed (its inode and change time move
/// with any change of content or metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    rdev: u64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            rdev: m.rdev(),
        }
    }
}

/// What a tree held, path by path (kept paths left out).
#[derive(Debug, Default)]
pub struct Scan {
    entries: HashMap<PathBuf, Stamp>,
}

impl Scan {
    /// Records every entry below `root` but kept paths (and what is below them).
    pub fn take(root: &Path, keep: Keep<'_>) -> Result<Scan> {
        let mut entries = HashMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            let Ok(list) = fs::read_dir(&dir) else { continue };
            for e in list.flatten() {
                let r = rel.join(e.file_name());
                if keep.keeps(&r) {
                    continue;
                }
                let Ok(m) = fs::symlink_metadata(e.path()) else { continue };
                if m.is_dir() {
                    stack.push(r.clone());
                }
                entries.insert(r, Stamp::of(&m));
            }
        }
        Ok(Scan { entries })
    }

    /// Writes into `upper` what changed below `root` since this scan, as an overlayfs
    /// upper directory has it: added and changed entries (with their parent directories),
    /// a whiteout for each removed path (`whiteouts` says which kind), an opaque marker
    /// on a directory that replaced another. Returns the scan of the tree now.
    pub fn changes_into(
        &self,
        root: &Path,
        keep: Keep<'_>,
        upper: &Path,
        whiteouts: WhiteoutMode,
    ) -> Result<Scan> {
        let now = Scan::take(root, keep)?;
        let mut changed: Vec<&PathBuf> = now
            .entries
            .iter()
            .filter(|(p, s)| self.entries.get(*p) != Some(*s))
            .map(|(p, _)| p)
            .collect();
        changed.sort();
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut made: HashSet<PathBuf> = HashSet::new();
        let mut dirs: Vec<(PathBuf, Metadata)> = Vec::new();
        for rel in &changed {
            let src = root.join(rel);
            let Ok(m) = fs::symlink_metadata(&src) else { continue };
            make_parents(root, upper, rel, &mut made, &mut dirs)?;
            let dst = upper.join(rel);
            if m.is_dir() {
                if made.insert(rel.to_path_buf()) {
                    fs::create_dir(&dst).map_err(Error::io("creating", dst.clone()))?;
                    dirs.push((dst.clone(), m.clone()));
                }
                // A directory where there was another entry (or another directory):
                // nothing of the layers below shows through it.
                let before = self.entries.get(*rel);
                if before.is_some_and(|b| b.ino != m.ino() || b.dev != m.dev()) {
                    record_opaque(&dst, whiteouts)?;
                }
            } else {
                copy_entry(&src, &dst, &m, &mut links)?;
            }
        }
        // Whiteouts: removed paths whose parent is still the same directory (what was
        // below a removed directory goes with it).
        let mut removed: Vec<&PathBuf> =
            self.entries.keys().filter(|p| !now.entries.contains_key(*p)).collect();
        removed.sort();
        for rel in removed {
            // A path kept now (a mount target of this step) was hidden, not removed.
            if keep.keeps(rel) {
                continue;
            }
            let parent = rel.parent().unwrap_or(Path::new(""));
            let parent_same = parent.as_os_str().is_empty()
                || (now.entries.get(parent).map(|s| (s.dev, s.ino))
                    == self.entries.get(parent).map(|s| (s.dev, s.ino)));
            if !parent_same {
                continue;
            }
            make_parents(root, upper, rel, &mut made, &mut dirs)?;
            record_whiteout(&upper.join(rel), whiteouts)?;
        }
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (dst, m) in dirs {
            set_meta(&dst, &m)?;
        }
        Ok(now)
    }
}

/// Makes the parents of `rel` in `upper` as `root` has them (metadata set at the end).
fn make_parents(
    root: &Path,
    upper: &Path,
    rel: &Path,
    made: &mut HashSet<PathBuf>,
    dirs: &mut Vec<(PathBuf, Metadata)>,
) -> Result<()> {
    let mut parts: Vec<OsString> = Vec::new();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            parts.push(c.as_os_str().to_os_string());
            let r: PathBuf = parts.iter().collect();
            if made.contains(&r) {
                continue;
            }
            let dst = upper.join(&r);
            fs::create_dir_all(&dst).map_err(Error::io("creating", dst.clone()))?;
            if let Ok(m) = fs::symlink_metadata(root.join(&r)) {
                dirs.push((dst, m));
            }
            made.insert(r);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    #[test]
    fn stacks_snapshots_and_records_changes_as_a_snapshot() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, root, upper) =
            (t.path().join("a"), t.path().join("b"), t.path().join("root"), t.path().join("up"));
        write(&a.join("etc/passwd"), "root");
        write(&a.join("gone/x"), "x");
        write(&a.join("opq/old"), "old");
        write(&b.join(".wh.gone"), "");
        write(&b.join("opq/new"), "new");
        write(&b.join("opq").join(crate::snapshot::OPAQUE_FILE), "");
        write(&root.join("kept/k"), "k");
        write(&root.join("stale"), "s");
        let keep = KeepList::new(vec![PathBuf::from("kept")]);
        materialize(&[a, b], &root, &keep).unwrap();
        assert_eq!(fs::read_to_string(root.join("etc/passwd")).unwrap(), "root");
        assert!(!root.join("gone").exists() && !root.join("stale").exists());
        assert!(!root.join("opq/old").exists() && root.join("opq/new").exists());
        assert_eq!(fs::read_to_string(root.join("kept/k")).unwrap(), "k");

        let scan = Scan::take(&root, &keep).unwrap();
        write(&root.join("etc/new"), "n");
        fs::remove_file(root.join("etc/passwd")).unwrap();
        fs::remove_dir_all(root.join("opq")).unwrap();
        write(&root.join("kept/ignored"), "i");
        fs::create_dir_all(&upper).unwrap();
        scan.changes_into(&root, &keep, &upper, WhiteoutMode::Files).unwrap();
        assert_eq!(fs::read_to_string(upper.join("etc/new")).unwrap(), "n");
        assert!(upper.join("etc/.wh.passwd").exists());
        assert!(upper.join(".wh.opq").exists());
        assert!(!upper.join("kept").exists());
        let changes = crate::snapshot::overlay_changes(&upper).unwrap();
        assert!(changes.contains(&crate::snapshot::Change::Delete("etc/passwd".into())));
        assert!(changes.contains(&crate::snapshot::Change::Add("etc/new".into())));
    }

    #[test]
    fn keeps_the_parents_of_kept_paths() {
        let keep = KeepList::new(vec![PathBuf::from("usr/local/rbuild")]);
        assert!(keep.keeps(Path::new("usr/local/rbuild/bin")));
        assert!(!keep.keeps(Path::new("usr/local/bin")));
        assert!(keep.kept_below(Path::new("usr/local")) && keep.kept_below(Path::new("")));
        assert!(!keep.kept_below(Path::new("etc")));
    }
}
