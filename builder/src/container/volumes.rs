//! Volumes: folders of the store (`volumes/NAME/_data`) that containers mount and that
//! outlive them, as Docker's local volumes. A named one (`run -v NAME:/path`) is made on
//! first use; an image's VOLUME without a `-v` gets an anonymous one (a 64-hex name),
//! removed with its container by `rm -v` or `--rm`. A new volume mounted where the image
//! has files starts with a copy of them (Docker's copy-up: a database image's initial
//! data directory, say).

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::rootfs::RootfsView;
use crate::error::{Error, Result};
use crate::store::Store;

/// The folder of the store's volumes.
pub fn volumes_dir(store: &Store) -> PathBuf {
    store.root().join("volumes")
}

/// What `volume ls` and `volume inspect` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `local`, as Docker's.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The folder containers see.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    /// When it was made (RFC 3339).
    #[serde(rename = "CreatedAt")]
    pub created: String,
    /// Whether rbuild made it for an image's VOLUME.
    #[serde(rename = "Anonymous")]
    pub anonymous: bool,
}

/// Whether `name` may name a volume: Docker's rule, two characters at least, a letter or
/// digit and then letters, digits, `_`, `.` and `-`.
pub fn valid_name(name: &str) -> bool {
    name.len() >= 2 && super::record::valid_name(name)
}

/// The data folder of volume `name`, made (and filled from `image_path` in `view` when
/// the image has a directory there) if it does not exist yet.
pub fn ensure(
    store: &Store,
    name: &str,
    anonymous: bool,
    copy_from: Option<(&RootfsView, &str)>,
) -> Result<PathBuf> {
    if !valid_name(name) {
        return Err(Error::InvalidOption(format!(
            "invalid volume name {name:?}: a letter or digit, then letters, digits, _, . or -"
        )));
    }
    let dir = volumes_dir(store).join(name);
    let data = dir.join("_data");
    if data.is_dir() {
        return Ok(data);
    }
    let _lock = store.lock()?;
    if data.is_dir() {
        return Ok(data);
    }
    // Made aside and renamed into place: a volume is whole or absent.
    fs::create_dir_all(volumes_dir(store)).map_err(Error::io("creating", volumes_dir(store)))?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(volumes_dir(store))
        .map_err(Error::io("creating a folder in", volumes_dir(store)))?;
    let tmp_data = tmp.path().join("_data");
    fs::create_dir(&tmp_data).map_err(Error::io("creating", tmp_data.clone()))?;
    if let Some((view, path)) = copy_from {
        let parts = view.resolve(path, true)?;
        if let Some((_, meta)) = view.entry(&parts).filter(|(_, m)| m.is_dir()) {
            let entries = view.walk(&parts)?;
            crate::snapshot::stack::copy_walked(&entries, &tmp_data, Some(&meta))?;
        }
    }
    let info = VolumeInfo {
        name: name.to_string(),
        driver: "local".into(),
        mountpoint: data.clone(),
        created: crate::engine::now_rfc3339(None),
        anonymous,
    };
    let json = serde_json::to_vec_pretty(&info)
        .map_err(|e| Error::Json { what: "a volume".into(), source: e })?;
    fs::write(tmp.path().join("volume.json"), json)
        .map_err(Error::io("writing", tmp.path().join("volume.json")))?;
    let made = tmp.keep();
    fs::rename(&made, &dir).map_err(Error::io("renaming into", dir.clone()))?;
    Ok(data)
}

/// Every volume of the store, by name.
pub fn list(store: &Store) -> Result<Vec<VolumeInfo>> {
    let dir = volumes_dir(store);
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut all: Vec<VolumeInfo> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| fs::read(e.path().join("volume.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// One volume.
pub fn inspect(store: &Store, name: &str) -> Result<VolumeInfo> {
    list(store)?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| Error::InvalidOption(format!("no such volume: {name}")))
}

/// The names of the containers that use volume `name`.
pub fn users(store: &Store, name: &str) -> Result<Vec<String>> {
    Ok(super::record::list(store)?
        .into_iter()
        .filter(|r| r.volumes.iter().any(|v| v == name))
        .map(|r| r.name)
        .collect())
}

/// Removes a volume no container uses.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    inspect(store, name)?;
    let using = users(store, name)?;
    if !using.is_empty() {
        return Err(Error::Conflict(format!(
            "volume {name} is in use by container(s) {}: remove them first",
            using.join(", ")
        )));
    }
    let dir = volumes_dir(store).join(name);
    let _lock = store.lock()?;
    crate::store::remove_tree(&dir).map_err(Error::io("removing", dir.clone()))
}

/// Removes the volumes no container uses: the anonymous ones, or every one with `all`.
/// Returns their names.
pub fn prune(store: &Store, all: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for v in list(store)? {
        if (all || v.anonymous) && users(store, &v.name)?.is_empty() {
            remove(store, &v.name)?;
            removed.push(v.name);
        }
    }
    Ok(removed)
}

/// Where a mount's source names a volume rather than a host path: a name, not a path.
pub fn is_volume_name(source: &str) -> bool {
    !source.is_empty()
        && !source.contains('/')
        && !source.starts_with('.')
        && !source.starts_with('~')
}
