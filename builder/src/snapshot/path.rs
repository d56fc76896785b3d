//! Resolving archive paths inside a root directory, never outside it.
//!
//! Written here rather than taken from a crate: the rules are the container ones, not the
//! host's. A symbolic link met on the way is followed as if the root were `/` (an absolute
//! target starts again at the root, `..` stops at the root), as the image's own processes
//! will see it, so a merged-`/usr` base (`lib -> usr/lib`) works and a planted link to
//! `/etc` lands in the image's `/etc`, not the host's.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Links followed while resolving one path before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The normal components of an archive path, or an error when it climbs out with `..`.
/// A leading `/` is ignored: archive paths are relative to the layer's root.
pub(crate) fn archive_components(path: &Path) -> Result<Vec<OsString>> {
    let mut parts: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_os_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(Error::UnsafeEntry {
                        path: path.display().to_string(),
                        reason: "the path climbs out of the layer with ..".into(),
                    });
                }
            }
        }
    }
    Ok(parts)
}

/// Follows the symbolic links in `parts` as if the root were `/`: an absolute target
/// starts again at the root, `..` stops there, at most [`MAX_LINKS`] links. `link_at`
/// says whether the path resolved so far is a link, and its target; components that do
/// not exist are kept as they are. The last component is followed only with
/// `follow_last`. This is the one resolver of container paths: over a directory
/// ([`resolve_in_root`]) and over a stack of layers (the engine's `RootfsView`).
pub(crate) fn follow_links(
    parts: &[OsString],
    follow_last: bool,
    mut link_at: impl FnMut(&[OsString]) -> Result<Option<PathBuf>>,
) -> Result<Vec<OsString>> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = parts.iter().rev().cloned().collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part.is_empty() {
            continue;
        }
        resolved.push(part);
        if pending.is_empty() && !follow_last {
            break;
        }
        let Some(target) = link_at(&resolved)? else { continue };
        links += 1;
        if links > MAX_LINKS {
            return Err(Error::UnsafeEntry {
                path: PathBuf::from_iter(parts).display().to_string(),
                reason: "too many levels of symbolic links".into(),
            });
        }
        resolved.pop();
        if target.is_absolute() {
            resolved.clear();
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(p) => pending.push(p.to_os_string()),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(resolved)
}

/// Resolves `parts` under `root`, following every symbolic link on the way as if `root`
/// were `/`. Components that do not exist yet are taken as they are. Returns a path that
/// is `root` or below it.
pub(crate) fn resolve_in_root(root: &Path, parts: &[OsString]) -> Result<PathBuf> {
    let host = |resolved: &[OsString]| -> PathBuf {
        std::iter::once(root.as_os_str().to_os_string()).chain(resolved.iter().cloned()).collect()
    };
    let resolved = follow_links(parts, true, |resolved| {
        let candidate = host(resolved);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(&candidate)
                .map(Some)
                .map_err(Error::io("reading the link", candidate.clone())),
            _ => Ok(None),
        }
    })?;
    Ok(host(&resolved))
}

/// Where an entry goes: its parent resolved inside `root` (links followed), and its own
/// name appended unresolved (the entry replaces whatever is there, link or not).
pub(crate) fn entry_destination(root: &Path, path: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut parts = archive_components(path)?;
    let Some(name) = parts.pop() else {
        return Ok((root.to_path_buf(), root.to_path_buf()));
    };
    let parent = resolve_in_root(root, &parts)?;
    let dest = parent.join(name);
    Ok((parent, dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/etc", root.join("evil")).unwrap();
        symlink("../../../../../../..", root.join("up")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let (_, d) = entry_destination(root, Path::new("lib/x.so")).unwrap();
        assert_eq!(d, root.join("usr/lib/x.so"));
        let (_, d) = entry_destination(root, Path::new("/evil/passwd")).unwrap();
        assert_eq!(d, root.join("etc/passwd"));
        let (_, d) = entry_destination(root, Path::new("up/tmp/x")).unwrap();
        assert_eq!(d, root.join("tmp/x"));
        let (_, d) = entry_destination(root, Path::new("evil")).unwrap();
        assert_eq!(d, root.join("evil"), "the last component is not followed");
        assert!(entry_destination(root, Path::new("loop1/x")).is_err());
        assert!(entry_destination(root, Path::new("../outside")).is_err());
        assert!(entry_destination(root, Path::new("a/../../outside")).is_err());
        let (_, d) = entry_destination(root, Path::new("a/../b")).unwrap();
        assert_eq!(d, root.join("b"));
    }
}
