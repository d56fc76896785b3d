//! Creating layers from file system changes: by comparing two trees, or from an overlayfs
//! upper directory. Tars are deterministic: entries sorted by path, headers normalised
//! (no user or group names, fixed format), times clamped to `SOURCE_DATE_EPOCH` when set.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use oci_spec::image::{Digest, MediaType};
use xattr::FileExt;

use crate::digest::HashingWriter;
use crate::error::{Error, Result};

/// One change of a layer, relative to the layer's root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The path was added or changed: its current state goes into the layer.
    Add(PathBuf),
    /// The path was removed: a whiteout.
    Delete(PathBuf),
    /// The directory's lower content is hidden: an opaque marker (the directory itself is
    /// also added).
    Opaque(PathBuf),
}

impl Change {
    /// The path the change is about, relative to the root.
    pub fn path(&self) -> &Path {
        match self {
            Change::Add(p) | Change::Delete(p) | Change::Opaque(p) => p,
        }
    }
}

/// How layer blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip at a level from 0 to 9, on every core (see [`super::ParallelGzip`]).
    Gzip(u32),
    /// zstd at a level from 1 to 19.
    Zstd(i32),
}

/// Options for writing a layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Clamp every time in the tar to at most this (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// The host user and group that stand for root in the layer: a rootless build's
    /// files belong to its caller on the host, and to root in the image.
    pub root_ids: Option<(u32, u32)>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok());
        LayerOptions { compression: Compression::Gzip(6), source_date_epoch: epoch, root_ids: None }
    }
}

/// A written layer: the blob's digest and size, and the diff ID (digest of the tar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The layer's media type.
    pub media_type: MediaType,
}

/// The error of writing a layer's tar.
fn writing_layer(e: io::Error) -> Error {
    Error::Io { action: "writing", path: "the layer".into(), source: e }
}

fn meta(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).map_err(Error::io("inspecting", path))
}

/// Names in a directory, sorted bytewise.
fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(Error::io("listing", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(Error::io("listing", dir))?;
    names.sort();
    Ok(names)
}

/// Entries of a directory with their metadata (each from `fstatat` in the open directory,
/// not by its whole path), sorted by name bytewise.
fn sorted_entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, Metadata)>> {
    let mut entries = fs::read_dir(dir)
        .map_err(Error::io("listing", dir))?
        .map(|e| {
            let e = e.map_err(Error::io("listing", dir))?;
            let m = e.metadata().map_err(Error::io("inspecting", e.path()))?;
            Ok((e.file_name(), m))
        })
        .collect::<Result<Vec<_>>>()?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn capability(path: &Path) -> Option<Vec<u8>> {
    xattr::get(path, "security.capability").ok().flatten()
}

/// Whether two entries differ in anything a layer records.
fn differs(a_path: &Path, a: &Metadata, b_path: &Path, b: &Metadata) -> Result<bool> {
    let kind = |m: &Metadata| m.mode() & 0o170000;
    if kind(a) != kind(b) || a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() {
        return Ok(true);
    }
    if a.file_type().is_symlink() {
        let ta = fs::read_link(a_path).map_err(Error::io("reading the link", a_path))?;
        let tb = fs::read_link(b_path).map_err(Error::io("reading the link", b_path))?;
        return Ok(ta != tb);
    }
    if a.is_dir() {
        return Ok(a.mtime() != b.mtime() || capability(a_path) != capability(b_path));
    }
    if a.file_type().is_char_device() || a.file_type().is_block_device() {
        return Ok(a.rdev() != b.rdev());
    }
    Ok(a.size() != b.size()
        || a.mtime() != b.mtime()
        || a.mtime_nsec() != b.mtime_nsec()
        || capability(a_path) != capability(b_path))
}

/// The changes that turn the tree `lower` into the tree `upper`, by comparing them
/// (for when overlayfs is not available). Files whose type, mode, owner, size, time and
/// capabilities are all equal count as unchanged.
pub fn diff_trees(lower: &Path, upper: &Path) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (ldir, udir) = (lower.join(&rel), upper.join(&rel));
        let lower_names = if ldir.is_dir() && !meta(&ldir)?.file_type().is_symlink() {
            sorted_names(&ldir)?
        } else {
            Vec::new()
        };
        let upper_names = sorted_names(&udir)?;
        for name in &lower_names {
            if !upper_names.contains(name) {
                changes.push(Change::Delete(rel.join(name)));
            }
        }
        for name in upper_names {
            let r = rel.join(&name);
            let (lp, up) = (lower.join(&r), upper.join(&r));
            let um = meta(&up)?;
            match fs::symlink_metadata(&lp) {
                Ok(lm) => {
                    if differs(&lp, &lm, &up, &um)? {
                        changes.push(Change::Add(r.clone()));
                    }
                    if um.is_dir() {
                        if !lm.is_dir() {
                            // A file became a directory: everything under it is new.
                            add_all(upper, &r, &mut changes)?;
                        } else {
                            stack.push(r);
                        }
                    }
                }
                Err(_) => {
                    changes.push(Change::Add(r.clone()));
                    if um.is_dir() {
                        add_all(upper, &r, &mut changes)?;
                    }
                }
            }
        }
    }
    Ok(changes)
}

/// Adds every path under `rel` (not `rel` itself).
fn add_all(root: &Path, rel: &Path, changes: &mut Vec<Change>) -> Result<()> {
    let mut stack = vec![rel.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for name in sorted_names(&root.join(&dir))? {
            let r = dir.join(name);
            if meta(&root.join(&r))?.is_dir() {
                stack.push(r.clone());
            }
            changes.push(Change::Add(r));
        }
    }
    Ok(())
}

/// The changes recorded in an overlayfs upper directory (or a snapshot): whiteout devices
/// (character device 0/0) and `.wh.NAME` files become deletions, directories marked
/// opaque (`trusted.overlay.opaque` or `user.overlay.opaque` set to `y`, or holding a
/// `.wh..wh..opq` file) become opaque markers, everything else is added. (The files are
/// the whiteouts of a snapshot on a file system where overlayfs's own cannot be made,
/// see [`super::WhiteoutMode::Files`].)
pub fn overlay_changes(upper: &Path) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for (name, m) in sorted_entries(&upper.join(&rel))? {
            let r = rel.join(&name);
            let p = upper.join(&r);
            if name == OPAQUE_FILE {
                changes.push(Change::Opaque(rel.clone()));
                continue;
            }
            if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(".wh.")) {
                changes.push(Change::Delete(rel.join(hidden)));
                continue;
            }
            if m.file_type().is_char_device() && m.rdev() == 0 {
                changes.push(Change::Delete(r));
                continue;
            }
            changes.push(Change::Add(r.clone()));
            if m.is_dir() {
                let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                    .iter()
                    .any(|k| xattr::get(&p, k).ok().flatten().is_some_and(|v| v == b"y"));
                if opaque {
                    changes.push(Change::Opaque(r.clone()));
                }
                stack.push(r);
            }
        }
    }
    Ok(changes)
}

/// The name of the file that marks its directory opaque in a snapshot with whiteout
/// files (as in a layer tar).
pub const OPAQUE_FILE: &str = ".wh..wh..opq";

/// Whether a snapshot's directory is opaque (hides the layers below it): overlayfs's
/// attribute (`trusted.` or `user.overlay.opaque`) or the marker file.
pub fn is_opaque_dir(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|k| xattr::get(dir, k).ok().flatten().is_some_and(|v| v == b"y"))
        || dir.join(OPAQUE_FILE).exists()
}

/// Writes the tar of `changes` (contents read from `root`) to `out`, owners as they are
/// (see [`LayerOptions::root_ids`] for a rootless build's). Returns the diff ID (the tar's
/// digest) and the tar's size.
pub fn write_tar(
    root: &Path,
    changes: &[Change],
    epoch: Option<u64>,
    root_ids: Option<(u32, u32)>,
    out: impl Write,
) -> Result<(Digest, u64)> {
    let hashing = tar_into(root, changes, epoch, root_ids, HashingWriter::new(out))?;
    let (mut out, diff_id, size) = hashing.finish();
    out.flush().map_err(writing_layer)?;
    Ok((diff_id, size))
}

/// Writes the tar of `changes` as [`write_tar`] does, unhashed, to `out`; returns `out`.
pub fn tar_into<W: LayerSink>(
    root: &Path,
    changes: &[Change],
    epoch: Option<u64>,
    root_ids: Option<(u32, u32)>,
    out: W,
) -> Result<W> {
    // Sort by path, bytewise, so that equal changes give an equal tar.
    let mut ordered: BTreeMap<(PathBuf, u8), &Change> = BTreeMap::new();
    for c in changes {
        let rank = match c {
            Change::Add(_) => 0,
            Change::Opaque(_) => 1,
            Change::Delete(_) => 2,
        };
        let key = match c {
            Change::Delete(p) => p.with_file_name(format!(
                ".wh.{}",
                p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            )),
            Change::Opaque(p) => p.join(".wh..wh..opq"),
            Change::Add(p) => p.clone(),
        };
        ordered.insert((key, rank), c);
    }
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let clamp = |t: i64| -> u64 {
        let t = t.max(0) as u64;
        epoch.map_or(t, |e| t.min(e))
    };
    let mut entries = Entries { root, cursor: Vec::new(), inodes: HashMap::new(), root_ids };
    for ((name, _), change) in ordered {
        let mut h = tar::Header::new_gnu();
        match change {
            Change::Delete(_) | Change::Opaque(_) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                h.set_mtime(clamp(0));
                tar.append_data(&mut h, &name, io::empty()).map_err(writing_layer)?;
            }
            Change::Add(path) => entries.append(&mut tar, h, &name, path, &clamp)?,
        }
    }
    tar.into_inner().map_err(writing_layer)
}

/// The entries of a layer tar, read from `root` by their names in their open directory:
/// the changes come sorted by path, so the directories from the root down to the current
/// entry's are kept open, and each entry is looked up by its last name alone (by its
/// whole path, every entry cost three lookups of every component: its `lstat`, its
/// `open` and its `security.capability`).
struct Entries<'r> {
    root: &'r Path,
    /// The open directories from the root (first) down, with their paths.
    cursor: Vec<(PathBuf, OwnedFd)>,
    /// The first name of each file with several links, by device and inode.
    inodes: HashMap<(u64, u64), PathBuf>,
    /// See [`LayerOptions::root_ids`].
    root_ids: Option<(u32, u32)>,
}

impl Entries<'_> {
    /// The open directory `rel` (relative to the root), opening what is missing one name
    /// at a time from the deepest open ancestor. Links are not followed: every directory
    /// of a change is a directory of the tree.
    fn directory(&mut self, rel: &Path) -> Result<BorrowedFd<'_>> {
        while self.cursor.last().is_some_and(|(p, _)| !rel.starts_with(p)) {
            self.cursor.pop();
        }
        if self.cursor.is_empty() {
            let fd = open_dir(None, self.root.as_os_str())?;
            self.cursor.push((PathBuf::new(), fd));
        }
        let open = self.cursor.last().map_or(0, |(p, _)| p.components().count());
        for part in rel.components().skip(open) {
            let (parent, fd) = self.cursor.last().ok_or(Error::Panicked("the root's directory"))?;
            let (path, fd) = (parent.join(part), open_dir(Some(fd.as_fd()), part.as_os_str())?);
            self.cursor.push((path, fd));
        }
        let (_, fd) = self.cursor.last().ok_or(Error::Panicked("the root's directory"))?;
        Ok(fd.as_fd())
    }

    /// The entry at `path` as it is now, and the open file when it is a regular file.
    fn open(&mut self, path: &Path) -> Result<(stat::FileStat, Option<fs::File>)> {
        let root = self.root;
        let failed = |action| move |e: nix::Error| Error::io(action, root.join(path))(e.into());
        let base = path.file_name().unwrap_or(path.as_os_str());
        let dir = self.directory(path.parent().unwrap_or(Path::new("")))?;
        let st =
            stat::fstatat(dir, base, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(failed("inspecting"))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Ok((st, None));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = fcntl::openat(dir, base, flags, Mode::empty()).map_err(failed("reading"))?;
        Ok((st, Some(fs::File::from(fd))))
    }

    /// Appends the entry at `path` (named `name` in the tar) as it is now.
    fn append<W: LayerSink>(
        &mut self,
        tar: &mut tar::Builder<W>,
        mut h: tar::Header,
        name: &Path,
        path: &Path,
        clamp: &dyn Fn(i64) -> u64,
    ) -> Result<()> {
        // `stat`'s field types differ between architectures: the casts are not useless on
        // all of them.
        #![allow(clippy::unnecessary_cast)]
        let (st, file) = self.open(path)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFSOCK {
            // Sockets have no place in a layer.
            return Ok(());
        }
        h.set_mode(st.st_mode & 0o7777);
        let (uid, gid) = match self.root_ids {
            Some((u, g)) => (
                if st.st_uid == u { 0 } else { st.st_uid },
                if st.st_gid == g { 0 } else { st.st_gid },
            ),
            None => (st.st_uid, st.st_gid),
        };
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(clamp(st.st_mtime));
        if let Some(file) = file {
            if let Some(cap) = file.get_xattr("security.capability").ok().flatten() {
                append_capability(tar, &cap).map_err(writing_layer)?;
            }
            if st.st_nlink > 1 {
                let inode = (st.st_dev as u64, st.st_ino as u64);
                if let Some(first) = self.inodes.get(&inode) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    return tar.append_link(&mut h, name, first).map_err(writing_layer);
                }
                self.inodes.insert(inode, name.to_path_buf());
            }
            h.set_entry_type(tar::EntryType::Regular);
            return self.append_file(tar, h, name, path, file, st.st_size as u64);
        }
        // Directories, links and devices: few, looked up by their whole path.
        let full = self.root.join(path);
        if let Some(cap) = capability(&full) {
            append_capability(tar, &cap).map_err(writing_layer)?;
        }
        if kind == SFlag::S_IFDIR {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, name, io::empty()).map_err(writing_layer)
        } else if kind == SFlag::S_IFLNK {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target =
                fs::read_link(&full).map_err(Error::io("reading the link", full.clone()))?;
            tar.append_link(&mut h, name, target).map_err(writing_layer)
        } else {
            device_header(&mut h, kind, st.st_rdev as u64).map_err(writing_layer)?;
            tar.append_data(&mut h, name, io::empty()).map_err(writing_layer)
        }
    }
}

impl Entries<'_> {
    /// Appends the regular file `file` (at `path`, named `name`), `size` bytes long: the
    /// header from the tar crate, the bytes from the sink itself, which may read them
    /// straight into its own buffers ([`LayerSink::append_file`]), then the padding.
    /// A file that shrank since it was listed is an error (its header said more bytes);
    /// one that grew gives the bytes the header says.
    fn append_file<W: LayerSink>(
        &self,
        tar: &mut tar::Builder<W>,
        mut h: tar::Header,
        name: &Path,
        path: &Path,
        mut file: fs::File,
        size: u64,
    ) -> Result<()> {
        h.set_size(size);
        // With no data, the tar crate writes the header (and a long name's entry) alone.
        tar.append_data(&mut h, name, io::empty()).map_err(writing_layer)?;
        let sink = tar.get_mut();
        let copied = sink.append_file(&mut file, size).map_err(writing_layer)?;
        if copied != size {
            let shrank = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{size} bytes when listed, {copied} when read: it changed meanwhile"),
            );
            return Err(Error::io("reading", self.root.join(path))(shrank));
        }
        let rest = (size % 512) as usize;
        if rest != 0 {
            sink.write_all(&[0u8; 512][rest..]).map_err(writing_layer)?;
        }
        Ok(())
    }
}

/// Where [`tar_into`] writes a layer: any writer. One that can read a file's bytes
/// straight into buffers of its own, rather than have them copied through another
/// buffer first (`io::copy`'s), says so by overriding [`LayerSink::append_file`].
pub trait LayerSink: Write {
    /// Appends the next `n` bytes of `file`; returns how many it had (fewer when it
    /// ended first).
    fn append_file(&mut self, file: &mut fs::File, n: u64) -> io::Result<u64> {
        io::copy(&mut io::Read::take(file, n), self)
    }
}

impl<W: Write> LayerSink for HashingWriter<W> {}

impl<S: LayerSink + ?Sized> LayerSink for &mut S {
    fn append_file(&mut self, file: &mut fs::File, n: u64) -> io::Result<u64> {
        (**self).append_file(file, n)
    }
}

impl<W: crate::handoff::WriteBlocks + Send + 'static> LayerSink for crate::handoff::Handoff<W> {
    fn append_file(&mut self, file: &mut fs::File, n: u64) -> io::Result<u64> {
        self.fill_from(file, n)
    }
}

/// Opens the directory `name` (in `at`, or a path), not following a link.
fn open_dir(at: Option<BorrowedFd<'_>>, name: &std::ffi::OsStr) -> Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let at = at.unwrap_or(fcntl::AT_FDCWD);
    fcntl::openat(at, name, flags, Mode::empty())
        .map_err(|e| Error::io("listing", Path::new(name))(e.into()))
}

/// Adds the PAX header that carries a file's `security.capability` attribute (for the
/// entry that follows).
fn append_capability<W: Write>(tar: &mut tar::Builder<W>, cap: &[u8]) -> io::Result<()> {
    let mut record = Vec::new();
    let key = "SCHILY.xattr.security.capability";
    // A PAX record is "LEN key=value\n" where LEN counts the whole record.
    let body_len = key.len() + cap.len() + 3;
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len = len.to_string().len() + body_len;
    }
    record.extend_from_slice(format!("{len} {key}=").as_bytes());
    record.extend_from_slice(cap);
    record.push(b'\n');
    let mut ph = tar::Header::new_ustar();
    ph.set_entry_type(tar::EntryType::XHeader);
    ph.set_mode(0o644);
    ph.set_size(record.len() as u64);
    ph.set_mtime(0);
    tar.append_data(&mut ph, "PaxHeaders/capability", &record[..])
}

/// A device node's or FIFO's type (`kind`, the `S_IFMT` bits) and numbers.
fn device_header(h: &mut tar::Header, kind: SFlag, rdev: u64) -> io::Result<()> {
    let kind = if kind == SFlag::S_IFCHR {
        tar::EntryType::Char
    } else if kind == SFlag::S_IFBLK {
        tar::EntryType::Block
    } else {
        tar::EntryType::Fifo
    };
    h.set_entry_type(kind);
    h.set_size(0);
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    h.set_device_major(major as u32)?;
    h.set_device_minor(minor as u32)
}

/// Writes the layer blob for `changes` (compressed as asked) to `out`, computing the
/// blob digest, its size and the diff ID in the same pass.
pub fn write_layer(
    root: &Path,
    changes: &[Change],
    options: LayerOptions,
    out: impl Write,
) -> Result<LayerBlob> {
    let epoch = options.source_date_epoch;
    let ids = options.root_ids;
    let (blob, diff_id, media_type) = match options.compression {
        Compression::None => {
            // The blob is the tar: its digest is the diff ID, hashed once.
            let (diff_id, size) = write_tar(root, changes, epoch, ids, out)?;
            let digest = diff_id.clone();
            return Ok(LayerBlob { digest, size, diff_id, media_type: MediaType::ImageLayer });
        }
        Compression::Gzip(level) => {
            let mut gz = super::pgzip::ParallelGzip::new(HashingWriter::new(out), level);
            let (d, _) = write_tar(root, changes, epoch, ids, &mut gz)?;
            (gz.finish().map_err(writing_layer)?, d, MediaType::ImageLayerGzip)
        }
        Compression::Zstd(level) => {
            let mut z =
                zstd::Encoder::new(HashingWriter::new(out), level).map_err(writing_layer)?;
            let workers = u32::try_from(crate::cores()).unwrap_or(u32::MAX);
            if workers > 1 {
                // Several cores for one layer; zstd's output is the same either way.
                z.multithread(workers).map_err(writing_layer)?;
            }
            let (d, _) = write_tar(root, changes, epoch, ids, &mut z)?;
            (z.finish().map_err(writing_layer)?, d, MediaType::ImageLayerZstd)
        }
    };
    let (_, digest, size) = blob.finish();
    Ok(LayerBlob { digest, size, diff_id, media_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tar a layer's hand-off makes (file bytes read straight into its blocks) is
    /// byte for byte the one `write_tar` makes through `io::copy`: sizes around the
    /// 512-byte records and the 1 MiB blocks, an empty file, a long name, a hard link.
    #[test]
    fn a_handoff_makes_the_same_tar_as_a_plain_writer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long = root.join("d").join("n".repeat(120));
        fs::create_dir_all(&long).unwrap();
        let sizes = [0usize, 1, 511, 512, 513, (1 << 20) - 7, 1 << 20, (3 << 20) + 99];
        for (i, len) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*len).map(|j| ((i * 31 + j) % 251) as u8).collect();
            fs::write(root.join(format!("d/f{i}")), &bytes).unwrap();
        }
        fs::write(long.join("a-file-with-a-long-path"), b"x").unwrap();
        fs::hard_link(root.join("d/f3"), root.join("d/link")).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let changes = diff_trees(empty.path(), root).unwrap();
        let mut plain = Vec::new();
        let (digest, size) = write_tar(root, &changes, None, None, &mut plain).unwrap();
        let mut handoff = crate::handoff::Handoff::new(Vec::new());
        tar_into(root, &changes, None, None, &mut handoff).unwrap();
        let (bytes, handed_digest, handed_size) = handoff.finish().unwrap();
        assert!(bytes == plain, "the tars differ ({} and {} bytes)", bytes.len(), plain.len());
        assert_eq!((handed_digest, handed_size), (digest, size));
        // Both hold every file whole, as the tar crate reads them.
        let mut files = 0;
        for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = root.join(entry.path().unwrap());
            let mut read = Vec::new();
            io::Read::read_to_end(&mut entry, &mut read).unwrap();
            assert!(read == fs::read(&path).unwrap(), "{} differs", path.display());
            files += 1;
        }
        assert_eq!(files, sizes.len() + 1);
    }

    /// A file shorter when read than when listed is an error that names it.
    #[test]
    fn a_file_that_shrank_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), [7u8; 100]).unwrap();
        let entries = Entries {
            root: dir.path(),
            cursor: Vec::new(),
            inodes: HashMap::new(),
            root_ids: None,
        };
        let mut tar = tar::Builder::new(HashingWriter::new(Vec::new()));
        let file = fs::File::open(dir.path().join("f")).unwrap();
        let (f, header) = (Path::new("f"), tar::Header::new_gnu());
        let err = entries.append_file(&mut tar, header, f, f, file, 200).unwrap_err();
        let text = crate::error::chain(&err);
        assert!(text.contains(&dir.path().join("f").display().to_string()), "{text}");
        assert!(text.contains("200 bytes when listed, 100 when read"), "{text}");
    }
}
