//! # rbuild-builder
//!
//! The build engine behind `rbuild build`. This crate will hold, one module per concept:
//!
//! - `plan`: turns the parser's [`rbuild_parser::StageGraph`] into build steps with
//!   content-based, versioned cache keys;
//! - `solver`: runs the steps in dependency order, reporting progress through a `Reporter`
//!   trait so that only the CLI touches the terminal;
//! - `cache` and `store`: the content-addressed local image store (blobs, manifests,
//!   configs, tags) with crash-safe writes;
//! - `snapshot`: overlay snapshots and layer diffs (tar, gzip, zstd), applied with OCI
//!   whiteout semantics and never writing outside their target;
//! - `sandbox`: Linux namespaces for `RUN` (the only place with `unsafe` and raw syscalls);
//! - `export`: OCI image layout, `docker save` archives and registry pushes.
//!
//! Today it only re-exports the parser types the engine is built on; the engine itself
//! arrives with the store, sandbox and build issues.
#![deny(missing_docs)]

pub use rbuild_parser::{parse, Dockerfile, StageGraph};
