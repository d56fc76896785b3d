//! Writing images out of the store: the final file system into a directory or a tar
//! (`--output type=local|tar`), and image archives (`rbuild save`, `--output
//! type=docker|oci`). Files are written atomically: no half-written archive is left under
//! its name.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveFormat};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::{Image, Store};

/// Where `--output` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The final file system into a directory.
    Local(PathBuf),
    /// The final file system as a tar (`None`: the caller's stream).
    Tar(Option<PathBuf>),
    /// An image archive (`None`: the caller's stream).
    Archive(ArchiveFormat, Option<PathBuf>),
}

impl Output {
    /// Reads buildx's syntax: `type=local,dest=DIR`, `type=tar,dest=FILE|-`,
    /// `type=docker|oci,dest=FILE|-`; a bare `DIR` means `type=local,dest=DIR`.
    pub fn parse(text: &str) -> Result<Output> {
        if !text.contains('=') {
            return Ok(Output::Local(PathBuf::from(text)));
        }
        let invalid =
            |why: String| Error::InvalidOption(format!("invalid --output {text:?}: {why}"));
        let mut kind = None;
        let mut dest = None;
        for field in text.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(v.to_string()),
                _ => return Err(invalid("expected type=TYPE,dest=PATH".into())),
            }
        }
        let file = |d: Option<String>| d.filter(|d| d != "-").map(PathBuf::from);
        match kind.as_deref() {
            Some("local") => Ok(Output::Local(PathBuf::from(
                dest.ok_or_else(|| invalid("type=local needs dest=DIR".into()))?,
            ))),
            Some("tar") => Ok(Output::Tar(file(dest))),
            Some("docker") => Ok(Output::Archive(ArchiveFormat::Docker, file(dest))),
            Some("oci") => Ok(Output::Archive(ArchiveFormat::Oci, file(dest))),
            Some(other) => {
                Err(invalid(format!("type {other:?} is not one of local, tar, docker, oci")))
            }
            None => Err(invalid("type= is missing".into())),
        }
    }

    /// Whether it writes to the caller's stream (standard output, for the CLI).
    pub fn to_stream(&self) -> bool {
        matches!(self, Output::Tar(None) | Output::Archive(_, None))
    }
}

/// Writes `image` (named `tags` in archives) as `output` says; outputs without a path go
/// to `stream`.
pub fn export(
    store: &Store,
    image: &Image,
    tags: &[Reference],
    output: &Output,
    stream: &mut dyn Write,
) -> Result<()> {
    match output {
        Output::Local(dir) => {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
            store.unpack(image, dir)
        }
        Output::Tar(dest) => {
            let tmp = tempfile::Builder::new()
                .prefix("export-")
                .tempdir_in(store.tmp_dir())
                .map_err(Error::io("making a directory in", store.tmp_dir()))?;
            let root = tmp.path().join("rootfs");
            let empty = tmp.path().join("empty");
            for dir in [&root, &empty] {
                std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
            }
            store.unpack(image, &root)?;
            let changes = crate::snapshot::diff_trees(&empty, &root)?;
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok());
            match dest {
                Some(path) => atomically(path, |file| {
                    crate::snapshot::write_tar(&root, &changes, epoch, None, file).map(drop)
                }),
                None => crate::snapshot::write_tar(
                    &root,
                    &changes,
                    epoch,
                    None,
                    std::io::BufWriter::new(stream),
                )
                .map(drop),
            }
        }
        Output::Archive(format, dest) => write_archive(
            store,
            &[(image.clone(), tags.to_vec())],
            *format,
            dest.as_deref(),
            stream,
        ),
    }
}

/// Writes images as an archive to the file `path`, or to `stream` when `None`.
pub fn write_archive(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    format: ArchiveFormat,
    path: Option<&Path>,
    stream: &mut dyn Write,
) -> Result<()> {
    match path {
        Some(path) => atomically(path, |file| archive::save(store, images, format, file)),
        None => archive::save(store, images, format, std::io::BufWriter::new(stream)),
    }
}

/// Writes a new file at `path` through `write`, under a temporary name in the same
/// directory until it is complete.
fn atomically(
    path: &Path,
    write: impl FnOnce(std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("creating a file in", dir))?;
    write(std::io::BufWriter::new(tmp.as_file_mut()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        action: "writing",
        path: path.into(),
        source: e.error,
    })?;
    Ok(())
}
