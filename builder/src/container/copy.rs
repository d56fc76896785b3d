//! `rbuild cp`: files between a container and the host, as `docker cp` copies them.
//! Out of a container, the files are read from its layers as overlayfs shows them (the
//! image's snapshots, then the container's own changes), resolving its links inside its
//! root. Into a running container, a tar of the host's files is unpacked by a process
//! that has joined the container's mount namespace: its root is the container's, so the
//! container's links cannot lead it onto the host's files. Copied-in files belong to the
//! container's root, as with `docker cp`.

use std::path::{Path, PathBuf};

use crate::engine::rootfs::RootfsView;
use crate::error::{Error, Result};
use crate::store::Store;

/// A container's file system as layers, lowest first: its image's snapshots, the layers
/// of its earlier runs (a store on overlayfs), its upper layer.
fn layers(store: &Store, rec: &super::Record) -> Result<Vec<PathBuf>> {
    let entry = crate::store::ImageEntry { manifest: rec.manifest.clone(), names: Vec::new() };
    let image = store.image(&entry)?;
    let dir = rec.dir(store);
    let mut layers = store.snapshots(&image)?;
    let gens = super::supervisor::earlier_runs(&dir)?;
    layers.extend(gens.into_iter().map(|(_, p)| p));
    let upper = dir.join("upper");
    std::fs::create_dir_all(&upper).map_err(Error::io("creating", upper.clone()))?;
    layers.push(upper);
    Ok(layers)
}

/// The last component of a path, for naming the copy (`/` names nothing).
fn base_name(path: &str) -> Option<String> {
    path.trim_end_matches("/.")
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != ".")
        .map(String::from)
}

/// Copies `src` out of container `what` to `dest` on the host: into `dest` when it is a
/// directory (its contents only when `src` ends with `/.`), else as `dest`.
pub fn copy_from(store: &Store, what: &str, src: &str, dest: &Path) -> Result<()> {
    let rec = super::record::find(store, what)?;
    let _in_use = store.in_use()?;
    let view = RootfsView::new(layers(store, &rec)?);
    let src_abs = if src.starts_with('/') { src.to_string() } else { format!("/{src}") };
    let parts = view.resolve(&src_abs, false)?;
    let Some((host, meta)) = view.entry(&parts) else {
        return Err(Error::InvalidOption(format!(
            "no such file or directory in container {}: {src}",
            rec.name
        )));
    };
    let contents_only = src.ends_with("/.");
    let target = match (dest.is_dir(), base_name(src)) {
        (true, _) if contents_only => dest.to_path_buf(),
        (true, Some(name)) => dest.join(name),
        _ => dest.to_path_buf(),
    };
    if meta.is_dir() {
        if !target.is_dir() {
            std::fs::create_dir(&target).map_err(Error::io("creating", target.clone()))?;
        }
        let entries = view.walk(&parts)?;
        crate::snapshot::stack::copy_walked(&entries, &target, Some(&meta))
    } else {
        let (parent, name) = match (target.parent(), target.file_name()) {
            (Some(p), Some(n)) => {
                (if p.as_os_str().is_empty() { Path::new(".") } else { p }, PathBuf::from(n))
            }
            _ => return Err(Error::InvalidOption(format!("cannot copy to {}", dest.display()))),
        };
        if target.exists() {
            std::fs::remove_file(&target).map_err(Error::io("replacing", target.clone()))?;
        }
        crate::snapshot::stack::copy_walked(&[(name, host, meta)], parent, None)
    }
}

/// Copies `src` from the host into running container `what` at `dest`: into `dest` when
/// it is a directory there (the contents only when `src` ends with `/.`), else as `dest`
/// (its folder must exist).
pub fn copy_into(store: &Store, what: &str, src: &Path, dest: &str) -> Result<()> {
    let rec = super::record::find(store, what)?;
    let dir = rec.dir(store);
    let init = std::fs::read_to_string(dir.join("init.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    let running = init.filter(|_| super::record::running(store, &rec.id));
    let meta = std::fs::symlink_metadata(src).map_err(Error::io("reading", src.to_path_buf()))?;
    let src_text = src.to_string_lossy().to_string();
    // The host's files as a tar, in this process's folder of the store.
    let tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())
        .map_err(Error::io("creating a file in", store.tmp_dir()))?;
    {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Complete);
        let io = |e: std::io::Error| Error::io("archiving", src.to_path_buf())(e);
        if meta.is_dir() {
            tar.append_dir_all(".", src).map_err(io)?;
        } else {
            tar.append_path_with_name(src, "file").map_err(io)?;
        }
        tar.into_inner().and_then(|mut w| std::io::Write::flush(&mut w)).map_err(io)?;
    }
    let archive = tmp.reopen().map_err(Error::io("reading", tmp.path().to_path_buf()))?;
    let dest_abs = if dest.starts_with('/') { dest.to_string() } else { format!("/{dest}") };
    let contents_only = src_text.ends_with("/.");
    let name = base_name(&src_text);
    let is_dir = meta.is_dir();
    let Some(init) = running else {
        let _lock = super::record::hold(store, &rec.id)?;
        let target = Target { dest: &dest_abs, name: name.as_deref(), contents_only, is_dir };
        return copy_into_layer(store, &rec, target, archive);
    };
    crate::sandbox::in_sandbox_root(init, move || {
        // Not the host's owners: the files belong to the container's root (this process).
        let options = crate::snapshot::ApplyOptions {
            preserve_owners: false,
            whiteouts: crate::snapshot::WhiteoutMode::Remove,
        };
        let dest_path = Path::new(&dest_abs);
        let target = match (dest_path.is_dir(), name) {
            (true, _) if contents_only => dest_path.to_path_buf(),
            (true, Some(n)) => dest_path.join(n),
            _ => dest_path.to_path_buf(),
        };
        if is_dir {
            if !target.is_dir() {
                std::fs::create_dir(&target).map_err(Error::io("creating", target.clone()))?;
            }
            crate::snapshot::apply_layer(archive, &target, options).map(|_| ())
        } else {
            let parent = target.parent().unwrap_or(Path::new("/"));
            let unpack = tempfile::tempdir_in(parent)
                .map_err(Error::io("creating a folder in", parent.to_path_buf()))?;
            crate::snapshot::apply_layer(archive, unpack.path(), options)?;
            std::fs::rename(unpack.path().join("file"), &target)
                .map_err(Error::io("writing", target.clone()))
        }
    })
}

/// Where a copy into a container goes.
struct Target<'a> {
    /// The destination as given (absolute).
    dest: &'a str,
    /// The source's name.
    name: Option<&'a str>,
    /// Only the source folder's contents (`SRC/.`).
    contents_only: bool,
    /// The source is a folder.
    is_dir: bool,
}

/// Into a stopped container: the files go into its upper layer, where overlayfs will show
/// them over the image's, under the destination resolved through its layers (its links
/// followed inside its root). The folders on the way are made in the upper layer with the
/// metadata the layers show; a whiteout there for the target goes. The container's lock
/// is held meanwhile, so it cannot start.
fn copy_into_layer(
    store: &Store,
    rec: &super::Record,
    target: Target<'_>,
    archive: std::fs::File,
) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let all = layers(store, rec)?;
    let upper = all.last().cloned().unwrap_or_else(|| rec.dir(store).join("upper"));
    let view = RootfsView::new(all);
    let mut parts = view.resolve(target.dest, true)?;
    let dest_is_dir = view.entry(&parts).is_some_and(|(_, m)| m.is_dir());
    match (dest_is_dir, target.name) {
        (true, _) if target.contents_only => {}
        (true, Some(n)) => parts.push(n.into()),
        _ => {}
    }
    let Some((last, parent)) = parts.split_last() else {
        return Err(Error::InvalidOption("cannot copy over the container's root".into()));
    };
    if !parent.is_empty() && !view.entry(parent).is_some_and(|(_, m)| m.is_dir()) {
        return Err(Error::InvalidOption(format!(
            "no such directory in container {}: {}",
            rec.name,
            RootfsView::display(parent)
        )));
    }
    let mut host = upper.clone();
    for i in 0..parent.len() {
        host.push(&parent[i]);
        if !std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_file(&host);
            std::fs::create_dir(&host).map_err(Error::io("creating", host.clone()))?;
            if let Some((_, meta)) = view.entry(&parent[..=i]) {
                crate::snapshot::stack::set_meta(&host, &meta)?;
            }
        }
    }
    let dest = host.join(last);
    if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_char_device()) {
        std::fs::remove_file(&dest).map_err(Error::io("removing", dest.clone()))?;
    }
    let mut whiteout = std::ffi::OsString::from(".wh.");
    whiteout.push(last);
    let _ = std::fs::remove_file(host.join(whiteout));
    let options = crate::snapshot::ApplyOptions {
        preserve_owners: false,
        whiteouts: crate::snapshot::WhiteoutMode::Remove,
    };
    if target.is_dir {
        if !dest.is_dir() {
            std::fs::create_dir(&dest).map_err(Error::io("creating", dest.clone()))?;
        }
        crate::snapshot::apply_layer(archive, &dest, options).map(|_| ())
    } else {
        let unpack =
            tempfile::tempdir_in(&host).map_err(Error::io("creating a folder in", host.clone()))?;
        crate::snapshot::apply_layer(archive, unpack.path(), options)?;
        std::fs::rename(unpack.path().join("file"), &dest)
            .map_err(Error::io("writing", dest.clone()))
    }
}
