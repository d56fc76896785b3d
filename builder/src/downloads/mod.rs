//! The build-wide download cache: files a RUN step's `apt-get` fetches over plain HTTP,
//! kept in the store and served again to later steps and builds, so a `--no-cache`
//! rebuild, a sibling image or a second runner sharing the store does not fetch them
//! again.
//!
//! Only files whose content cannot change under their name are kept, and each is checked
//! before it is kept:
//! - `…/by-hash/SHA256/HEX` (the package indexes of a Debian or Ubuntu archive, named by
//!   their digest): kept only when the body's SHA-256 is HEX;
//! - `…/pool/….deb` and `.udeb` (packages): an archive never gives another file a name it
//!   has used, and apt checks every package against the digest in the index that its
//!   keyring verified, before it installs it.
//!
//! Release files, and everything else, always come from the mirror. A cached file is
//! served with the `Last-Modified` and `Content-Type` the mirror sent, so apt's files get
//! the same times as without the cache: the image does not change.
//!
//! The proxy ([`proxy`]) runs in the RUN's supervisor, listening inside the sandbox's
//! network namespace; apt is pointed at it by `APT_CONFIG` (a file on the sandbox's
//! private `/dev`), which the step's cache key and the image never see. Other programs
//! (curl, pip) go to the network as before.
//!
//! ```text
//! ROOT/downloads/content/HEX     a file's body, named by its SHA-256
//! ROOT/downloads/urls/HEX.json   per URL (HEX: the SHA-256 of the URL): its body's digest,
//!                                size and the mirror's Last-Modified and Content-Type
//! ```
//! A body is renamed into place whole before its URL's record names it; a record whose body
//! is missing or of another size is a miss. `prune` removes the folder by renaming it away
//! first.

pub mod proxy;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The folder of the cache in a store whose root is `root`.
pub fn dir_of(root: &Path) -> PathBuf {
    root.join("downloads")
}

/// What a URL may be kept as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Named by its digest: kept when the body has it.
    ByHash(String),
    /// An archive's package: kept when whole.
    Package,
}

/// Whether the file at `url` (`http://…`, without query) may be cached, and how it is
/// checked.
pub fn kind(url: &reqwest::Url) -> Option<Kind> {
    if url.scheme() != "http" || url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let path = url.path();
    let segments: Vec<&str> = path.split('/').collect();
    if let [.., by_hash, algorithm, hex] = segments.as_slice() {
        if *by_hash == "by-hash"
            && *algorithm == "SHA256"
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Some(Kind::ByHash(hex.to_string()));
        }
    }
    let name = segments.last().copied().unwrap_or_default();
    let package = name.ends_with(".deb") || name.ends_with(".udeb");
    // Dot segments are resolved by the URL parser (also encoded ones); an encoded
    // separator would let a name outside `pool/` look as if it were in it. (apt encodes
    // `+` and `~` of package versions, so other escapes are fine.)
    let plain = segments.iter().all(|s| {
        let lower = s.to_ascii_lowercase();
        *s != ".." && *s != "." && !lower.contains("%2f") && !lower.contains("%5c")
    });
    (package && plain && segments.contains(&"pool")).then_some(Kind::Package)
}

/// What is kept per URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The URL, as asked for.
    pub url: String,
    /// The body's SHA-256, lowercase hex.
    pub sha256: String,
    /// The body's size.
    pub size: u64,
    /// The mirror's `Last-Modified`, when it sent one.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// The mirror's `Content-Type`, when it sent one.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The cache in a store, as the proxy uses it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cache {
    /// `ROOT/downloads`.
    pub dir: PathBuf,
    /// Where files are written before their rename (on the store's file system).
    pub tmp: PathBuf,
}

fn url_key(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

fn valid_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Cache {
    fn record_path(&self, url: &str) -> PathBuf {
        self.dir.join("urls").join(format!("{}.json", url_key(url)))
    }

    fn content_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("content").join(sha256)
    }

    /// The kept body of `url`, opened, with its record; `None` when there is none whole.
    pub fn lookup(&self, url: &str) -> Option<(Record, fs::File)> {
        let text = fs::read(self.record_path(url)).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        if record.url != url || !valid_hex(&record.sha256) {
            return None;
        }
        let file = fs::File::open(self.content_path(&record.sha256)).ok()?;
        let size = file.metadata().ok()?.len();
        (size == record.size).then_some((record, file))
    }

    /// A writer for the body of `url` as it arrives, with the mirror's `Last-Modified`
    /// and `Content-Type`; [`Keeper::finish`] keeps it.
    pub fn keeper(
        &self,
        url: &str,
        kind: Kind,
        last_modified: Option<String>,
        content_type: Option<String>,
    ) -> Option<Keeper> {
        let file = tempfile::Builder::new().prefix("download-").tempfile_in(&self.tmp).ok()?;
        Some(Keeper {
            cache: self.clone(),
            url: url.to_string(),
            kind,
            last_modified,
            content_type,
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }
}

/// A body on its way into the cache.
#[derive(Debug)]
pub struct Keeper {
    cache: Cache,
    url: String,
    kind: Kind,
    last_modified: Option<String>,
    content_type: Option<String>,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl Keeper {
    /// Takes the next bytes of the body.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    /// Keeps the body when it is whole (`expected` bytes, when the mirror said) and, for a
    /// file named by its digest, has that digest. Returns whether it was kept.
    pub fn finish(mut self, expected: Option<u64>) -> crate::Result<bool> {
        let sha256 = hex::encode(self.hasher.finalize_reset());
        let whole = expected.is_none_or(|n| n == self.size);
        let checked = match &self.kind {
            Kind::ByHash(hex) => *hex == sha256,
            Kind::Package => true,
        };
        if !whole || !checked {
            return Ok(false);
        }
        let io = |action, path: &Path| crate::Error::io(action, path.to_path_buf());
        for sub in ["content", "urls"] {
            // Private, as every folder of the store.
            let d = self.cache.dir.join(sub);
            std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
                .create(&d)
                .map_err(io("creating", &d))?;
        }
        self.file.as_file().sync_all().map_err(io("syncing", self.file.path()))?;
        let content = self.cache.content_path(&sha256);
        self.file.persist(&content).map_err(|e| io("renaming into", &content)(e.error))?;
        let record = Record {
            url: self.url.clone(),
            sha256,
            size: self.size,
            last_modified: self.last_modified.take(),
            content_type: self.content_type.take(),
        };
        let bytes = serde_json::to_vec(&record).map_err(crate::Error::json("a download"))?;
        let path = self.cache.record_path(&self.url);
        crate::store::write_atomically(&self.cache.tmp, &path, &bytes)?;
        Ok(true)
    }
}

/// Removes the store's download cache (see [`crate::store::Store::remove_dir_aside`]: a
/// kill leaves it whole or gone). Returns the bytes freed.
pub fn prune(store: &crate::store::Store) -> crate::Result<u64> {
    let dir = dir_of(store.root());
    let size = fs::read_dir(dir.join("content"))
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    store.remove_dir_aside(&dir).map_err(crate::Error::io("removing", dir.clone()))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn only_files_fixed_by_their_name_are_kept() {
        let hex = "a".repeat(64);
        let by_hash = format!(
            "http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{hex}"
        );
        assert_eq!(kind(&url(&by_hash)), Some(Kind::ByHash(hex.clone())));
        let deb = "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb";
        assert_eq!(kind(&url(deb)), Some(Kind::Package));
        let escaped =
            "http://deb.debian.org/debian/pool/main/c/curl/curl_7.88.1-10%2bdeb12u15_amd64.deb";
        assert_eq!(kind(&url(escaped)), Some(Kind::Package));
        for other in [
            "http://deb.debian.org/debian/dists/bookworm/InRelease",
            "http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz",
            "https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb",
            "http://deb.debian.org/debian/pool/main/h/hello/hello.deb?x=1",
            "http://example.com/files/app.deb",
            "http://example.com/pool/%2e%2e/app.deb",
            "http://example.com/pool%2fx/app.deb",
            "http://example.com/x%2Fpool/app.deb",
            &format!("http://x/by-hash/SHA256/{}", "A".repeat(64)),
            &format!("http://x/by-hash/MD5Sum/{hex}"),
        ] {
            assert_eq!(kind(&url(other)), None, "{other}");
        }
    }

    #[test]
    fn a_body_is_kept_only_when_whole_and_as_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let cache = Cache { dir: dir_of(dir.path()), tmp: store.tmp_dir() };
        let body = b"Package: hello\n";
        let good = hex::encode(Sha256::digest(body));
        let last_modified = Some("Sat, 01 Jan 2022 00:00:00 GMT".to_string());
        let keep = |u: &str, kind: Kind, expected| {
            let mut k = cache.keeper(u, kind, last_modified.clone(), None).unwrap();
            k.write(body).unwrap();
            k.finish(expected).unwrap()
        };
        // A body that is not what its name says, or cut short, is not kept.
        let wrong = format!("http://m/by-hash/SHA256/{}", "0".repeat(64));
        assert!(!keep(&wrong, Kind::ByHash("0".repeat(64)), None));
        assert!(cache.lookup(&wrong).is_none());
        let deb = "http://m/pool/h/hello.deb";
        assert!(!keep(deb, Kind::Package, Some(body.len() as u64 + 1)));
        assert!(cache.lookup(deb).is_none());
        // Whole and as named: kept, and served with the mirror's time.
        let right = format!("http://m/by-hash/SHA256/{good}");
        assert!(keep(&right, Kind::ByHash(good.clone()), Some(body.len() as u64)));
        let (found, _) = cache.lookup(&right).unwrap();
        assert_eq!((found.sha256.as_str(), found.size), (good.as_str(), body.len() as u64));
        assert_eq!(found.last_modified, last_modified);
        // A body that lost bytes (a damaged store) is a miss, not served.
        fs::write(cache.content_path(&good), b"Package").unwrap();
        assert!(cache.lookup(&right).is_none());
        // Pruned: gone.
        assert!(keep(deb, Kind::Package, None));
        assert!(prune(&store).unwrap() > 0);
        assert!(cache.lookup(deb).is_none() && !cache.dir.exists());
    }
}
