//! Where COPY and ADD sources come from and what they say: archives recognised by their
//! content, git repositories, URLs, `--chown` owners and `--chmod` modes.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::super::rootfs::RootfsView;
use crate::error::{Error, Result};

/// The compression of an archive, from its first bytes; `None` when it is not one. A
/// compressed file is an archive only when what it holds starts with a tar header: a
/// gzip file of anything else is copied as it is, as BuildKit does.
pub(crate) fn archive_kind(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 512];
    let n = fs::File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    let head = &head[..n];
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        return is_tar_header(head).then_some("tar");
    };
    let mut inner = [0u8; 512];
    let mut reader = decompressor(path, kind).ok()?;
    let mut got = 0;
    while got < inner.len() {
        match reader.read(&mut inner[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    is_tar_header(&inner[..got]).then_some(kind)
}

/// Whether `block` is a tar header: the `ustar` magic, or (old tars) a checksum that adds
/// up.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
        .sum();
    sum == stored && block[0] != 0
}

/// A reader of the file at `path` decompressed as `kind` says.
fn decompressor(path: &Path, kind: &str) -> Result<Box<dyn Read>> {
    let file = fs::File::open(path).map_err(Error::io("reading", path))?;
    let reader = std::io::BufReader::new(file);
    Ok(match kind {
        "bzip2" => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        "xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        _ => crate::snapshot::decompress(reader)?,
    })
}

/// Opens an archive for extraction, decompressing by content.
pub(crate) fn open_archive(path: &Path) -> Result<Box<dyn Read>> {
    decompressor(path, archive_kind(path).unwrap_or("tar"))
}

/// `--chown=user[:group]` as numbers, names looked up in the image's `/etc/passwd` and
/// `/etc/group` ([`crate::users::chown_ids`]).
pub(crate) fn resolve_owner(
    view: &RootfsView,
    spec: &str,
) -> std::result::Result<(u32, u32), String> {
    let read = |file: &str| -> std::result::Result<String, String> {
        let bytes = view.read(file).map_err(|e| e.to_string())?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let numeric = |s: &str| s.is_empty() || s.parse::<u32>().is_ok();
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    // The files are read only when a name needs them.
    let passwd = if numeric(user) { String::new() } else { read("/etc/passwd")? };
    let group = if numeric(group) { String::new() } else { read("/etc/group")? };
    crate::users::chown_ids(spec, &passwd, &group)
}

/// Applies `--chmod` (octal like `755`, or symbolic like `u+x,g-w,o=r`) to `mode`.
pub(crate) fn apply_chmod(spec: &str, mode: u32, is_dir: bool) -> std::result::Result<u32, String> {
    if !spec.is_empty() && spec.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(spec, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| format!("invalid chmod {spec:?}"));
    }
    let bad = || {
        format!("invalid chmod {spec:?}: expected octal digits or who+perm clauses like u+x,go-w")
    };
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let (who, rest) = clause.split_at(op_at);
        let mut mask = 0u32;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o0007,
                'a' => 0o6777,
                _ => return Err(bad()),
            };
        }
        if who.is_empty() {
            mask = 0o6777;
        }
        let op = rest.chars().next().ok_or_else(bad)?;
        let mut bits = 0u32;
        for c in rest[1..].chars() {
            bits |= match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                'X' if is_dir || mode & 0o111 != 0 => 0o111,
                'X' => 0,
                's' => 0o6000,
                't' => 0o1000,
                _ => return Err(bad()),
            };
        }
        let bits = bits & (mask | if rest.contains('t') { 0o1000 } else { 0 });
        mode = match op {
            '+' => mode | bits,
            '-' => mode & !bits,
            _ => (mode & !(mask & 0o7777)) | bits,
        };
    }
    Ok(mode)
}

/// A file name taken from a URL or a heredoc, refused when it is not one plain name.
pub(crate) fn plain_name(name: &str, what: &str) -> std::result::Result<PathBuf, String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!("{what} {name:?} does not give a usable file name"));
    }
    Ok(PathBuf::from(name))
}

/// Whether an ADD source is a git repository (`https://host/repo.git#ref:dir`,
/// `git://...`, `git@host:repo`, `ssh://...`).
pub(crate) fn is_git(s: &str) -> bool {
    let base = s.split('#').next().unwrap_or(s);
    s.starts_with("git://")
        || s.starts_with("git@")
        || s.starts_with("ssh://")
        || (is_url(s) && (base.ends_with(".git") || base.ends_with(".git/")))
}

/// Fetches `source` (`URL[#REF[:SUBDIR]]`) into `dir` with the git command, one commit
/// deep; removes `.git` unless `keep`. Returns the commit and the subdirectory.
pub(crate) fn fetch_git(
    source: &str,
    dir: &Path,
    keep: bool,
) -> std::result::Result<(String, String), String> {
    let (url, fragment) = source.split_once('#').unwrap_or((source, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let reference = if reference.is_empty() { "HEAD" } else { reference };
    if reference.starts_with('-') || url.starts_with('-') {
        return Err("a git URL or reference cannot start with -".into());
    }
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let git = |args: &[&str]| -> std::result::Result<String, String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running git (is it installed?): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git(&["init", "-q"])?;
    git(&["remote", "add", "origin", url])?;
    git(&[
        "-c",
        "http.lowSpeedLimit=1",
        "-c",
        "http.lowSpeedTime=120",
        "fetch",
        "-q",
        "--depth",
        "1",
        "origin",
        reference,
    ])?;
    git(&["checkout", "-q", "FETCH_HEAD"])?;
    let commit = git(&["rev-parse", "HEAD"])?;
    if !keep {
        let dotgit = dir.join(".git");
        fs::remove_dir_all(&dotgit).map_err(|e| format!("removing {}: {e}", dotgit.display()))?;
    }
    Ok((commit, subdir.to_string()))
}

pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

pub(crate) fn file_name_of_url(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.splitn(4, '/').nth(3).unwrap_or("");
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("index.html").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_forms() {
        assert_eq!(apply_chmod("755", 0o644, false), Ok(0o755));
        assert_eq!(apply_chmod("u+x", 0o644, false), Ok(0o744));
        assert_eq!(apply_chmod("go-r", 0o644, false), Ok(0o600));
        assert_eq!(apply_chmod("a=rX", 0o700, true), Ok(0o555));
        assert_eq!(apply_chmod("a=rX", 0o600, false), Ok(0o444));
        assert_eq!(apply_chmod("+x", 0o600, false), Ok(0o711));
        assert!(apply_chmod("999", 0, false).is_err());
        assert!(apply_chmod("q+x", 0, false).is_err());
    }

    #[test]
    fn url_names() {
        assert_eq!(file_name_of_url("http://h:1/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(file_name_of_url("https://h/"), "index.html");
    }
}
