//! Device nodes and overlayfs whiteouts (`mknod`).

use std::path::Path;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::error::{Error, Result};

/// The kinds of special file a layer can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialFile {
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

/// Creates a device node or FIFO at `path` (devices need root).
pub fn make_special(
    path: &Path,
    kind: SpecialFile,
    mode: u32,
    major: u64,
    minor: u64,
) -> Result<()> {
    let flag = match kind {
        SpecialFile::Char => SFlag::S_IFCHR,
        SpecialFile::Block => SFlag::S_IFBLK,
        SpecialFile::Fifo => SFlag::S_IFIFO,
    };
    mknod(path, flag, Mode::from_bits_truncate(mode & 0o7777), makedev(major, minor)).map_err(|e| {
        Error::Io {
            action: "creating the special file",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

/// Creates an overlayfs whiteout (a character device 0/0) at `path`.
pub fn make_whiteout(path: &Path) -> Result<()> {
    make_special(path, SpecialFile::Char, 0, 0, 0)
}
