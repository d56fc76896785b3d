//! A read-only view of an image's file system as its stacked layer snapshots show it,
//! without mounting anything: the union overlayfs would make, computed by looking at
//! the snapshot directories top-down (whiteouts hide, opaque directories stop the search).
//!
//! COPY and ADD use it to resolve destinations (following the image's symbolic links as
//! if its root were `/`), to read `/etc/passwd` for `--chown`, and to read the files of
//! another stage for `COPY --from`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::snapshot::is_opaque_dir as is_opaque;

/// One layer's view of a path.
enum Seen {
    /// The layer has it.
    Found(PathBuf, Metadata),
    /// The layer hides it (whiteout, or a non-directory on the way).
    Hidden,
    /// The layer says nothing; `opaque` when a directory on the way hides the layers below.
    Absent { opaque: bool },
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether a snapshot hides `name` in the directory `dir` with a whiteout file
/// (`.wh.NAME`, a snapshot made where overlayfs's own whiteouts cannot be).
fn has_whiteout_file(dir: &Path, name: &std::ffi::OsStr) -> bool {
    let mut file = OsString::from(".wh.");
    file.push(name);
    fs::symlink_metadata(dir.join(file)).is_ok()
}

/// The merged file system of some layer snapshots.
#[derive(Debug, Clone, Default)]
pub struct RootfsView {
    /// Snapshot directories, lowest first.
    layers: Vec<PathBuf>,
}

/// The normal components of `path` (absolute or not), `..` resolved lexically at the root.
pub fn components(path: &str) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => out.push(p.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn join(parts: &[OsString]) -> PathBuf {
    parts.iter().collect()
}

impl RootfsView {
    /// A view of `layers` (snapshot directories, lowest first).
    pub fn new(layers: Vec<PathBuf>) -> Self {
        RootfsView { layers }
    }

    /// The snapshot directories, lowest first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    fn look(layer: &Path, parts: &[OsString]) -> Seen {
        let mut opaque = false;
        let mut here = layer.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            here.push(part);
            let Ok(m) = fs::symlink_metadata(&here) else {
                let parent = here.parent().unwrap_or(layer);
                if has_whiteout_file(parent, part) {
                    return Seen::Hidden;
                }
                return Seen::Absent { opaque };
            };
            if is_whiteout(&m) {
                return Seen::Hidden;
            }
            if i + 1 == parts.len() {
                return Seen::Found(here, m);
            }
            if !m.is_dir() {
                return Seen::Hidden;
            }
            if is_opaque(&here) {
                opaque = true;
            }
        }
        // The root itself.
        match fs::symlink_metadata(layer) {
            Ok(m) => Seen::Found(layer.to_path_buf(), m),
            Err(_) => Seen::Absent { opaque: false },
        }
    }

    /// The topmost entry at `parts` (no links followed), with its host path.
    pub fn entry(&self, parts: &[OsString]) -> Option<(PathBuf, Metadata)> {
        for layer in self.layers.iter().rev() {
            match Self::look(layer, parts) {
                Seen::Found(p, m) => return Some((p, m)),
                Seen::Hidden => return None,
                Seen::Absent { opaque: true } => return None,
                Seen::Absent { opaque: false } => {}
            }
        }
        None
    }

    /// Resolves `path` following every symbolic link on the way as if the view's root
    /// were `/`; the last component is followed too when `follow_last`. Components that
    /// do not exist are kept as they are.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Vec<OsString>> {
        crate::snapshot::path::follow_links(&components(path), follow_last, |resolved| {
            match self.entry(resolved) {
                Some((host, meta)) if meta.file_type().is_symlink() => {
                    fs::read_link(&host).map(Some).map_err(Error::io("reading the link", host))
                }
                _ => Ok(None),
            }
        })
    }

    /// Metadata of `path` after following links (`None` when it does not exist).
    pub fn stat(&self, path: &str) -> Result<Option<(PathBuf, Metadata)>> {
        let parts = self.resolve(path, true)?;
        Ok(self.entry(&parts))
    }

    /// Reads a file of the view (links followed), `None` when it does not exist.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.stat(path)? {
            Some((host, m)) if m.is_file() => {
                fs::read(&host).map(Some).map_err(Error::io("reading", host))
            }
            _ => Ok(None),
        }
    }

    /// The merged entries of the directory at `parts` (no links followed), by name.
    pub fn read_dir(&self, parts: &[OsString]) -> Result<BTreeMap<OsString, (PathBuf, Metadata)>> {
        let mut out: BTreeMap<OsString, (PathBuf, Metadata)> = BTreeMap::new();
        let mut hidden: std::collections::HashSet<OsString> = Default::default();
        for layer in self.layers.iter().rev() {
            let (dir, opaque) = match Self::look(layer, parts) {
                Seen::Found(p, m) if m.is_dir() => {
                    let opaque = !parts.is_empty() && is_opaque(&p);
                    (p, opaque)
                }
                Seen::Found(..) | Seen::Hidden | Seen::Absent { opaque: true } => break,
                Seen::Absent { opaque: false } => continue,
            };
            let entries = fs::read_dir(&dir).map_err(Error::io("listing", dir.clone()))?;
            for e in entries {
                let e = e.map_err(Error::io("listing", dir.clone()))?;
                let name = e.file_name();
                // Whiteout files: `.wh.NAME` hides NAME below; the opaque marker is read
                // by `is_opaque`.
                if let Some(n) = name.to_str().and_then(|n| n.strip_prefix(".wh.")) {
                    if n != ".wh..opq" {
                        hidden.insert(OsString::from(n));
                    }
                    continue;
                }
                if out.contains_key(&name) || hidden.contains(&name) {
                    continue;
                }
                let p = e.path();
                let m = fs::symlink_metadata(&p).map_err(Error::io("inspecting", p.clone()))?;
                if is_whiteout(&m) {
                    hidden.insert(name);
                } else {
                    out.insert(name, (p, m));
                }
            }
            if opaque {
                break;
            }
        }
        Ok(out)
    }

    /// Every entry under the directory `parts` (not included), depth first in name order,
    /// as (path relative to `parts`, host path, metadata).
    pub fn walk(&self, parts: &[OsString]) -> Result<Vec<(PathBuf, PathBuf, Metadata)>> {
        let mut out = Vec::new();
        let mut stack: Vec<(Vec<OsString>, PathBuf)> = vec![(parts.to_vec(), PathBuf::new())];
        while let Some((abs, rel)) = stack.pop() {
            let entries = self.read_dir(&abs)?;
            let mut dirs = Vec::new();
            for (name, (host, meta)) in entries {
                let r = rel.join(&name);
                if meta.is_dir() {
                    let mut a = abs.clone();
                    a.push(name);
                    dirs.push((a, r.clone()));
                }
                out.push((r, host, meta));
            }
            // Reverse, so the stack pops them in name order.
            stack.extend(dirs.into_iter().rev());
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The host path of `parts` in the topmost layer that has it, as a string for messages.
    pub fn display(parts: &[OsString]) -> String {
        format!("/{}", join(parts).display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_clean() {
        assert_eq!(components("/a/../b/./c"), vec![OsString::from("b"), "c".into()]);
        assert_eq!(components("../../x"), vec![OsString::from("x")]);
    }

    #[test]
    fn union_with_links_and_hiding() -> Result<()> {
        let t = tempfile::tempdir().map_err(Error::io("temp", "/tmp"))?;
        let l1 = t.path().join("l1");
        let l2 = t.path().join("l2");
        let io = |e| Error::io("setup", "/tmp")(e);
        fs::create_dir_all(l1.join("usr/lib")).map_err(io)?;
        fs::write(l1.join("usr/lib/a"), "a").map_err(io)?;
        fs::write(l1.join("usr/lib/b"), "b").map_err(io)?;
        std::os::unix::fs::symlink("usr/lib", l1.join("lib")).map_err(io)?;
        fs::create_dir_all(l2.join("usr/lib")).map_err(io)?;
        fs::write(l2.join("usr/lib/c"), "c").map_err(io)?;
        std::os::unix::fs::symlink("/etc/../usr/lib/../lib/a", l2.join("link")).map_err(io)?;
        let v = RootfsView::new(vec![l1, l2]);
        assert_eq!(v.read("/lib/a")?, Some(b"a".to_vec()), "through a relative link");
        assert_eq!(v.read("/link")?, Some(b"a".to_vec()), "absolute link with .. at the root");
        assert_eq!(v.read("/usr/lib/c")?, Some(b"c".to_vec()));
        let names: Vec<_> = v.read_dir(&components("/usr/lib"))?.into_keys().collect();
        assert_eq!(names, vec![OsString::from("a"), "b".into(), "c".into()]);
        assert_eq!(v.resolve("/lib/x/y", true)?, components("usr/lib/x/y"));
        let all: Vec<PathBuf> = v.walk(&components("/usr"))?.into_iter().map(|e| e.0).collect();
        assert_eq!(all, ["lib", "lib/a", "lib/b", "lib/c"].map(PathBuf::from));
        Ok(())
    }
}
