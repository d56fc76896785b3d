//! Applying a layer tar onto a directory with OCI semantics.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::path::{archive_components, entry_destination, follow_links, resolve_in_root};
use crate::error::{Error, Result};
use crate::sandbox::{make_special, make_whiteout, SpecialFile};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What whiteouts do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Remove what they name from the target (the target holds the lower layers).
    Remove,
    /// Record them as overlayfs does (a character device 0/0 for `.wh.NAME`, the
    /// `trusted.overlay.opaque` attribute for opaque directories), for a snapshot of one
    /// layer that overlayfs stacks on the layers below it. Needs root.
    Overlay,
    /// Record them as the layer tar does (an empty `.wh.NAME` file, a `.wh..wh..opq` file
    /// in an opaque directory), for a snapshot whose file system cannot hold overlayfs's
    /// whiteouts (a store on overlayfs itself: a device 0/0 made there is a whiteout of
    /// that overlay, invisible); such snapshots are stacked by copying, not by overlayfs.
    Files,
}

/// How a layer is applied.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Set owners from the archive and create device nodes (needs root); otherwise files
    /// belong to the caller and device nodes are skipped.
    pub preserve_owners: bool,
    /// What whiteouts do.
    pub whiteouts: WhiteoutMode,
}

/// The attribute that marks an overlayfs directory opaque: `trusted.` as the host's root;
/// `user.` otherwise (overlayfs mounted with `userxattr` in a user namespace reads that one).
pub fn opaque_xattr() -> &'static str {
    if crate::users::is_host_root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { preserve_owners: crate::users::is_root(), whiteouts: WhiteoutMode::Remove }
    }
}

/// What applying a layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Paths removed by whiteouts.
    pub whiteouts: u64,
    /// Device nodes that were not created because the caller is not root.
    pub skipped_devices: u64,
}

/// Opens a layer stream, recognising gzip and zstd by their first bytes.
pub fn decompress<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::new(input);
    let head = input.fill_buf().map_err(Error::io("reading", "the layer"))?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(input).map_err(Error::io("reading", "the zstd layer"))?)
    } else {
        Box::new(input)
    })
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry { path: path.display().to_string(), reason: reason.into() }
}

/// Removes whatever is at `path` (a file, a link, or a whole directory), if anything.
pub(super) fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(Error::io("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(Error::io("removing", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io { action: "inspecting", path: path.to_path_buf(), source: e }),
    }
}

/// Records that the directory `dir` of a snapshot is opaque, as `mode` says: overlayfs's
/// attribute, or the `.wh..wh..opq` file.
pub(super) fn record_opaque(dir: &Path, mode: WhiteoutMode) -> Result<()> {
    if mode == WhiteoutMode::Files {
        let marker = dir.join(OPAQUE);
        return fs::write(&marker, b"").map_err(Error::io("writing", marker));
    }
    xattr::set(dir, opaque_xattr(), b"y").map_err(Error::io("marking opaque", dir))
}

/// Records in a snapshot that `path` (nothing there now) is removed, as `mode` says:
/// overlayfs's device 0/0, or a `.wh.NAME` file beside it.
pub(super) fn record_whiteout(path: &Path, mode: WhiteoutMode) -> Result<()> {
    if mode == WhiteoutMode::Files {
        let mut name = OsString::from(WHITEOUT_PREFIX);
        name.push(path.file_name().unwrap_or_default());
        let marker = path.with_file_name(name);
        return fs::write(&marker, b"").map_err(Error::io("writing", marker));
    }
    make_whiteout(path)
}

/// Applies a layer (plain, gzip or zstd tar) onto `root`.
///
/// OCI semantics: `.wh.NAME` removes NAME of lower layers and `.wh..wh..opq` empties a
/// directory of what lower layers put there (both applied after the layer's own entries,
/// and never to what this layer itself wrote); an entry replaces whatever is at its path.
/// Modes, owners (with `preserve_owners`), modification times and the
/// `security.capability` extended attribute are kept. Device nodes are created when
/// `preserve_owners` is set (as root), and otherwise counted in the report and skipped.
/// With [`WhiteoutMode::Overlay`], whiteouts are recorded the way overlayfs reads them
/// instead of applied.
///
/// Nothing is written outside `root`: paths that climb out with `..` are refused, links
/// met on the way are resolved as if `root` were `/`, and hard links may only point at
/// files inside the root.
pub fn apply_layer(input: impl Read, root: &Path, options: ApplyOptions) -> Result<ApplyReport> {
    apply(input, &Resolver { root, below: None }, options)
}

/// The file system an archive is unpacked over (ADD's image), below the layer directory
/// being written: what `apply_layer_below` resolves the archive's paths through.
pub struct Below<'a> {
    /// The container path of the directory the archive is unpacked at (ADD's destination).
    pub at: Vec<OsString>,
    /// The image's entry at a container path (its host path and metadata, the last
    /// component not followed), or `None`.
    pub entry: &'a BelowLookup<'a>,
}

/// How [`Below`] looks an entry of the image up.
pub type BelowLookup<'a> = dyn Fn(&[OsString]) -> Option<(PathBuf, fs::Metadata)> + 'a;

impl std::fmt::Debug for Below<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Below").field("at", &self.at).finish_non_exhaustive()
    }
}

/// Unpacks an archive (ADD) into the layer directory `root` (the container's `/`), at
/// `below.at`, as BuildKit unpacks it onto the image: the links an entry's path passes
/// through are followed in the image as well as in the layer (inside the root), a parent
/// directory the image has is made with the image's mode and owner, and a directory entry
/// that replaces one of the image's links or files is marked opaque (overlayfs marks the
/// directory so in BuildKit's layer).
pub fn apply_layer_below(
    input: impl Read,
    root: &Path,
    below: &Below<'_>,
    options: ApplyOptions,
) -> Result<ApplyReport> {
    apply(input, &Resolver { root, below: Some(below) }, options)
}

fn apply(input: impl Read, at: &Resolver<'_>, options: ApplyOptions) -> Result<ApplyReport> {
    let reader = decompress(input)?;
    let mut archive = tar::Archive::new(reader);
    let mut report = ApplyReport::default();
    let mut pending = Pending::default();
    let entries =
        archive.entries().map_err(|e| Error::BadArchive(format!("reading the layer: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::BadArchive(format!("reading the layer: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| Error::BadArchive(format!("bad entry name: {e}")))?
            .into_owned();
        let name = raw.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == OPAQUE {
            let parts = archive_components(raw.parent().unwrap_or(Path::new("")))?;
            pending.opaque_dirs.push(at.resolve(&parts)?);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(bad(&raw, "a whiteout must name a file"));
            }
            let (_, dest) = at.destination(&raw.with_file_name(hidden))?;
            pending.whiteouts.push(dest);
            continue;
        }
        let (parent, dest) = at.destination(&raw)?;
        if dest == at.root {
            // The root itself: only its metadata could change; keep the target as it is.
            continue;
        }
        at.make_parent(&parent, &mut pending)?;
        let replaces = at.replaces_below(&dest);
        if write_entry(&mut entry, at, &raw, &dest, options, &mut report, &mut pending)? {
            if replaces && dest.is_dir() {
                xattr::set(&dest, opaque_xattr(), b"y")
                    .map_err(Error::io("marking opaque", dest.clone()))?;
            }
            pending.written.insert(dest);
            report.entries += 1;
        }
    }
    // Read the stream to its end, so that a compressed layer cut short fails its checksum
    // here instead of passing for a complete one.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| Error::BadArchive(format!("reading the layer: {e}")))?;
    pending.finish(at.root, options, &mut report)?;
    Ok(report)
}

/// Where an archive's entries go: inside `root`, links followed as if it were `/`, in the
/// image below too when there is one.
struct Resolver<'a> {
    root: &'a Path,
    below: Option<&'a Below<'a>>,
}

impl Resolver<'_> {
    /// The container path of a host path inside the root.
    fn parts_of(&self, host: &Path) -> Vec<OsString> {
        let rel = host.strip_prefix(self.root).unwrap_or(host);
        rel.components().map(|c| c.as_os_str().to_os_string()).collect()
    }

    /// Resolves an archive path (its components) to a host path inside the root.
    fn resolve(&self, parts: &[OsString]) -> Result<PathBuf> {
        let Some(below) = self.below else { return resolve_in_root(self.root, parts) };
        let full: Vec<OsString> = below.at.iter().chain(parts).cloned().collect();
        let host = |resolved: &[OsString]| -> PathBuf {
            std::iter::once(self.root.as_os_str().to_os_string())
                .chain(resolved.iter().cloned())
                .collect()
        };
        let resolved = follow_links(&full, true, |resolved| {
            let candidate = host(resolved);
            let (link, meta) = match fs::symlink_metadata(&candidate) {
                Ok(meta) => (candidate, meta),
                Err(_) => match (below.entry)(resolved) {
                    Some(found) => found,
                    None => return Ok(None),
                },
            };
            if !meta.file_type().is_symlink() {
                return Ok(None);
            }
            fs::read_link(&link).map(Some).map_err(Error::io("reading the link", link.clone()))
        })?;
        Ok(host(&resolved))
    }

    /// An entry's parent (resolved) and its own path (the last name not followed).
    fn destination(&self, path: &Path) -> Result<(PathBuf, PathBuf)> {
        if self.below.is_none() {
            return entry_destination(self.root, path);
        }
        let mut parts = archive_components(path)?;
        let Some(name) = parts.pop() else {
            return Ok((self.root.to_path_buf(), self.resolve(&[])?));
        };
        let parent = self.resolve(&parts)?;
        let dest = parent.join(name);
        Ok((parent, dest))
    }

    /// Makes an entry's parent directory in the layer; the ones the image has get its
    /// mode, owner and time.
    fn make_parent(&self, parent: &Path, pending: &mut Pending) -> Result<()> {
        let Some(below) = self.below else {
            return fs::create_dir_all(parent).map_err(Error::io("creating", parent));
        };
        if parent.is_dir() {
            return Ok(());
        }
        let parts = self.parts_of(parent);
        let mut host = self.root.to_path_buf();
        for n in 1..=parts.len() {
            host.push(&parts[n - 1]);
            if host.is_dir() {
                continue;
            }
            fs::create_dir(&host).map_err(Error::io("creating", host.clone()))?;
            if let Some((_, m)) = (below.entry)(&parts[..n]).filter(|(_, m)| m.is_dir()) {
                use std::os::unix::fs::MetadataExt;
                super::stack::set_meta(&host, &m)?;
                // Writing into it changes its time: set again at the end.
                let time = FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
                pending.dir_times.push((host.clone(), time));
            }
        }
        Ok(())
    }

    /// Whether an entry at `dest` replaces a link or file of the image (nothing of the
    /// layer's own is there).
    fn replaces_below(&self, dest: &Path) -> bool {
        let Some(below) = self.below else { return false };
        fs::symlink_metadata(dest).is_err()
            && (below.entry)(&self.parts_of(dest)).is_some_and(|(_, m)| !m.is_dir())
    }
}

/// What applying a layer leaves for after its entries.
#[derive(Default)]
struct Pending {
    /// Every path the layer wrote.
    written: HashSet<PathBuf>,
    /// Paths its whiteouts remove.
    whiteouts: Vec<PathBuf>,
    /// Directories it makes opaque.
    opaque_dirs: Vec<PathBuf>,
    /// Directory times, set last (writing into a directory changes its time).
    dir_times: Vec<(PathBuf, FileTime)>,
}

impl Pending {
    /// Applies the whiteouts and opaque directories (never to what this layer wrote), or
    /// records them as overlayfs reads them ([`WhiteoutMode::Overlay`]); then the
    /// directories' times, deepest first.
    fn finish(self, root: &Path, options: ApplyOptions, report: &mut ApplyReport) -> Result<()> {
        let Pending { written, mut whiteouts, mut opaque_dirs, mut dir_times } = self;
        if options.whiteouts != WhiteoutMode::Remove {
            for dir in std::mem::take(&mut opaque_dirs) {
                fs::create_dir_all(&dir).map_err(Error::io("creating", dir.clone()))?;
                record_opaque(&dir, options.whiteouts)?;
                report.whiteouts += 1;
            }
            for path in std::mem::take(&mut whiteouts) {
                if written.contains(&path) {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
                }
                remove_any(&path)?;
                record_whiteout(&path, options.whiteouts)?;
                report.whiteouts += 1;
            }
        }
        // A child of an opaque directory stays when this layer wrote it or something in it.
        let mut kept: HashSet<PathBuf> = HashSet::new();
        if !opaque_dirs.is_empty() {
            for w in &written {
                kept.extend(
                    w.ancestors().take_while(|a| a.starts_with(root)).map(Path::to_path_buf),
                );
            }
        }
        for dir in opaque_dirs {
            let Ok(children) = fs::read_dir(&dir) else { continue };
            for child in children.flatten() {
                let path = child.path();
                if !kept.contains(&path) {
                    remove_any(&path)?;
                    report.whiteouts += 1;
                }
            }
        }
        for path in whiteouts {
            if !written.contains(&path) && fs::symlink_metadata(&path).is_ok() {
                remove_any(&path)?;
                report.whiteouts += 1;
            }
        }
        dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (dir, time) in dir_times {
            filetime::set_file_mtime(&dir, time)
                .map_err(Error::io("setting the time of", dir.clone()))?;
        }
        Ok(())
    }
}

/// Writes one entry at `dest` (its parent exists) with its mode, time, owner (with
/// `preserve_owners`) and file capabilities. Returns false when the entry was skipped.
fn write_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    at: &Resolver<'_>,
    raw: &Path,
    dest: &Path,
    options: ApplyOptions,
    report: &mut ApplyReport,
    pending: &mut Pending,
) -> Result<bool> {
    let header = entry.header().clone();
    let kind = header.entry_type();
    // A missing or garbled mode is read as the usual default rather than refused.
    let default_mode = if kind == tar::EntryType::Directory { 0o755 } else { 0o644 };
    let mode = header.mode().unwrap_or(default_mode) & 0o7777;
    let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);
    let link_target = |what: &str| {
        entry.link_name().ok().flatten().map(|t| t.into_owned()).ok_or_else(|| bad(raw, what))
    };
    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(dest)?;
                    fs::create_dir(dest).map_err(Error::io("creating", dest))?;
                }
                Err(_) => fs::create_dir(dest).map_err(Error::io("creating", dest))?,
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))
                .map_err(Error::io("setting the mode of", dest))?;
            pending.dir_times.push((dest.to_path_buf(), mtime));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            report.bytes += write_file(entry, raw, dest, header.size().unwrap_or(0), mode)?;
            filetime::set_file_mtime(dest, mtime)
                .map_err(Error::io("setting the time of", dest))?;
        }
        tar::EntryType::Symlink => {
            let target = link_target("a symbolic link without a target")?;
            remove_any(dest)?;
            symlink(&target, dest).map_err(Error::io("creating the link", dest))?;
            filetime::set_symlink_file_times(dest, mtime, mtime)
                .map_err(Error::io("setting the time of", dest))?;
        }
        tar::EntryType::Link => {
            let target = link_target("a hard link without a target")?;
            let (_, source) = at.destination(&target)?;
            let meta = fs::symlink_metadata(&source).map_err(|_| {
                bad(
                    raw,
                    format!("hard link to {}, which the layer does not have", target.display()),
                )
            })?;
            if meta.is_dir() {
                return Err(bad(raw, "a hard link to a directory"));
            }
            if source != dest {
                remove_any(dest)?;
                fs::hard_link(&source, dest).map_err(Error::io("linking", dest))?;
            }
            // The link's header mode, when it has one, applies to the file (its target
            // too), as containerd and BuildKit unpack it; a link to a symbolic link has
            // no mode of its own.
            let own = std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777;
            if let Some(link_mode) = header.mode().ok().map(|m| m & 0o7777) {
                if !meta.file_type().is_symlink() && link_mode != own {
                    fs::set_permissions(dest, fs::Permissions::from_mode(link_mode))
                        .map_err(Error::io("setting the mode of", dest))?;
                }
            }
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let special = match kind {
                tar::EntryType::Char => SpecialFile::Char,
                tar::EntryType::Block => SpecialFile::Block,
                _ => SpecialFile::Fifo,
            };
            if !options.preserve_owners && special != SpecialFile::Fifo {
                report.skipped_devices += 1;
                return Ok(false);
            }
            remove_any(dest)?;
            let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
            let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
            make_special(dest, special, mode, major, minor)?;
        }
        tar::EntryType::XGlobalHeader
        | tar::EntryType::XHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => return Ok(false),
        other => return Err(bad(raw, format!("unsupported entry type {other:?}"))),
    }
    if options.preserve_owners {
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        set_owner(dest, uid, gid)?;
        // chown clears set-id bits; put the mode back for files and directories.
        if !matches!(kind, tar::EntryType::Symlink) && mode & 0o6000 != 0 {
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))
                .map_err(Error::io("setting the mode of", dest))?;
        }
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                if ext.key() == Ok("SCHILY.xattr.security.capability") {
                    xattr::set(dest, "security.capability", ext.value_bytes())
                        .map_err(Error::io("setting capabilities on", dest))?;
                }
            }
        }
    }
    Ok(true)
}

/// Gives `dest` (not following a link) the owner of its entry. In a user namespace an id
/// it does not map is refused by the kernel (EINVAL): said in those words.
fn set_owner(dest: &Path, uid: u32, gid: u32) -> Result<()> {
    let Err(e) = std::os::unix::fs::lchown(dest, Some(uid), Some(gid)) else { return Ok(()) };
    if e.raw_os_error() == Some(nix::libc::EINVAL) && crate::users::in_user_namespace() {
        return Err(Error::InvalidImage(format!(
            "{} belongs to {uid}:{gid}, beyond the ids rbuild's user namespace maps (0 and \
             the ranges of /etc/subuid and /etc/subgid): give the user a larger range",
            dest.display()
        )));
    }
    Err(Error::io("setting the owner of", dest)(e))
}

/// A regular file's content; fails when the layer ends before the size it declares.
/// Returns the bytes written.
fn write_file(
    entry: &mut impl Read,
    raw: &Path,
    dest: &Path,
    declared: u64,
    mode: u32,
) -> Result<u64> {
    remove_any(dest)?;
    let mut file = fs::File::create(dest).map_err(Error::io("creating", dest))?;
    let copied = io::copy(entry, &mut file)
        .map_err(|e| Error::BadArchive(format!("{}: {e}", raw.display())))?;
    if copied != declared {
        return Err(Error::BadArchive(format!(
            "{}: the layer ends inside this file ({copied} of the {declared} bytes it declares)",
            raw.display()
        )));
    }
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting the mode of", dest))?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of (name, content) files, and hard links as (name, "=>target").
    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            if let Some(target) = data.strip_prefix("=>") {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                h.set_mode(0o644);
                b.append_link(&mut h, name, target).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// Hostile: the image's links an ADD archive passes through point out of the root
    /// (climbing with `..`, or absolute); what the archive holds lands inside the layer,
    /// never beside it.
    #[test]
    fn links_of_the_image_never_lead_out_of_the_layer() {
        let t = tempfile::tempdir().unwrap();
        let (image, layer) = (t.path().join("image"), t.path().join("layer"));
        fs::create_dir_all(image.join("opt")).unwrap();
        fs::create_dir_all(&layer).unwrap();
        symlink("../../../../../escaped", image.join("opt/climb")).unwrap();
        symlink("/../escaped-abs", image.join("opt/abs")).unwrap();
        let entry = |parts: &[OsString]| {
            let p: PathBuf = std::iter::once(image.clone().into_os_string())
                .chain(parts.iter().cloned())
                .collect();
            fs::symlink_metadata(&p).ok().map(|m| (p, m))
        };
        let below = Below { at: vec!["opt".into()], entry: &entry };
        let options = ApplyOptions { preserve_owners: false, whiteouts: WhiteoutMode::Remove };
        let archive = tar_of(&[("climb/x", "a"), ("abs/y", "b"), ("link", "=>climb/x")]);
        apply_layer_below(&archive[..], &layer, &below, options).unwrap();
        assert_eq!(fs::read_to_string(layer.join("escaped/x")).unwrap(), "a");
        assert_eq!(fs::read_to_string(layer.join("escaped-abs/y")).unwrap(), "b");
        assert_eq!(fs::read_to_string(layer.join("opt/link")).unwrap(), "a");
        // A hard link climbing out of the archive is refused.
        let climbing = tar_of(&[("other", "=>../../../climb/x")]);
        assert!(apply_layer_below(&climbing[..], &layer, &below, options).is_err());
        for outside in ["escaped", "escaped-abs"] {
            assert!(!t.path().join(outside).exists(), "{outside} was written outside");
        }
    }
}
