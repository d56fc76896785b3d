//! Arbitrary bytes as a layer (tar, gzip, zstd ... recognised by content) applied onto a
//! fresh directory, as a snapshot (overlay whiteouts) and onto a tree (whiteouts remove). Any panic or
//! hang is a bug, and so is anything written outside the directory: the test looks for a
//! marker file beside it afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_builder::snapshot::{apply_layer, ApplyOptions, WhiteoutMode};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let target = dir.path().join("root");
    let _ = std::fs::create_dir(&target);
    for whiteouts in [WhiteoutMode::Overlay, WhiteoutMode::Remove] {
        let options = ApplyOptions { whiteouts, ..ApplyOptions::default() };
        let _ = apply_layer(data, &target, options);
    }
    // Only root/ may have been written: nothing else appears in the temporary folder.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(entries.len() <= 1, "a layer wrote outside its root: {entries:?}");
});
