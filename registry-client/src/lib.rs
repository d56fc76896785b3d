//! # rbuild-registry-client
//!
//! A client for the OCI distribution protocol, and nothing else: it knows no local store,
//! it takes and yields descriptors and byte streams. It will hold:
//!
//! - verb-object methods: `pull_manifest`, `pull_blob`, `push_blob_stream`, `mount_blob`,
//!   `push_manifest`, `list_tags`;
//! - the token and basic authentication flows (`WWW-Authenticate` challenges, credentials
//!   from `$DOCKER_CONFIG/config.json`), with secrets redacted from every `Debug`;
//! - a digest-verifying stream, so that no byte is handed on unverified;
//! - retries with backoff for transient failures, and chunked uploads.
//!
//! The crate is empty until the registry issue; its place in the workspace is fixed now so
//! that the dependency direction (`cli` → `builder` → `parser`, `cli` → `registry-client`)
//! is set from the start.
#![deny(missing_docs)]
