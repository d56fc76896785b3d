//! The builder crate's error type.

use std::path::PathBuf;

use oci_spec::image::Digest;

use crate::reference::ReferenceError;

/// Everything that can go wrong in the store, the layer engine and image transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("writing", "renaming" ...).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input read whole (a Dockerfile, a `.dockerignore`) is larger than its cap.
    #[error("{} is larger than {} MiB, the most rbuild reads", path.display(), limit >> 20)]
    TooLarge {
        /// The input.
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A blob the operation needs is not in the store.
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    /// No image matches a name, ID or digest.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// No container matches a name or ID.
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// A short ID matches more than one image.
    #[error("image ID {0} is ambiguous: it matches several images")]
    AmbiguousImage(String),
    /// An invalid image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// JSON that does not have the shape it must have.
    #[error("{what}: malformed JSON")]
    Json {
        /// Which document.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An archive (`rbuild load`) or layer that is not acceptable.
    #[error("{0}")]
    BadArchive(String),
    /// A layer entry that would write outside its target or is otherwise refused.
    #[error("refusing layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as the archive gives it.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A build failed; the message says why.
    #[error("{0}")]
    Build(String),
    /// A Dockerfile instruction failed (or did not parse): where, and why.
    #[error("{}", .0.rendered)]
    Step(Box<StepError>),
    /// A registry request failed.
    #[error("{action}")]
    Registry {
        /// What was being done (`pulling busybox:latest`).
        action: String,
        /// The cause.
        #[source]
        source: rbuild_registry_client::Error,
    },
    /// A download over HTTP(S) failed (ADD of a URL); the message is the HTTP client's.
    #[error("{0}")]
    Download(String),
    /// A step log that is not kept.
    #[error("{0}")]
    NoSuchLog(String),
    /// A build option that does not read (`--secret`, `--output`, `--allow` ...).
    #[error("{0}")]
    InvalidOption(String),
    /// An image whose documents disagree with each other.
    #[error("{0}")]
    InvalidImage(String),
    /// The sandbox could not be set up or the command not started (a namespace, a mount,
    /// the network, a capability, the seccomp filter ...).
    #[error("{0}")]
    Sandbox(String),
    /// A thread or task of rbuild's own ended in a panic.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The store refuses an operation (an image in use, a name that is taken...).
    #[error("{0}")]
    Conflict(String),
}

/// Where in a Dockerfile a build failed, and why: the fields a JSON consumer reads, and
/// the text a terminal shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// The Dockerfile's name as the user gave it.
    pub file: String,
    /// The instruction's span (1-based lines and columns).
    pub span: rbuild_parser::Span,
    /// What went wrong.
    pub message: String,
    /// `FILE:LINE:COL: message`, the offending line and a caret under the instruction.
    pub rendered: String,
}

impl StepError {
    /// The error of a parse or step failure in the Dockerfile `text` named `file`.
    pub fn new(file: &str, text: &str, error: &rbuild_parser::ParseError) -> StepError {
        StepError {
            file: file.to_string(),
            span: error.span,
            message: error.kind.to_string(),
            rendered: rbuild_parser::render_error(file, text, error),
        }
    }
}

impl Error {
    /// An I/O error with its action and path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    /// A registry error met while doing `action`.
    pub fn registry(action: impl Into<String>, source: rbuild_registry_client::Error) -> Error {
        Error::Registry { action: action.into(), source }
    }

    /// A JSON error about `what`.
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }
}

/// The builder crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `a: b: c` (as `anyhow`'s `{:#}`), for messages
/// that carry another error (warnings, step errors).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
