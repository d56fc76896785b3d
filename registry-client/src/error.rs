//! The registry client's error type.

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed or broke (after the retries).
    #[error("{url}: the connection failed")]
    Transport {
        /// What was being fetched (no credentials in it).
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// HTTPS to the registry failed on its certificate (unknown issuer, wrong name,
    /// expired ...). Never answered by falling back to plain HTTP.
    #[error("{registry}: the TLS connection failed: {message} (trust its CA with --ca-file, or put it in /etc/docker/certs.d/{registry}/ca.crt)")]
    Tls {
        /// The registry host.
        registry: String,
        /// The certificate problem, as the TLS library states it.
        message: String,
    },
    /// A request got no complete answer within its deadline.
    #[error("{url}: no complete answer within {} s (the registry is stalled or too slow; {flag} sets the limit)", after.as_secs())]
    Timeout {
        /// What was being fetched (no credentials in it).
        url: String,
        /// The deadline that passed.
        after: std::time::Duration,
        /// The option that sets it.
        flag: &'static str,
    },
    /// The registry answered with an error status.
    #[error("{url}: the registry answered {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// The request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, if it gave one.
        message: String,
    },
    /// The registry refused the credentials, or asked for some and none were given.
    #[error("{registry}: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What happened, without secrets.
        message: String,
    },
    /// Content that does not hash to its digest.
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or manifest.
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A document larger than the client reads into memory.
    #[error("{0} is larger than the {1} bytes rbuild reads into memory")]
    TooLarge(String, u64),
    /// A response that does not follow the protocol.
    #[error("{0}")]
    Protocol(String),
    /// Writing downloaded bytes failed.
    #[error("writing {what}")]
    Io {
        /// What was being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No manifest in an index matches the platform asked for.
    #[error("no manifest for platform {0} in the image index")]
    NoPlatform(String),
}

/// The registry client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
