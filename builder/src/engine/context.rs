//! The build context: a directory read in place (never copied whole), filtered by
//! `.dockerignore`, and hashed by content for cache keys.
//!
//! A file's cache identity is its path, type, mode, owner, link target and content
//! digest, never its times. Content digests are kept in a stat cache (per context
//! directory, in the store), keyed by path and checked against inode, size, modification
//! and change times, so an unchanged file is never read twice. It is stored in postcard's
//! compact binary encoding: a no-op rebuild of a 30,000-file context spent a quarter of
//! its CPU time parsing the same map as JSON.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rbuild_parser::dockerignore::{clean_path, IgnoreMatcher};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// One entry of the context.
#[derive(Debug, Clone)]
pub struct ContextEntry {
    /// Path relative to the context root, `/`-separated.
    pub path: String,
    /// Its metadata (links not followed). Shared, not inline: a listing's entries are
    /// moved while sorted and cloned into each COPY's items (200 bytes each).
    pub meta: std::sync::Arc<Metadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StatRecord {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    sha256: [u8; 32],
}

impl StatRecord {
    /// Whether `other` was made of the same file as it is now (same inode, size and
    /// times).
    fn same_file(&self, other: &StatRecord) -> bool {
        (self.ino, self.size, self.mtime, self.mtime_ns, self.ctime, self.ctime_ns)
            == (other.ino, other.size, other.mtime, other.mtime_ns, other.ctime, other.ctime_ns)
    }
}

/// Copies of large context files made while they are hashed for a COPY's cache key, in a
/// folder of the store, so that a step that then runs moves them into its layer instead
/// of reading them a second time (a 50 MB file took 40 ms to hash and 30 ms more to copy).
/// Files left unused (the step was cached) go with the folder.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    /// Whether the folder could be made (made with the first copy: a COPY whose files are
    /// all in the stat cache copies nothing, and a no-op rebuild of three COPYs spent 1-2
    /// ms making and removing folders it never used).
    made: std::sync::OnceLock<bool>,
    /// The copies by context path.
    copies: Mutex<HashMap<String, PathBuf>>,
    /// The number of the next copy (its file name).
    next: std::sync::atomic::AtomicUsize,
}

impl Staging {
    /// Files from this size on are copied while hashed; a smaller one costs as much to
    /// move as to copy.
    const FROM_BYTES: u64 = 1 << 20;

    /// Stages copies in `dir` (made with the first copy), which must be on the layers'
    /// file system.
    pub fn new(dir: PathBuf) -> Staging {
        Staging {
            dir,
            made: Default::default(),
            copies: Mutex::default(),
            next: Default::default(),
        }
    }

    /// Takes the copy of the context file `path`, when one was made.
    pub fn take(&self, path: &str) -> Option<PathBuf> {
        self.copies.lock().ok()?.remove(path)
    }

    /// A new file for a copy (`None` when it cannot be made: the file is then only hashed).
    fn create(&self) -> Option<(PathBuf, fs::File)> {
        if !*self.made.get_or_init(|| fs::create_dir_all(&self.dir).is_ok()) {
            return None;
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = self.dir.join(n.to_string());
        let file = fs::OpenOptions::new().write(true).create_new(true).open(&name).ok()?;
        Some((name, file))
    }
}

/// Content digests by context path, with the metadata they were made with.
type StatCache = HashMap<String, StatRecord>;

/// The first bytes of a stored stat cache or delta: postcard's encoding says nothing of
/// the types it holds, so a file of another layout is known by this and never decoded.
const STAT_CACHE_MAGIC: &[u8] = b"rbuild stat cache 1\n";

/// The extension of stat cache files.
const STAT_CACHE_EXT: &str = "bin";

/// Encodes stat records as stored (see [`STAT_CACHE_MAGIC`]), sorted by path.
fn encode_records<'a>(
    records: impl Iterator<Item = (&'a String, &'a StatRecord)>,
) -> Option<Vec<u8>> {
    let mut list: Vec<(&String, &StatRecord)> = records.collect();
    list.sort_unstable_by(|a, b| a.0.cmp(b.0));
    postcard::to_extend(&list, STAT_CACHE_MAGIC.to_vec()).ok()
}

/// Decodes stored stat records; `None` for a file of another layout or a damaged one.
fn decode_records(bytes: &[u8]) -> Option<Vec<(String, StatRecord)>> {
    postcard::from_bytes(bytes.strip_prefix(STAT_CACHE_MAGIC)?).ok()
}

/// A context's stat cache as stored: the whole map in `<name>.bin`, and what builds
/// since added in `<name>.delta-<time>-<pid>.bin` files, read after it in name order.
/// A build that hashed a few files writes only those: rewriting the whole map (6 MB of
/// JSON for a context of 30,000 files, 2.4 MB now) took 40-80 ms at the end of a build
/// that changed one file. Every [`MAX_DELTAS`] deltas, or when a build hashed many files,
/// the whole map is written again and the deltas it holds are removed. A record only
/// counts for a file whose metadata still matches it, so the order records are merged
/// in, a lost delta or one read twice never gives a wrong digest: at worst a file is
/// hashed again.
#[derive(Debug, Default)]
struct LoadedStatCache {
    /// The whole map's records, sorted by path (see [`Cursor`]).
    sorted: Vec<(String, StatRecord)>,
    /// The deltas' records, a later delta's over an earlier one's.
    newer: StatCache,
    /// The deltas read, in the order they were merged.
    deltas: Vec<PathBuf>,
    /// Whether the whole map was there.
    whole: bool,
}

/// Deltas at most beside a context's whole stat cache.
const MAX_DELTAS: usize = 8;

impl LoadedStatCache {
    /// Reads the stat cache at `path` (`<name>.bin`) and its deltas.
    fn read(path: &Path) -> LoadedStatCache {
        let parse = |p: &Path| fs::read(p).ok().and_then(|b| decode_records(&b));
        let whole = parse(path);
        let mut loaded = LoadedStatCache {
            whole: whole.is_some(),
            sorted: whole.unwrap_or_default(),
            newer: StatCache::default(),
            deltas: Vec::new(),
        };
        // Written sorted; a file that is not (damaged, or edited by hand) is sorted here.
        if !loaded.sorted.is_sorted_by(|a, b| a.0 <= b.0) {
            loaded.sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        for delta in delta_files(path, STAT_CACHE_EXT) {
            if let Some(records) = parse(&delta) {
                loaded.newer.extend(records);
            }
            loaded.deltas.push(delta);
        }
        loaded
    }

    /// How many records it holds (a path in a delta and in the whole map counts twice).
    fn len(&self) -> usize {
        self.sorted.len() + self.newer.len()
    }

    /// Every record, a delta's over the whole map's.
    fn records(&self) -> impl Iterator<Item = (&String, &StatRecord)> {
        let older = self.sorted.iter().filter(|(k, _)| !self.newer.contains_key(k));
        self.newer.iter().chain(older.map(|(k, r)| (k, r)))
    }

    /// A new cursor at the start of the whole map.
    fn cursor(&self) -> Cursor<'_> {
        Cursor { sorted: &self.sorted, at: 0 }
    }
}

/// Looks records of the whole stat cache up in path order: a step's files are hashed in
/// the listing's order (each thread its part), so the next record is a few places
/// further on. A map of 30,000 paths, hashed and probed at random, missed the CPU's
/// caches on nearly every lookup (a tenth of a no-op rebuild's CPU time).
struct Cursor<'a> {
    sorted: &'a [(String, StatRecord)],
    /// Where the last lookup ended.
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The record for `path`; any order of lookups works, path order is the fast one.
    fn find(&mut self, path: &str) -> Option<&'a StatRecord> {
        let sorted = self.sorted;
        let resume = sorted.get(self.at).is_some_and(|(k, _)| k.as_str() <= path);
        let start = if resume { self.at } else { 0 };
        let rest = &sorted[start..];
        // Galloping: the first record at `path` or after it lies before `bound`.
        let mut bound = 1;
        while bound < rest.len() && rest[bound].0.as_str() < path {
            bound *= 2;
        }
        let window = &rest[..rest.len().min(bound + 1)];
        self.at = start + window.partition_point(|(k, _)| k.as_str() < path);
        sorted.get(self.at).filter(|(k, _)| k == path).map(|(_, r)| r)
    }
}

/// Removes the JSON stat cache that rbuild wrote before the binary one, and its deltas,
/// for the context whose stat cache is at `path` (nothing reads them any more).
fn remove_json_stat_cache(path: &Path) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) else {
        return;
    };
    let _ = fs::remove_file(dir.join(format!("{stem}.json")));
    for delta in delta_files(path, "json") {
        let _ = fs::remove_file(delta);
    }
}

/// The delta files with extension `ext` of the stat cache at `path`, in name order.
fn delta_files(path: &Path, ext: &str) -> Vec<PathBuf> {
    let (Some(dir), Some(prefix)) = (path.parent(), delta_prefix(path)) else {
        return Vec::new();
    };
    let suffix = format!(".{ext}");
    let mut deltas: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(&suffix)
        })
        .map(|e| e.path())
        .collect();
    deltas.sort();
    deltas
}

/// The start of the names of the deltas of the stat cache at `path`.
fn delta_prefix(path: &Path) -> Option<String> {
    Some(format!("{}.delta-", path.file_stem()?.to_str()?))
}

/// An opened build context.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    ignore: IgnoreMatcher,
    /// Every included entry, sorted by path (made on first use).
    entries: std::sync::OnceLock<Vec<ContextEntry>>,
    /// The listing being made in the background ([`BuildContext::prefetch`]).
    listing: Mutex<Option<JoinHandle<Result<Vec<ContextEntry>>>>>,
    stat_cache_path: Option<PathBuf>,
    /// The stat cache as read (in the background from the moment the context is opened),
    /// never changed: every hashing thread looks it up without a lock (a shared lock's
    /// counter bounced between the cores on each of 30,000 lookups).
    stat_cache: std::sync::OnceLock<LoadedStatCache>,
    stat_cache_loading: Mutex<Option<JoinHandle<LoadedStatCache>>>,
    /// The digests made by this build, written back with the rest.
    stat_cache_new: Mutex<StatCache>,
}

/// Content digests of context files for one thread: its reading buffer and its place in
/// the stat cache (see [`BuildContext::in_parts`]).
pub struct Hasher<'a> {
    context: &'a BuildContext,
    buf: Vec<u8>,
    cursor: Cursor<'a>,
    staging: Option<&'a Staging>,
}

impl std::fmt::Debug for Hasher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").finish_non_exhaustive()
    }
}

impl Hasher<'_> {
    /// The sha256 of a regular file's content (lower-case hex), from the stat cache when
    /// it still holds.
    pub fn digest(&mut self, entry: &ContextEntry) -> Result<String> {
        self.context.content_digest(entry, &mut self.buf, &mut self.cursor, self.staging)
    }
}

/// Lower-case hex, written into one buffer (`hex::encode` collects characters one by
/// one: 2% of a no-op rebuild's CPU time, once per file of a COPY).
fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    // Fails only when `out` is not twice as long as `bytes`, which it is.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Whether a COPY source has wildcards.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

impl BuildContext {
    /// Opens the context at `root`. The ignore file is `<dockerfile>.dockerignore` when
    /// that exists, else `<root>/.dockerignore`. `stat_cache_dir` holds stat caches.
    pub fn open(
        root: &Path,
        dockerfile: Option<&Path>,
        stat_cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let root = fs::canonicalize(root).map_err(Error::io("opening the build context", root))?;
        if !root.is_dir() {
            return Err(Error::Build(format!(
                "the build context {} is not a directory",
                root.display()
            )));
        }
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile {
            let mut name = df.as_os_str().to_os_string();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(root.join(".dockerignore"));
        let mut ignore = IgnoreMatcher::default();
        for c in candidates {
            match crate::limits::read_file_limited(&c, crate::limits::MAX_DOCKERIGNORE_BYTES) {
                Ok(bytes) => {
                    ignore = IgnoreMatcher::parse(&String::from_utf8_lossy(&bytes))
                        .map_err(|e| Error::Build(format!("{}: {e}", c.display())))?;
                    break;
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let stat_cache_path = stat_cache_dir.map(|d| {
            let name = hex(&Sha256::digest(root.as_os_str().as_encoded_bytes()));
            d.join(format!("{name}.{STAT_CACHE_EXT}"))
        });
        // A no-op rebuild of a large context spent a tenth of its time parsing this
        // file; it is read while the build looks its first steps up.
        let loading =
            stat_cache_path.clone().map(|p| std::thread::spawn(move || LoadedStatCache::read(&p)));
        Ok(BuildContext {
            root,
            ignore,
            entries: Default::default(),
            listing: Mutex::new(None),
            stat_cache_path,
            stat_cache: Default::default(),
            stat_cache_loading: Mutex::new(loading),
            stat_cache_new: Default::default(),
        })
    }

    /// Starts listing the context in the background, for a build whose COPY or ADD will
    /// need the listing (see [`BuildContext::entries`]).
    pub fn prefetch(&self) {
        if self.entries.get().is_some() {
            return;
        }
        let Ok(mut listing) = self.listing.lock() else { return };
        if listing.is_none() {
            let (root, ignore) = (self.root.clone(), self.ignore.clone());
            *listing = Some(std::thread::spawn(move || super::walk::walk(&root, &ignore)));
        }
    }

    fn loaded_stat_cache(&self) -> &LoadedStatCache {
        self.stat_cache.get_or_init(|| {
            let loading = self.stat_cache_loading.lock().ok().and_then(|mut l| l.take());
            loading.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    /// The context's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.dockerignore` patterns in force.
    pub fn ignore(&self) -> &IgnoreMatcher {
        &self.ignore
    }

    /// Whether `.dockerignore` excludes the context path `path`.
    pub fn excluded(&self, path: &str) -> bool {
        !self.ignore.is_empty() && self.ignore.excludes(path)
    }

    /// Every included entry, sorted by path.
    pub fn entries(&self) -> Result<&[ContextEntry]> {
        if let Some(e) = self.entries.get() {
            return Ok(e);
        }
        let started = self.listing.lock().ok().and_then(|mut l| l.take());
        let walked = match started {
            Some(h) => h.join().unwrap_or_else(|_| Err(Error::Panicked("a listing thread")))?,
            None => super::walk::walk(&self.root, &self.ignore)?,
        };
        Ok(self.entries.get_or_init(|| walked))
    }

    /// The entries a COPY source selects: the entry the (cleaned) path names, or those a
    /// wildcard pattern matches. Directories stand for themselves only; their content is
    /// found with [`BuildContext::under`]. Empty when nothing matches.
    pub fn select(&self, source: &str) -> Result<Vec<ContextEntry>> {
        let cleaned = clean_path(source.trim_start_matches('/'));
        if cleaned == "." || cleaned.is_empty() {
            let meta = fs::symlink_metadata(&self.root)
                .map_err(Error::io("inspecting", self.root.clone()))?;
            return Ok(vec![ContextEntry { path: String::new(), meta: std::sync::Arc::new(meta) }]);
        }
        if cleaned.starts_with("../") || cleaned == ".." {
            return Ok(Vec::new());
        }
        if !has_wildcards(&cleaned) {
            // An excluded directory still stands for the files an exception (`!`)
            // re-includes in it, as in BuildKit.
            let reincluded = |path: &str| {
                self.ignore.has_exceptions()
                    && self.host_path(path).is_dir()
                    && self.under(path).is_ok_and(|u| !u.is_empty())
            };
            if self.excluded(&cleaned) && !reincluded(&cleaned) {
                return Ok(Vec::new());
            }
            // Symbolic links on the way (and the named source itself) are followed as if
            // the context were `/`, so a link can never reach outside the context.
            let Some(resolved) = self.resolve(&cleaned)? else { return Ok(Vec::new()) };
            if resolved != cleaned && self.excluded(&resolved) && !reincluded(&resolved) {
                return Ok(Vec::new());
            }
            let host = self.host_path(&resolved);
            return match fs::symlink_metadata(&host) {
                Ok(meta) => {
                    Ok(vec![ContextEntry { path: resolved, meta: std::sync::Arc::new(meta) }])
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(Error::Io { action: "inspecting", path: host, source: e }),
            };
        }
        let glob = rbuild_parser::dockerignore::Glob::new(&cleaned)
            .map_err(|e| Error::Build(format!("invalid source pattern {source:?}: {e}")))?;
        let mut out: Vec<ContextEntry> = Vec::new();
        for e in self.entries()? {
            if !glob.matches(&e.path) {
                continue;
            }
            // A match inside a matched directory comes with that directory already.
            if out
                .last()
                .is_some_and(|l| l.meta.is_dir() && e.path.starts_with(&format!("{}/", l.path)))
            {
                continue;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// Resolves a cleaned context path, following every symbolic link on the way (the
    /// last one too) inside the context: an absolute target starts again at the context's
    /// root and `..` stops there. `None` when a link loops or the path does not exist.
    fn resolve(&self, path: &str) -> Result<Option<String>> {
        let mut done: Vec<String> = Vec::new();
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let host = self.root.join(done.join("/"));
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::Io { action: "inspecting", path: host, source: e }),
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            links += 1;
            if links > 40 {
                return Ok(None);
            }
            let target = fs::read_link(&host).map_err(Error::io("reading the link", host))?;
            let target = target.to_string_lossy();
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(target.split('/').rev().map(str::to_string));
        }
        Ok(Some(done.join("/")))
    }

    /// The included entries below the directory `dir` (a context path; "" for the root).
    pub fn under(&self, dir: &str) -> Result<&[ContextEntry]> {
        let entries = self.entries()?;
        if dir.is_empty() {
            return Ok(entries);
        }
        let prefix = format!("{dir}/");
        let start = entries.partition_point(|e| e.path.as_str() < prefix.as_str());
        let len = entries[start..].partition_point(|e| e.path.starts_with(&prefix));
        Ok(&entries[start..start + len])
    }

    /// The host path of a context path.
    pub fn host_path(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }

    /// The sha256 of a regular file's content, from the stat cache when it still holds.
    /// `buf` is the reading buffer, kept by the caller from file to file: a fresh 256 KiB
    /// per file cost a memset each (5% of a 30,000-file cold build's CPU).
    fn content_digest(
        &self,
        entry: &ContextEntry,
        buf: &mut Vec<u8>,
        cursor: &mut Cursor<'_>,
        staging: Option<&Staging>,
    ) -> Result<String> {
        let m = &entry.meta;
        let probe = StatRecord {
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
            sha256: [0; 32],
        };
        if let Some(known) = self.known_digest(&entry.path, &probe, cursor) {
            return Ok(known);
        }
        let host = self.host_path(&entry.path);
        let mut file = fs::File::open(&host).map_err(Error::io("reading", host.clone()))?;
        let mut hasher = Sha256::new();
        if buf.is_empty() {
            buf.resize(256 * 1024, 0);
        }
        let mut copy =
            staging.filter(|_| m.size() >= Staging::FROM_BYTES).and_then(Staging::create);
        loop {
            let n = file.read(buf).map_err(Error::io("reading", host.clone()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Some((name, out)) = &mut copy {
                if out.write_all(&buf[..n]).is_err() {
                    // Only a speed-up: the step copies the file itself.
                    let _ = fs::remove_file(name);
                    copy = None;
                }
            }
        }
        if let (Some(staging), Some((name, _))) = (staging, copy) {
            if let Ok(mut copies) = staging.copies.lock() {
                copies.insert(entry.path.clone(), name);
            }
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        if let Ok(mut made) = self.stat_cache_new.lock() {
            made.insert(entry.path.clone(), StatRecord { sha256, ..probe });
        }
        Ok(hex(&sha256))
    }

    /// The digest recorded for `path` when it was made of the file as `probe` finds it: as
    /// read, or made earlier in this build (for a step's file list, after its key).
    fn known_digest(
        &self,
        path: &str,
        probe: &StatRecord,
        cursor: &mut Cursor<'_>,
    ) -> Option<String> {
        let same = |r: &&StatRecord| r.same_file(probe);
        let newer = &self.loaded_stat_cache().newer;
        let found = (!newer.is_empty()).then(|| newer.get(path).filter(same)).flatten();
        if let Some(r) = found.or_else(|| cursor.find(path).filter(same)) {
            return Some(hex(&r.sha256));
        }
        let made = self.stat_cache_new.lock().ok()?;
        made.get(path).filter(same).map(|r| hex(&r.sha256))
    }

    /// The content digests of regular files, in their order, hashed on every core; the
    /// large ones read are also copied into `staging` when given.
    pub fn content_digests(
        &self,
        files: &[&ContextEntry],
        staging: Option<&Staging>,
    ) -> Result<Vec<String>> {
        let parts = self.in_parts(files, staging, |hasher, part| {
            part.iter().map(|e| hasher.digest(e)).collect::<Result<Vec<String>>>()
        })?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// `work` done on consecutive parts of `items`, one part per core (one part when they
    /// are few), each with a [`Hasher`] of content digests; the results in the parts'
    /// order. A COPY's listing is made this way, its lines with its digests: made one
    /// after another on one core, the lines of a 10,000-file COPY took 2-5 ms of a no-op
    /// rebuild.
    pub fn in_parts<T: Sync, R: Send>(
        &self,
        items: &[T],
        staging: Option<&Staging>,
        work: impl Fn(&mut Hasher<'_>, &[T]) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let threads = crate::cores().min(8);
        let loaded = self.loaded_stat_cache();
        let hasher = || Hasher { context: self, buf: Vec::new(), cursor: loaded.cursor(), staging };
        if items.len() < 64 || threads < 2 {
            return Ok(vec![work(&mut hasher(), items)?]);
        }
        let chunk = items.len().div_ceil(threads);
        let (work, hasher) = (&work, &hasher);
        let results: Vec<Result<R>> = std::thread::scope(|s| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|part| s.spawn(move || work(&mut hasher(), part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Panicked("a hashing thread"))))
                .collect()
        });
        results.into_iter().collect()
    }

    /// Writes what this build hashed to the stat cache: as a delta when the whole map is
    /// there, few deltas are and the build hashed a quarter of the files at most, else
    /// the whole map, replacing the deltas read (see [`LoadedStatCache`]).
    pub fn save_stat_cache(&self) {
        let (Some(path), Ok(made)) = (&self.stat_cache_path, self.stat_cache_new.lock()) else {
            return;
        };
        if made.is_empty() {
            return;
        }
        let Some(dir) = path.parent() else { return };
        let _ = fs::create_dir_all(dir);
        let loaded = self.loaded_stat_cache();
        let few = made.len().saturating_mul(4) <= loaded.len();
        if loaded.whole && loaded.deltas.len() < MAX_DELTAS && few {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let Some(prefix) = delta_prefix(path) else { return };
            let name = format!("{prefix}{since_epoch:024}-{}.{STAT_CACHE_EXT}", std::process::id());
            if let Some(bytes) = encode_records(made.iter()) {
                // A lost update only costs a re-read next time.
                let _ = crate::store::write_atomically(dir, &dir.join(name), &bytes);
            }
            return;
        }
        let old = loaded.records().filter(|(k, _)| !made.contains_key(*k));
        if let Some(bytes) = encode_records(made.iter().chain(old)) {
            if crate::store::write_atomically(dir, path, &bytes).is_ok() {
                // Held by the map just written: another build's delta written since this
                // one read them is kept.
                for delta in &loaded.deltas {
                    let _ = fs::remove_file(delta);
                }
                remove_json_stat_cache(path);
            }
        }
    }
}

impl Drop for BuildContext {
    /// Frees a large listing and stat cache on another thread: freeing 30,000 entries of
    /// each took a twentieth of a no-op rebuild's time, after its image was made.
    fn drop(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let cache = std::mem::take(&mut self.stat_cache);
        if entries.get().is_some_and(|e| e.len() > 1000) {
            std::thread::spawn(move || drop((entries, cache)));
        }
    }
}

/// Extracts a tar context (plain or compressed; `docker build -`) into a new directory
/// of the store's temporary folder, removed when the returned handle is dropped.
pub fn extract_tar(
    store: &crate::store::Store,
    reader: impl std::io::Read,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(store.tmp_dir())
        .map_err(Error::io("making a directory in", store.tmp_dir()))?;
    let reader = crate::snapshot::decompress(reader)?;
    let options = crate::snapshot::ApplyOptions {
        preserve_owners: false,
        whiteouts: crate::snapshot::WhiteoutMode::Remove,
    };
    crate::snapshot::apply_layer(reader, dir.path(), options)?;
    Ok(dir)
}

/// Whether a build context names a remote place: a git repository or an http(s) URL.
pub fn is_remote(spec: &str) -> bool {
    super::copy::inputs::is_git(spec) || super::copy::inputs::is_url(spec)
}

/// A build context fetched from a remote place, in the store's temporary folder (removed
/// when this is dropped).
#[derive(Debug)]
pub struct RemoteContext {
    _dir: tempfile::TempDir,
    /// The context's directory.
    pub path: std::path::PathBuf,
}

/// Fetches a remote build context as `docker build URL` does: a git repository
/// (`URL[#REF[:DIR]]`: the commit REF, its directory DIR); an http(s) URL of a tar
/// archive (plain or compressed: its content); or of any other file, which is then the
/// Dockerfile of an empty context. Downloads go through `source`.
pub fn fetch_remote(
    store: &crate::store::Store,
    spec: &str,
    source: &dyn super::ImageSource,
) -> Result<RemoteContext> {
    use super::copy::inputs::{archive_kind, fetch_git, is_git, open_archive};
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(store.tmp_dir())
        .map_err(Error::io("making a directory in", store.tmp_dir()))?;
    let tree = dir.path().join("tree");
    if is_git(spec) {
        let (_, subdir) =
            fetch_git(spec, &tree, false).map_err(|e| Error::Download(format!("{spec}: {e}")))?;
        let path = tree.join(subdir.trim_start_matches('/'));
        if !path.starts_with(&tree) || subdir.split('/').any(|p| p == "..") {
            return Err(Error::InvalidOption(format!(
                "{spec}: {subdir} climbs out of the repository"
            )));
        }
        return Ok(RemoteContext { _dir: dir, path });
    }
    let file = dir.path().join("download");
    source.download(spec, &file)?;
    fs::create_dir(&tree).map_err(Error::io("creating", tree.clone()))?;
    if archive_kind(&file).is_some() {
        let options = crate::snapshot::ApplyOptions {
            preserve_owners: false,
            whiteouts: crate::snapshot::WhiteoutMode::Remove,
        };
        crate::snapshot::apply_layer(open_archive(&file)?, &tree, options)?;
    } else {
        let dockerfile = tree.join("Dockerfile");
        fs::rename(&file, &dockerfile).map_err(Error::io("moving", dockerfile))?;
    }
    Ok(RemoteContext { _dir: dir, path: tree })
}

/// The digest of a directory tree (`--build-context NAME=DIR`): every entry's path, type,
/// mode and content (a link's target), in path order; the cache key of what is copied or
/// mounted from it.
pub fn tree_digest(dir: &Path) -> Result<String> {
    use sha2::Digest as _;
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(Error::io("listing", d.clone()))? {
            let e = e.map_err(Error::io("listing", d.clone()))?;
            let meta = fs::symlink_metadata(e.path()).map_err(Error::io("reading", e.path()))?;
            if meta.is_dir() {
                stack.push(e.path());
            }
            entries.push((e.path(), meta));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hash = sha2::Sha256::default();
    for (path, meta) in entries {
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let what = if meta.file_type().is_symlink() {
            fs::read_link(&path).map(|t| format!("link:{}", t.display())).unwrap_or_default()
        } else if meta.is_file() {
            let mut file = fs::File::open(&path).map_err(Error::io("opening", path.clone()))?;
            let mut content = sha2::Sha256::default();
            std::io::copy(&mut file, &mut content).map_err(Error::io("reading", path.clone()))?;
            format!("file:{}", hex::encode(content.finalize()))
        } else {
            "dir".to_string()
        };
        hash.update(format!("{}\0{:o}\0{what}\n", rel.display(), meta.mode()).as_bytes());
    }
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the context, hashes its files as a COPY of all of them would, saves the stat
    /// cache; returns each file's digest.
    fn build(context: &Path, caches: &Path) -> HashMap<String, String> {
        let ctx = BuildContext::open(context, None, Some(caches)).unwrap();
        let files: Vec<&ContextEntry> =
            ctx.entries().unwrap().iter().filter(|e| e.meta.is_file()).collect();
        let digests = ctx.content_digests(&files, None).unwrap();
        ctx.save_stat_cache();
        files.iter().map(|e| e.path.clone()).zip(digests).collect()
    }

    fn deltas(caches: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(caches)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".delta-"))
            .collect();
        found.sort();
        found
    }

    /// A context of eight files `f0`..`f7` ("file N") and a folder for its stat cache,
    /// in a temporary folder (removed when the first value goes).
    fn eight_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (context, caches) = (dir.path().join("ctx"), dir.path().join("caches"));
        fs::create_dir_all(&context).unwrap();
        for i in 0..8 {
            fs::write(context.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        (dir, context, caches)
    }

    fn sha(text: &str) -> String {
        hex(&Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn parts_cover_every_item_once_in_order_with_the_right_digests() {
        let dir = tempfile::tempdir().unwrap();
        let (context, caches) = (dir.path().join("ctx"), dir.path().join("caches"));
        fs::create_dir_all(&context).unwrap();
        for i in 0..150 {
            fs::write(context.join(format!("f{i:03}")), format!("file {i}")).unwrap();
        }
        let ctx = BuildContext::open(&context, None, Some(&caches)).unwrap();
        let entries = ctx.entries().unwrap();
        assert_eq!(entries.len(), 150);
        // Few items: one part; many: one part per core, together the items in order.
        for items in [&entries[..10], entries] {
            let parts = ctx
                .in_parts(items, None, |hasher, part| {
                    part.iter()
                        .map(|e| Ok((e.path.clone(), hasher.digest(e)?)))
                        .collect::<Result<Vec<_>>>()
                })
                .unwrap();
            if items.len() < 64 || crate::cores() < 2 {
                assert_eq!(parts.len(), 1);
            }
            let joined: Vec<(String, String)> = parts.into_iter().flatten().collect();
            let want: Vec<(String, String)> = items
                .iter()
                .map(|e| {
                    let n: usize = e.path[1..].parse().unwrap();
                    (e.path.clone(), sha(&format!("file {n}")))
                })
                .collect();
            assert_eq!(joined, want);
        }
        // An error in one part is the result.
        let failed = ctx.in_parts(entries, None, |_, part| {
            if part.iter().any(|e| e.path == "f149") {
                return Err(Error::Build("f149".into()));
            }
            Ok(())
        });
        assert!(matches!(failed, Err(Error::Build(m)) if m == "f149"));
    }

    #[test]
    fn staging_makes_its_folder_with_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path().join("staged"));
        assert!(!dir.path().join("staged").exists(), "no copy, no folder");
        let (name, _) = staging.create().unwrap();
        assert!(name.starts_with(dir.path().join("staged")) && name.exists());
        // A folder that cannot be made: nothing is copied (the file is only hashed).
        fs::write(dir.path().join("file"), "x").unwrap();
        let blocked = Staging::new(dir.path().join("file").join("staged"));
        assert!(blocked.create().is_none());
    }

    #[test]
    fn a_build_that_hashed_few_files_writes_a_delta() {
        let (_dir, context, caches) = eight_files();
        let first = build(&context, &caches);
        assert_eq!(first["f3"], sha("file 3"));
        assert!(deltas(&caches).is_empty(), "the first build writes the whole map");
        // Nothing hashed: nothing written.
        assert_eq!(build(&context, &caches), first);
        assert!(deltas(&caches).is_empty());
        // One file changed, MAX_DELTAS times: each build adds a delta with that file only,
        // and the next build sees the newest content.
        for round in 1..=MAX_DELTAS {
            let text = format!("changed {}", "x".repeat(round));
            fs::write(context.join("f0"), &text).unwrap();
            let seen = build(&context, &caches);
            assert_eq!(seen["f0"], sha(&text), "round {round}");
            assert_eq!(seen["f5"], sha("file 5"));
            let written = deltas(&caches);
            assert_eq!(written.len(), round);
            let last = decode_records(&fs::read(written.last().unwrap()).unwrap()).unwrap();
            assert_eq!(last.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["f0"]);
        }
        // One more: the whole map again, the deltas gone, every record in it.
        fs::write(context.join("f1"), "changed once more").unwrap();
        let seen = build(&context, &caches);
        assert_eq!(seen["f1"], sha("changed once more"));
        assert!(deltas(&caches).is_empty());
        let whole = LoadedStatCache::read(
            &caches.join(fs::read_dir(&caches).unwrap().flatten().next().unwrap().file_name()),
        );
        assert!(whole.whole);
        assert_eq!(whole.len(), 8);
        assert_eq!(
            hex(&whole.cursor().find("f0").unwrap().sha256),
            sha(&format!("changed {}", "x".repeat(MAX_DELTAS)))
        );
        // Many files changed: the whole map, no delta.
        for i in 0..4 {
            fs::write(context.join(format!("f{i}")), format!("new {i}!")).unwrap();
        }
        let seen = build(&context, &caches);
        assert_eq!(seen["f2"], sha("new 2!"));
        assert!(deltas(&caches).is_empty());
    }

    #[test]
    fn the_json_stat_cache_of_an_older_rbuild_is_removed() {
        let (_dir, context, caches) = eight_files();
        build(&context, &caches);
        let main = fs::read_dir(&caches).unwrap().flatten().next().unwrap().path();
        let stem = main.file_stem().unwrap().to_str().unwrap().to_string();
        let old = [format!("{stem}.json"), format!("{stem}.delta-0-1.json")];
        for name in &old {
            fs::write(caches.join(name), b"{}").unwrap();
        }
        // Another context's files stay.
        fs::write(caches.join("other.json"), b"{}").unwrap();
        // Most files changed: the whole map is written, and the JSON files go.
        for i in 0..6 {
            fs::write(context.join(format!("f{i}")), format!("again {i}")).unwrap();
        }
        assert_eq!(build(&context, &caches)["f4"], sha("again 4"));
        for name in &old {
            assert!(!caches.join(name).exists(), "{name} is still there");
        }
        assert!(caches.join("other.json").exists());
        assert!(main.exists());
    }

    #[test]
    fn a_cursor_finds_every_record_in_any_order() {
        let record = |n: u64| StatRecord {
            ino: n,
            size: 0,
            mtime: 0,
            mtime_ns: 0,
            ctime: 0,
            ctime_ns: 0,
            sha256: [0; 32],
        };
        let mut sorted: Vec<(String, StatRecord)> =
            (0..500).map(|n| (format!("d{}/f{n:03}", n % 7), record(n))).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let loaded = LoadedStatCache { sorted, ..Default::default() };
        let ino = |c: &mut Cursor<'_>, p: &str| c.find(p).map(|r| r.ino);
        let mut cursor = loaded.cursor();
        // In path order, with gaps and paths that are not there.
        for (path, r) in &loaded.sorted {
            assert_eq!(ino(&mut cursor, path), Some(r.ino), "{path}");
            assert_eq!(ino(&mut cursor, &format!("{path}x")), None);
        }
        assert_eq!(ino(&mut cursor, "zz"), None);
        // Backwards, and jumping about.
        for n in (0..500).rev().step_by(3).chain([0, 499, 250, 1]) {
            assert_eq!(ino(&mut cursor, &format!("d{}/f{n:03}", n % 7)), Some(n));
        }
        assert_eq!(ino(&mut cursor, ""), None);
        assert_eq!(LoadedStatCache::default().cursor().find("d0/f000").map(|r| r.ino), None);
    }

    #[test]
    fn a_corrupt_or_lying_delta_never_gives_a_wrong_digest() {
        let (_dir, context, caches) = eight_files();
        build(&context, &caches);
        let main = fs::read_dir(&caches).unwrap().flatten().next().unwrap().path();
        let prefix = delta_prefix(&main).unwrap();
        // Damaged; of another layout; and a record that claims another digest for f1 with
        // metadata that is not f1's.
        let damaged = [STAT_CACHE_MAGIC, b"\xff\xff\xff"].concat();
        fs::write(caches.join(format!("{prefix}0-1.bin")), damaged).unwrap();
        fs::write(caches.join(format!("{prefix}0-2.bin")), b"{\"f1\":{}}").unwrap();
        let record = StatRecord {
            ino: 1,
            size: 6,
            mtime: 0,
            mtime_ns: 0,
            ctime: 0,
            ctime_ns: 0,
            sha256: [0; 32],
        };
        let lie = encode_records([(&"f1".to_string(), &record)].into_iter()).unwrap();
        fs::write(caches.join(format!("{prefix}0-3.bin")), lie).unwrap();
        fs::write(context.join("f1"), "file 1 changed").unwrap();
        let seen = build(&context, &caches);
        assert_eq!(seen["f1"], sha("file 1 changed"));
        assert_eq!(seen["f2"], sha("file 2"));
    }
}
