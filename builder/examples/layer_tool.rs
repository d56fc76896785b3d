//! A command-line front for the layer engine, used by `testdata/bench/layers.sh`:
//!
//! ```text
//! layer_tool create DIR OUT [none|gzip|zstd]   # a layer of everything in DIR
//! layer_tool apply LAYER DIR                   # apply a layer onto DIR
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rbuild_builder::snapshot::{
    apply_layer, diff_trees, write_layer, ApplyOptions, Compression, LayerOptions,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("create") => {
            let (dir, out) = (Path::new(&args[1]), Path::new(&args[2]));
            let compression = match args.get(3).map(String::as_str) {
                Some("none") => Compression::None,
                Some("zstd") => Compression::Zstd(3),
                _ => Compression::Gzip(6),
            };
            let empty = tempfile::tempdir().unwrap();
            let changes = diff_trees(empty.path(), dir).unwrap();
            let file =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out).unwrap());
            let blob = write_layer(
                dir,
                &changes,
                LayerOptions { compression, source_date_epoch: None, root_ids: None },
                file,
            )
            .unwrap();
            println!("{} {} {}", blob.digest, blob.size, blob.diff_id);
        }
        Some("apply") => {
            let file =
                std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&args[1]).unwrap());
            let report = apply_layer(file, Path::new(&args[2]), ApplyOptions::default()).unwrap();
            println!("{report:?}");
        }
        _ => {
            eprintln!(
                "usage: layer_tool create DIR OUT [none|gzip|zstd] | layer_tool apply LAYER DIR"
            );
            std::process::exit(2);
        }
    }
}
