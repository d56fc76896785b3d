//! The local image store: a content-addressed blob store laid out as an OCI image layout,
//! with image names in its `index.json`.
//!
//! ```text
//! ROOT/oci-layout          {"imageLayoutVersion": "1.0.0"}
//! ROOT/index.json          one descriptor per image name (annotation
//!                          io.containerd.image.name), plus untagged images
//! ROOT/blobs/sha256/HEX    manifests, configs and layers, immutable
//! ROOT/snapshots/HEX       one layer extracted, keyed by its diff ID (overlayfs lower dir)
//! ROOT/tmp/proc-PID-RAND/  one folder per process: blobs being written, snapshots being
//!                          extracted, files on their way to a rename; `.lock` in it is
//!                          locked by its process for as long as it lives
//! ROOT/containers/ID/      a sandbox's run directory (upper layer, secrets), with `pid`
//! ROOT/blob-sources.json   registry repositories known to hold each blob (for mounts)
//! ROOT/lock                serialises index.json updates
//! ROOT/gc.lock             shared by every command using the store, exclusive for
//!                          garbage collection
//! ```
//!
//! Crash safety: nothing appears under its final name before it is complete. A blob is
//! written in the process's `tmp/` folder, hashed on the way, checked against the digest
//! it was announced with, synced, then renamed into place, so a blob file is either absent
//! or complete. A snapshot is extracted there and renamed into `snapshots/` once whole;
//! removing one renames it back into `tmp/` first. `index.json` is replaced by rename
//! under `lock`. Writers hold `gc.lock` shared while they work, so garbage collection
//! (which takes it exclusively) never removes a blob that a concurrent `load` has written
//! but not yet named. Whatever a killed process leaves (its `tmp/` folder, its sandbox
//! directories) is removed by the next rbuild that opens the store, which can tell a dead
//! owner from a live one by the folder's lock (or the directory's `pid`).

mod blobfile;
mod fsck;
mod images;
mod snapshots;
pub(crate) use snapshots::StreamedSnapshot;
mod sources;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use serde::de::DeserializeOwned;

pub use fsck::{summarize, FsckOptions, FsckReport, Problem, TreeSummary};
pub use images::{check_layer_count, Image, ImageEntry, RemoveReport};

use crate::digest::HashingWriter;
use crate::error::{Error, Result};

/// The annotation holding an image's full name in `index.json` (as containerd and
/// `docker save` in OCI format write it).
pub const NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation for the tag part of the name.
pub const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// A local image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A lock held on a file of the store; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// The default store location: `RBUILD_ROOT`, else `/var/lib/rbuild` for root, else
/// `$XDG_DATA_HOME/rbuild` or `~/.local/share/rbuild` (also for a normal user's rbuild
/// in its namespace of subordinate ids, where it is root; root in a user namespace of the
/// same ids is still root).
pub fn default_root() -> PathBuf {
    if let Some(root) = std::env::var_os("RBUILD_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    if crate::users::is_root() && !crate::sandbox::subids::entered_for_a_user() {
        return PathBuf::from("/var/lib/rbuild");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("rbuild");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/rbuild")
}

/// The folders of a store's layout, made private (0700) by [`Store::open`].
const STORE_DIRS: &[&str] = &[
    "blobs",
    "blobs/sha256",
    "tmp",
    "snapshots",
    "containers",
    "cache",
    "cache-mounts",
    "context-cache",
    "logs",
    "builds",
    "builds/lines",
    "explain",
    "snapshot-records",
    "volumes",
];

/// Makes `dir` (its parent exists) with mode 0700, or takes group and others' access off
/// an existing one.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::metadata(dir).map_err(Error::io("reading", dir))?;
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(Error::io("closing to other users", dir))?;
            }
            Ok(())
        }
        Err(e) => Err(Error::Io { action: "creating", path: dir.to_path_buf(), source: e }),
    }
}

/// This process's folders under the `tmp/` of each store it opened: (store root, folder,
/// its locked lock file).
static PROCESS_DIRS: std::sync::Mutex<Vec<(PathBuf, PathBuf, File)>> =
    std::sync::Mutex::new(Vec::new());

/// Removes this process's own folders of [`Store::tmp_dir`] (what is left in them was
/// not kept), then their lock files. For a program's end; a process that ends otherwise
/// leaves them to the next rbuild.
pub fn remove_process_dirs() {
    let dirs = PROCESS_DIRS.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default();
    for (_, dir, lock) in dirs {
        let _ = remove_tree(&dir);
        let _ = fs::remove_file(lock_of(&dir));
        drop(lock);
    }
}

/// The name of every process's own folder under `tmp/` starts so; its lock file is the
/// folder's name with `.lock` added, beside it.
const PROCESS_DIR_PREFIX: &str = "proc-";

/// A lock file being made (locked, then renamed to its folder's lock name).
const NEW_LOCK_PREFIX: &str = ".lock-";

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    hex::encode(bytes)
}

/// The lock file of a process folder.
fn lock_of(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Makes `tmp/proc-<pid>-<random>/`. Its lock file comes first, locked before it gets
/// its name (so a lock file under that name is always held while its process lives),
/// then the folder: a folder without its lock file is a dead process's.
fn make_process_dir(tmp: &Path) -> io::Result<(PathBuf, File)> {
    use std::os::unix::fs::DirBuilderExt;
    let id = format!("{}-{}", std::process::id(), random_suffix());
    let dir = tmp.join(format!("{PROCESS_DIR_PREFIX}{id}"));
    let new_lock = tmp.join(format!("{NEW_LOCK_PREFIX}{id}"));
    let lock = File::options().create_new(true).write(true).mode(0o600).open(&new_lock)?;
    lock.lock()?;
    fs::rename(&new_lock, lock_of(&dir))?;
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok((dir, lock))
}

/// Whether the lock file at `path` is held by no process.
fn lock_is_free(path: &Path) -> bool {
    File::options().write(true).open(path).is_ok_and(|f| f.try_lock().is_ok())
}

fn older_than_a_minute(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60))
}

/// Removes a file or a whole tree (nothing there is fine), also a tree whose folders deny
/// their owner access: the kernel makes an overlay's `work/work` mode 0, and image layers
/// may carry such folders, which `remove_dir_all` alone cannot enter as a normal user.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(first) => {
            open_up(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

/// Gives the owner read, write and search on every folder under `dir` (never following a
/// symbolic link), so that the tree can be removed.
fn open_up(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(m) = fs::symlink_metadata(&d) {
            let mode = m.permissions().mode();
            if m.is_dir() && mode & 0o700 != 0o700 {
                let _ =
                    fs::set_permissions(&d, fs::Permissions::from_mode((mode & 0o7777) | 0o700));
            }
        }
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

pub(crate) fn write_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    // A file that already holds these bytes was made durable when it was written: a
    // no-op rebuild then syncs nothing (each sync costs milliseconds).
    let same_size = fs::metadata(dest).is_ok_and(|m| m.len() == bytes.len() as u64);
    if same_size && fs::read(dest).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("creating a file in", dir))?;
    tmp.write_all(bytes).map_err(Error::io("writing", tmp.path().to_path_buf()))?;
    tmp.as_file().sync_all().map_err(Error::io("syncing", tmp.path().to_path_buf()))?;
    tmp.persist(dest).map_err(|e| Error::Io {
        action: "renaming into",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

impl Store {
    /// Opens the store at `root`, creating its layout when it does not exist yet.
    ///
    /// The store is private, as `/var/lib/docker` is: its root and every folder of its
    /// layout are 0700, its own files 0600 (folders of a store made by an older rbuild
    /// are closed on the way). Layer snapshots hold setuid files and device nodes as
    /// images carry them; no other user may reach them. Sandbox directories of rbuild
    /// processes that were killed (with any secret files in them) are removed here.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        for dir in std::iter::once(Path::new("")).chain(STORE_DIRS.iter().map(Path::new)) {
            private_dir(&root.join(dir))?;
        }
        for file in ["lock", "gc.lock", "oci-layout", "index.json"] {
            let path = root.join(file);
            if let Ok(meta) = fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
                }
            }
        }
        let store = Store { root };
        store.clean_containers();
        store.remove_leftovers();
        store.check_owners()?;
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            write_atomically(&store.tmp_dir(), &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                write_atomically(
                    &store.tmp_dir(),
                    &index,
                    br#"{"schemaVersion":2,"manifests":[]}"#,
                )?;
            }
        }
        Ok(store)
    }

    /// How the store's snapshots were made, in its file `owners`: `root` (the host's root:
    /// owners kept, overlayfs's `trusted.` attributes), `userns` (root in a user namespace,
    /// a normal user's of subordinate ids or a container's root without CAP_SYS_ADMIN:
    /// owners kept, `user.` attributes) or `caller` (a normal user mapped alone: every
    /// file the caller's). No file: an older rbuild's store, made by the host's root or
    /// by the caller. When the way changes, the snapshots are extracted again from the
    /// blobs, except that a store of subordinate ids is refused without them (its files
    /// are out of the caller's reach).
    fn check_owners(&self) -> Result<()> {
        let marker = self.root.join("owners");
        let now = if crate::users::is_host_root() {
            "root"
        } else if crate::users::is_root() {
            "userns"
        } else {
            "caller"
        };
        let before = match fs::read_to_string(&marker) {
            Ok(text) => text.trim().to_string(),
            Err(_) if crate::users::is_host_root() => "root".to_string(),
            Err(_) => "caller".to_string(),
        };
        if before != now {
            if now == "caller" {
                return Err(Error::Conflict(format!(
                    "the store at {} was used with subordinate ids (a user namespace of the \
                     ranges in /etc/subuid): its files belong to them. Run rbuild with them \
                     (newuidmap installed, RBUILD_SUBIDS not off), or give another --root",
                    self.root.display()
                )));
            }
            self.remove_snapshots(true)?;
        }
        if before != now || !marker.exists() {
            write_atomically(&self.tmp_dir(), &marker, format!("{now}\n").as_bytes())?;
        }
        Ok(())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the store lives on overlayfs (a container's own root file system): its
    /// snapshots then hold whiteout files, not overlayfs's devices, and are stacked by
    /// copying (overlayfs refuses an overlayfs for its upper directory).
    pub fn on_overlayfs(&self) -> bool {
        nix::sys::statfs::statfs(&self.root)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
    }

    /// How the store's snapshots record whiteouts (see [`Store::on_overlayfs`]).
    pub fn whiteout_mode(&self) -> crate::snapshot::WhiteoutMode {
        if self.on_overlayfs() {
            crate::snapshot::WhiteoutMode::Files
        } else {
            crate::snapshot::WhiteoutMode::Overlay
        }
    }

    /// This process's own folder for things being made (blobs being written, snapshots
    /// being extracted, files on their way to a rename), `tmp/proc-<pid>-<random>/`. It
    /// holds a lock file that the process keeps locked until it exits, however it exits:
    /// whoever can take that lock knows the folder's owner is gone and removes the folder
    /// ([`Store::open`] does, for every rbuild). Everything made here reaches its final
    /// name only by a rename within the store's file system.
    pub fn tmp_dir(&self) -> PathBuf {
        let shared = self.root.join("tmp");
        let Ok(mut dirs) = PROCESS_DIRS.lock() else { return shared };
        if let Some((_, dir, _)) = dirs.iter().find(|(root, _, _)| *root == self.root) {
            return dir.clone();
        }
        match make_process_dir(&shared) {
            Ok((dir, lock)) => {
                dirs.push((self.root.clone(), dir.clone(), lock));
                dir
            }
            Err(e) => {
                tracing::warn!("making this process's folder in {}: {e}", shared.display());
                shared
            }
        }
    }

    /// Removes what dead processes left: their folders under `tmp/` (see
    /// [`Store::tmp_dir`]), and, when no other process uses the store at all, anything
    /// else there and the half-made snapshots (`snapshots/.tmp-*`) of older rbuilds.
    /// Never touches what a live process uses. Returns the bytes freed.
    pub fn remove_leftovers(&self) -> u64 {
        // Nobody holds the store (not even shared): everything in tmp/ is a leftover.
        let alone = self.lock_file("gc.lock").ok().filter(|f| f.try_lock().is_ok());
        self.sweep(alone.is_some())
    }

    /// [`Store::remove_leftovers`], told whether no other process uses the store.
    pub(crate) fn sweep(&self, alone: bool) -> u64 {
        let tmp = self.root.join("tmp");
        let mut freed = 0;
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let dead = if name.starts_with(PROCESS_DIR_PREFIX) && name.ends_with(".lock") {
                // The folder goes first, its lock file after.
                if lock_is_free(&path) {
                    let dir = path.with_extension("");
                    freed += images::dir_size(&dir);
                    let _ = remove_tree(&dir);
                    true
                } else {
                    false
                }
            } else if name.starts_with(PROCESS_DIR_PREFIX) {
                !lock_of(&path).exists()
            } else if name.starts_with(NEW_LOCK_PREFIX) {
                alone || (older_than_a_minute(&path) && lock_is_free(&path))
            } else {
                alone
            };
            if dead {
                freed += images::dir_size(&path);
                let _ = remove_tree(&path);
            }
        }
        if alone {
            let snapshots = self.root.join("snapshots");
            for entry in fs::read_dir(&snapshots).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    freed += images::dir_size(&entry.path());
                    let _ = remove_tree(&entry.path());
                }
            }
        }
        freed
    }

    /// Removes a folder of the store (a snapshot, a cache mount) so that no crash at any
    /// moment leaves part of it under its name: it is renamed into this process's
    /// [`Store::tmp_dir`] first, then removed (a process killed meanwhile leaves it
    /// there, for the next rbuild to remove).
    pub fn remove_dir_aside(&self, path: &Path) -> io::Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aside = self.tmp_dir().join(format!("removing-{name}-{}", random_suffix()));
        match fs::rename(path, &aside) {
            Ok(()) => remove_tree(&aside),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let path = self.root.join(name);
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("opening the lock", path))
    }

    /// Takes the index lock (exclusive), for read-modify-write of `index.json`.
    pub fn lock(&self) -> Result<StoreLock> {
        let file = self.lock_file("lock")?;
        file.lock().map_err(Error::io("locking", self.root.join("lock")))?;
        Ok(StoreLock { _file: file })
    }

    /// Marks the store as in use by this process until the returned lock is dropped:
    /// garbage collection waits for it. Every command that writes blobs, or reads the
    /// index and then the blobs it names, holds it.
    pub fn in_use(&self) -> Result<StoreLock> {
        let file = self.lock_file("gc.lock")?;
        file.lock_shared().map_err(Error::io("locking", self.root.join("gc.lock")))?;
        Ok(StoreLock { _file: file })
    }

    fn collector(&self) -> Result<StoreLock> {
        let file = self.lock_file("gc.lock")?;
        file.lock().map_err(Error::io("locking", self.root.join("gc.lock")))?;
        Ok(StoreLock { _file: file })
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.algorithm().as_ref()).join(digest.digest())
    }

    /// Whether the store has a blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob: bytes go to a temporary file, hashed on the way, and
    /// [`BlobWriter::commit`] checks the digest and moves the file into place.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        self.new_blob_writer(true, false)
    }

    /// A [`Store::verified_blob_writer`] for a layer the build has just made: its bytes
    /// go around the page cache where the file system allows it (see
    /// `blobfile::Direct`).
    pub(crate) fn layer_blob_writer(&self) -> Result<BlobWriter> {
        self.new_blob_writer(false, true)
    }

    /// A blob writer that hashes (or takes its caller's word), writing directly or
    /// through the page cache.
    fn new_blob_writer(&self, hash: bool, direct: bool) -> Result<BlobWriter> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
            .map_err(Error::io("creating a file in", tmp_dir))?;
        let file = match direct.then(|| blobfile::BlobFile::direct(tmp.path())) {
            Some(Ok(file)) => file,
            // Not asked, or the file system refuses O_DIRECT.
            _ => blobfile::BlobFile::buffered(
                tmp.reopen().map_err(Error::io("opening", tmp.path().to_path_buf()))?,
            ),
        };
        Ok(BlobWriter { store: self.clone(), tmp, out: HashingWriter::new(file), hash })
    }

    /// Like [`Store::blob_writer`], for a caller that hashes the same bytes itself as it
    /// writes them (the registry client verifies every blob it downloads): the store does
    /// not hash them a second time, and [`BlobWriter::commit_verified`] takes the
    /// caller's word for the digest.
    pub fn verified_blob_writer(&self) -> Result<BlobWriter> {
        self.new_blob_writer(false, false)
    }

    /// Streams `reader` into the store, hashing on the way. With `expected`, content that
    /// hashes otherwise is refused and nothing is kept. Returns the digest and size.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut writer = self.blob_writer()?;
        let path = writer.tmp.path().to_path_buf();
        io::copy(&mut reader, &mut writer).map_err(Error::io("writing", path))?;
        writer.commit(expected)
    }

    /// Stores bytes as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        self.put_blob(bytes, None).map(|(d, _)| d)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingBlob(digest.clone()),
            _ => Error::Io { action: "opening", path: self.blob_path(digest), source: e },
        })
    }

    /// Reads a whole blob, checking it still hashes to its name.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", self.blob_path(digest)))?;
        let actual = crate::digest::sha256(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        Ok(bytes)
    }

    /// Reads and decodes a JSON blob.
    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest, what: &str) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(Error::json(format!("{what} {digest}")))
    }

    /// The descriptors in `index.json`.
    pub fn index(&self) -> Result<Vec<Descriptor>> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(Error::io("reading", path.clone()))?;
        let index: oci_spec::image::ImageIndex =
            serde_json::from_slice(&bytes).map_err(Error::json(path.display().to_string()))?;
        Ok(index.manifests().clone())
    }

    /// Changes `index.json` under the lock: `f` edits the descriptors, which are then
    /// written back atomically.
    pub fn update_index<R>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<R>) -> Result<R> {
        let _writer = self.in_use()?;
        self.update_index_exclusive(f)
    }

    /// [`Store::update_index`] for a caller that holds the store exclusively already.
    pub(crate) fn update_index_exclusive<R>(
        &self,
        f: impl FnOnce(&mut Vec<Descriptor>) -> Result<R>,
    ) -> Result<R> {
        let _lock = self.lock()?;
        let mut manifests = self.index()?;
        let out = f(&mut manifests)?;
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
        let bytes = serde_json::to_vec(&index).map_err(Error::json("index.json"))?;
        write_atomically(&self.tmp_dir(), &self.root.join("index.json"), &bytes)?;
        Ok(out)
    }
}

/// A blob being written into the store (see [`Store::blob_writer`]). Dropped without
/// [`commit`](BlobWriter::commit), it leaves nothing behind.
#[derive(Debug)]
pub struct BlobWriter {
    store: Store,
    tmp: tempfile::NamedTempFile,
    out: HashingWriter<blobfile::BlobFile>,
    /// Whether this writer hashes (see [`Store::verified_blob_writer`]).
    hash: bool,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.hash {
            self.out.write(buf)
        } else {
            self.out.inner_mut().write(buf)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl crate::handoff::WriteBlocks for BlobWriter {
    /// A writer that does not hash hands the block to its file whole (a direct file
    /// keeps it until it is on the disk).
    fn write_block(
        &mut self,
        block: crate::handoff::Block,
        done: &mut dyn FnMut(crate::handoff::Block),
    ) -> io::Result<()> {
        if self.hash {
            crate::handoff::write_copied(&mut self.out, block, done)
        } else {
            self.out.inner_mut().write_block(block, done)
        }
    }
}

impl BlobWriter {
    /// Writes what the file's writer held back; returns the file, and the digest and size
    /// the writer counted (meaningful when it hashed).
    fn finish_file(
        out: HashingWriter<blobfile::BlobFile>,
        path: &Path,
    ) -> Result<(File, Digest, u64)> {
        let (sink, digest, size) = out.finish();
        let file = sink.into_file().map_err(Error::io("writing", path.to_path_buf()))?;
        Ok((file, digest, size))
    }

    /// Syncs the file and renames it into place as the blob `digest`, unless the store
    /// has that blob already.
    fn place(
        store: &Store,
        tmp: tempfile::NamedTempFile,
        file: File,
        digest: &Digest,
    ) -> Result<()> {
        let dest = store.blob_path(digest);
        if dest.is_file() {
            return Ok(());
        }
        file.sync_all().map_err(Error::io("syncing", tmp.path().to_path_buf()))?;
        tmp.persist(&dest).map_err(|e| Error::Io {
            action: "renaming into",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Moves a blob written through a [`Store::verified_blob_writer`] into place under
    /// the digest its writer verified. Returns its size.
    pub fn commit_verified(self, digest: &Digest) -> Result<u64> {
        let (file, _, _) = Self::finish_file(self.out, self.tmp.path())?;
        let size =
            file.metadata().map_err(Error::io("reading", self.tmp.path().to_path_buf()))?.len();
        Self::place(&self.store, self.tmp, file, digest)?;
        Ok(size)
    }

    /// Checks the content against `expected` (when given), syncs it and moves it into
    /// place. Returns the digest and size.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        if !self.hash {
            return Err(Error::Conflict(
                "a verified blob writer is committed with commit_verified".into(),
            ));
        }
        if let Some(d) = expected {
            if *d.algorithm() != DigestAlgorithm::Sha256 {
                return Err(Error::BadArchive(format!("unsupported digest algorithm in {d}")));
            }
        }
        let (file, digest, size) = Self::finish_file(self.out, self.tmp.path())?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(Error::DigestMismatch { expected: expected.clone(), actual: digest });
            }
        }
        Self::place(&self.store, self.tmp, file, &digest)?;
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_what_dead_processes_left_and_nothing_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tmp = dir.path().join("tmp");
        let own = store.tmp_dir();
        fs::write(own.join("being-made"), "live").unwrap();
        // A dead process's folder: its lock file is there and nobody holds it.
        fs::create_dir(tmp.join("proc-1-dead")).unwrap();
        fs::write(tmp.join("proc-1-dead/half"), "x").unwrap();
        fs::write(tmp.join("proc-1-dead.lock"), "").unwrap();
        // A folder whose lock file went first (a sweeper killed halfway).
        fs::create_dir(tmp.join("proc-2-orphan")).unwrap();
        // Something an older rbuild left.
        fs::write(tmp.join("legacy-blob"), "x").unwrap();
        store.sweep(false);
        let mut left: Vec<String> = fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.contains(&"legacy-blob".to_string()), "kept while others may use the store");
        assert!(own.join("being-made").exists(), "a live process's folder is never touched");
        store.sweep(true);
        assert!(!tmp.join("legacy-blob").exists(), "removed when nobody uses the store");
        assert!(own.join("being-made").exists(), "a live process's folder is never touched");
    }

    #[test]
    fn blobs_are_verified_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (d, n) = store.put_blob(&b"hello"[..], None).unwrap();
        assert_eq!(n, 5);
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        let wrong = crate::digest::sha256(b"other");
        assert!(matches!(
            store.put_blob(&b"hello!"[..], Some(&wrong)),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!store.has_blob(&crate::digest::sha256(b"hello!")));
        let own = store.tmp_dir();
        assert_eq!(fs::read_dir(&own).unwrap().count(), 0, "no leftovers in this process's folder");
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            2,
            "only this process's folder and its lock file in tmp/"
        );
        // A corrupted blob is caught on read.
        fs::write(store.blob_path(&d), b"jello").unwrap();
        assert!(store.read_blob(&d).is_err());
    }
}
