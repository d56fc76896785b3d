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
//! Pull a manifest (here from a one-answer registry on the loopback interface):
//!
//! ```
//! # use std::io::{Read, Write};
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let port = listener.local_addr()?.port();
//! # std::thread::spawn(move || {
//! #     let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
//! #     for mut stream in listener.incoming().flatten().take(8) {
//! #         let mut buf = [0u8; 4096];
//! #         let n = stream.read(&mut buf).unwrap_or(0);
//! #         let reply = if buf[..n].starts_with(b"GET /v2/demo/manifests/v1 ") {
//! #             format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
//! #         } else {
//! #             "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
//! #         };
//! #         let _ = stream.write_all(reply.as_bytes());
//! #     }
//! # });
//! use rbuild_registry_client::{Client, Repository};
//!
//! let client = Client::anonymous()?;
//! let repo = Repository::new(&format!("127.0.0.1:{port}"), "demo");
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let manifest = runtime.block_on(client.pull_manifest(&repo, "v1"))?;
//! assert!(!manifest.is_index());
//! assert_eq!(manifest.media_type, "application/vnd.oci.image.manifest.v1+json");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
