//! # rbuild-registry-client
//!
//! A client for the OCI distribution protocol, and nothing else: it knows no local store,
//! it takes and yields descriptors, byte streams and files.
//!
//! - [`Client`]: requests with authentication on demand (`WWW-Authenticate` challenges,
//!   Basic, Bearer tokens from the realm, cached per scope), retries with backoff on
//!   connection errors, 5xx and 429 (honouring `Retry-After`), HTTPS with extra CA files
//!   and `/etc/docker/certs.d`, plain HTTP for loopback and `--insecure-registry` hosts;
//! - verbs: [`Client::pull_manifest`], [`Client::push_manifest`], [`Client::blob_size`],
//!   [`Client::pull_blob`] (digest-verified, resumed with `Range` when a connection breaks),
//!   [`Client::mount_blob`], [`Client::push_blob`] (skips blobs the registry has);
//! - [`DockerConfig`]: credentials from `config.json` (`auths`, identity tokens,
//!   `credsStore`/`credHelpers`), written back the way `docker login` does;
//! - [`Progress`]: how transfers report progress (only the CLI draws it).
//!
//! Secrets never appear in `Debug` output: [`Credentials`] and [`auth::AuthEntry`] redact
//! them, and authorization headers are marked sensitive.
#![deny(missing_docs)]

pub mod auth;
mod client;
mod distribution;
mod error;

pub use auth::{Anonymous, CredentialSource, Credentials, DockerConfig};
pub use client::{is_loopback, Client, ClientOptions, Repository, DOCKER_HUB_REGISTRY};
pub use distribution::{Manifest, NoProgress, Progress, MANIFEST_TYPES, MAX_MANIFEST};
pub use error::{Error, Result};
