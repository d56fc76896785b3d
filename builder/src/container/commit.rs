//! `rbuild commit`: a container's changes to its image's files become a layer of a new
//! image, as `docker commit` makes one: the image's config with the new layer's diff ID,
//! a history entry (the container's command, the message, the author), and the changes
//! `-c` asks for (metadata instructions, applied by the build engine to the new image).

use crate::archive::LoadedImage;
use crate::engine::rootfs::RootfsView;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::snapshot::{Change, Compression, LayerOptions};
use crate::store::Store;

/// What `rbuild commit` adds to the image.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The image's author (`-a`).
    pub author: Option<String>,
    /// Dockerfile instructions applied to the new image's config (`-c`): CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
    pub changes: Vec<String>,
}

/// Files the sandbox makes as mount points where the image has none: not the
/// container's own changes.
const STUBS: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Commits container `what` as a new image named `names` (none: untagged). The
/// container may run (its files are read as they are). Returns the new image.
pub fn commit(
    store: &Store,
    what: &str,
    names: Vec<Reference>,
    options: &CommitOptions,
) -> Result<LoadedImage> {
    let rec = super::record::find(store, what)?;
    let in_use = store.in_use()?;
    let entry = crate::store::ImageEntry { manifest: rec.manifest.clone(), names: Vec::new() };
    let image = store.image(&entry)?;
    let view = RootfsView::new(store.snapshots(&image)?);
    let dir = rec.dir(store);
    // Where the container's changes are: its upper layer, and, where its root is stacked
    // by copying, the layers of its earlier runs first.
    let mut diffs: Vec<std::path::PathBuf> =
        super::supervisor::earlier_runs(&dir)?.into_iter().map(|(_, p)| p).collect();
    diffs.push(dir.join("upper"));
    let targets: Vec<String> =
        rec.spec.volumes.iter().map(|v| v.target.trim_start_matches('/').to_string()).collect();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for diff in diffs.iter().filter(|d| d.is_dir()) {
        let changes: Vec<Change> = crate::snapshot::overlay_changes(diff)?
            .into_iter()
            .filter(|c| !is_stub(c, &view, &targets, diff))
            .collect();
        if changes.is_empty() && diffs.len() > 1 {
            continue;
        }
        let mut writer = store.verified_blob_writer()?;
        let blob = crate::snapshot::write_layer(
            diff,
            &changes,
            LayerOptions {
                compression: Compression::None,
                source_date_epoch: None,
                root_ids: crate::users::rootless_ids(),
            },
            &mut writer,
        )?;
        writer.commit_verified(&blob.digest)?;
        layers.push(blob.digest);
        diff_ids.push(blob.diff_id.to_string());
    }
    let mut config = serde_json::to_value(&image.config)
        .map_err(|e| Error::Json { what: "an image config".into(), source: e })?;
    let now = crate::engine::now_rfc3339(None);
    config["created"] = now.clone().into();
    if let Some(author) = &options.author {
        config["author"] = author.clone().into();
    }
    let ids = config["rootfs"]["diff_ids"].as_array_mut();
    let Some(ids) = ids else {
        return Err(Error::InvalidImage("the container's image config has no diff IDs".into()));
    };
    ids.extend(diff_ids.into_iter().map(serde_json::Value::from));
    let mut entry = serde_json::json!({ "created": now, "created_by": rec.command() });
    if let Some(m) = &options.message {
        entry["comment"] = m.clone().into();
    }
    if let Some(a) = &options.author {
        entry["author"] = a.clone().into();
    }
    match config["history"].as_array_mut() {
        Some(history) => history.push(entry),
        None => config["history"] = serde_json::json!([entry]),
    }
    let bytes = serde_json::to_vec(&config)
        .map_err(|e| Error::Json { what: "an image config".into(), source: e })?;
    let config_digest = store.put_bytes(&bytes)?;
    let mut all_layers: Vec<oci_spec::image::Digest> =
        image.manifest.layers().iter().map(|l| l.digest().clone()).collect();
    all_layers.extend(layers);
    if options.changes.is_empty() {
        return crate::archive::store_image(store, &config_digest, &all_layers, names);
    }
    // The changes, by the build engine, over the committed image under a name of its own
    // for the moment.
    let temporary: Reference =
        format!("rbuild-commit-{}:latest", &super::new_id()[..16]).parse()?;
    crate::archive::store_image(store, &config_digest, &all_layers, vec![temporary.clone()])?;
    // Named now, the blobs are safe; the build and the removal below take the store's
    // locks themselves (the removal the collector's, which waits for every holder).
    drop(in_use);
    let applied = apply_changes(store, &temporary, &options.changes, names);
    let _ = store.remove(&temporary.to_string(), false);
    applied
}

/// Builds `FROM image` and `changes` (metadata instructions only) into an image named
/// `names`.
fn apply_changes(
    store: &Store,
    image: &Reference,
    changes: &[String],
    names: Vec<Reference>,
) -> Result<LoadedImage> {
    use rbuild_parser::InstructionKind as K;
    let text = format!("FROM {image}\n{}\n", changes.join("\n"));
    let dockerfile =
        crate::parse(&text).map_err(|e| Error::InvalidOption(format!("commit -c: {e}")))?;
    for inst in dockerfile.instructions.iter().skip(1) {
        let allowed = matches!(
            inst.kind,
            K::Cmd(_)
                | K::Entrypoint(_)
                | K::Env(_)
                | K::Expose(_)
                | K::Label(_)
                | K::Onbuild(_)
                | K::StopSignal(_)
                | K::User(_)
                | K::Volume(_)
                | K::Workdir(_)
        );
        if !allowed {
            return Err(Error::InvalidOption(format!(
                "commit -c takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR, not {:?}",
                inst.original.split_whitespace().next().unwrap_or("")
            )));
        }
    }
    let context = tempfile::tempdir().map_err(Error::io("creating", std::env::temp_dir()))?;
    std::fs::write(context.path().join("Dockerfile"), &text)
        .map_err(Error::io("writing", context.path().join("Dockerfile")))?;
    let mut options = crate::engine::BuildOptions::from_context(context.path())?;
    options.tags = names.clone();
    let built = crate::engine::build(
        store,
        &dockerfile,
        &options,
        &crate::remote::RegistrySource::default(),
        &crate::engine::RecordingExecutor::default(),
        &crate::report::NoReport,
    )?;
    Ok(LoadedImage { id: built.image_id, manifest: built.manifest, names })
}

/// Whether a change is a mount point the sandbox made (a file for /etc/hosts and the
/// like, or for a volume of a file) where the image has nothing.
fn is_stub(change: &Change, view: &RootfsView, targets: &[String], diff: &std::path::Path) -> bool {
    let path = change.path().to_string_lossy().to_string();
    // Only mount points are looked at further: no stat for the other changes.
    if !STUBS.contains(&path.as_str()) && !targets.contains(&path) {
        return false;
    }
    let is_file =
        std::fs::symlink_metadata(diff.join(&path)).is_ok_and(|m| m.is_file() && m.len() == 0);
    is_file && matches!(view.stat(&format!("/{path}")), Ok(None))
}
