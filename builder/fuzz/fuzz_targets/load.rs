//! Arbitrary bytes as an archive for `rbuild load` (Docker or OCI layout, plain or
//! compressed) into a fresh store. Any panic or hang is a bug; so is a load that
//! succeeds and leaves a store `fsck` finds fault with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_builder::store::{FsckOptions, Store};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(store) = Store::open(dir.path().join("store")) else { return };
    if rbuild_builder::archive::load(&store, data).is_ok() {
        let report = store.fsck(FsckOptions::default()).expect("fsck runs");
        assert!(report.problems.iter().all(|p| !p.what.starts_with("blob")), "{report:?}");
    }
});
