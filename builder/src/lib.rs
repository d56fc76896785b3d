//! # rbuild-builder
//!
//! The build engine behind `rbuild build`, and the local image store every command shares.
//!
//! Here today:
//! - [`reference`](mod@reference): image references, parsed and normalised as Docker does;
//! - [`store`]: the content-addressed image store (an OCI image layout: verified blobs,
//!   crash-safe writes, names in `index.json`, garbage collection);
//! - [`archive`]: `docker save` and OCI image archives, read and written;
//! - [`snapshot`]: layers applied onto directories with OCI whiteouts and never writing
//!   outside them, and layers created from changes (tree compare or overlayfs upper),
//!   deterministic, compressed on every core;
//! - [`digest`]: sha256 digests and hashing readers and writers.
//!
//! - [`sandbox`]: the only place with raw system calls: running a command in Linux
//!   namespaces over an overlay of layer snapshots (`rbuild run`, and RUN steps to come),
//!   and `mknod` for device nodes and overlay whiteouts.
//!
//! - [`engine`]: the build itself: the stage graph run step by step (stages in parallel),
//!   RUN in the sandbox, COPY and ADD from the context or other stages, content-based
//!   cache keys kept in the store, Docker's image config and history.
//!
//! ```
//! use rbuild_builder::reference::Reference;
//! let r: Reference = "busybox".parse()?;
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.familiar(), "busybox:latest");
//! # Ok::<(), rbuild_builder::reference::ReferenceError>(())
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod digest;
pub mod engine;
mod error;
pub mod export;
pub mod limits;
pub mod reference;
pub mod remote;
pub mod report;
// The sandbox is the one module allowed `unsafe` (each use with a SAFETY comment).
#[allow(unsafe_code)]
pub mod sandbox;
pub mod snapshot;
pub mod store;
pub mod workflow;

pub use error::{chain, Error, Result};
pub use rbuild_parser::{parse, Dockerfile, StageGraph};
