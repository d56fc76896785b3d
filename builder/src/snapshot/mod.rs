//! Layers as file system changes: applying layer tars onto directories, and creating
//! them from changes (two trees compared, or an overlayfs upper directory), with OCI
//! whiteout semantics and without ever writing outside the target directory.

mod apply;
mod create;
pub(crate) mod path;
mod pgzip;
pub mod stack;

pub use apply::{
    apply_layer, apply_layer_below, decompress, ApplyOptions, ApplyReport, Below, WhiteoutMode,
};
pub use create::{
    diff_trees, is_opaque_dir, overlay_changes, tar_into, write_layer, write_tar, Change,
    Compression, LayerBlob, LayerOptions, LayerSink, OPAQUE_FILE,
};
pub use pgzip::ParallelGzip;
