//! Caps on the size of inputs that rbuild reads whole into memory. A Dockerfile or a
//! `.dockerignore` comes from whoever wrote the context, and `-f /dev/zero` or a
//! generated file of gigabytes must fail at once with a clear error, not fill the memory.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest Dockerfile rbuild reads: 8 MiB (real ones, heredoc scripts included, stay
/// far below 1 MiB).
pub const MAX_DOCKERFILE_BYTES: u64 = 8 << 20;

/// The largest `.dockerignore` rbuild reads: 4 MiB.
pub const MAX_DOCKERIGNORE_BYTES: u64 = 4 << 20;

/// Reads all of `reader`, failing as soon as it gives more than `limit` bytes. `what`
/// names the input in the error (a path, or "standard input").
pub fn read_limited(reader: impl Read, limit: u64, what: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes).map_err(Error::io("reading", what))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge { path: what.to_path_buf(), limit });
    }
    Ok(bytes)
}

/// Reads the file at `path` with [`read_limited`].
pub fn read_file_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(Error::io("opening", path))?;
    read_limited(file, limit, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_past_the_limit() {
        let err = read_limited(std::io::repeat(0), 1024, Path::new("/dev/zero"));
        assert!(matches!(err, Err(Error::TooLarge { limit: 1024, .. })), "{err:?}");
        let ok = read_limited(&b"FROM scratch\n"[..], 1024, Path::new("Dockerfile"));
        assert_eq!(ok.ok().map(|b| b.len()), Some(13));
    }
}
