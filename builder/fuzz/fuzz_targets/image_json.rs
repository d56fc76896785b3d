//! Arbitrary manifest, index and config JSON (as a registry could send them) stored as
//! blobs and named in the store's index (as a manifest and as an image index), then read
//! by everything that reads images: the image list, name and ID lookup, the layer
//! snapshots, `fsck` and garbage collection. The input is the manifest, a 0xFF byte,
//! then the config. Any panic or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::image::{Descriptor, MediaType};
use rbuild_builder::store::{FsckOptions, Store};

fuzz_target!(|data: &[u8]| {
    let (manifest, config) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(store) = Store::open(dir.path().join("store")) else { return };
    let Ok(_config) = store.put_bytes(config) else { return };
    let size = manifest.len() as u64;
    let Ok(manifest) = store.put_bytes(manifest) else { return };
    // Named in the index as a pull would name it, without the checks a pull makes first.
    let named = store.update_index(|entries| {
        let mut d = Descriptor::new(MediaType::ImageManifest, size, manifest.clone());
        let mut annotations = std::collections::HashMap::new();
        annotations.insert("io.containerd.image.name".to_string(), "docker.io/library/fuzz:latest".to_string());
        d.set_annotations(Some(annotations));
        entries.push(d);
        Ok(())
    });
    if named.is_err() {
        return;
    }
    // The same bytes named as an image index, as a registry's multi-platform image is:
    // garbage collection walks indexes to the manifests they name.
    let _ = store.update_index(|entries| {
        entries.push(Descriptor::new(MediaType::ImageIndex, size, manifest.clone()));
        Ok(())
    });
    for entry in store.images().unwrap_or_default() {
        if let Ok(image) = store.image(&entry) {
            let _ = store.image_size(&image);
            let _ = store.snapshots(&image);
        }
    }
    let _ = store.resolve("fuzz");
    let _ = store.fsck(FsckOptions::default());
    let _ = store.collect_garbage();
});
