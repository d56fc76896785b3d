//! Layers as file system changes: applying layer tars onto directories (and, coming,
//! creating them from changes), with OCI whiteout semantics and without ever writing
//! outside the target directory.

mod apply;
mod path;

pub use apply::{apply_layer, decompress, ApplyOptions, ApplyReport};
