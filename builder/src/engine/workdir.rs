//! WORKDIR's directory, made in a layer of its own as BuildKit makes it: every WORKDIR but
//! `/` commits a layer, an empty one when the directory is there already.

use std::time::Instant;

use rbuild_parser::Instruction;
use serde_json::json;

use super::cache::CacheKey;
use super::commit::{commit, reuse};
use super::copy::{make_parents, restore_parent_times};
use super::record::StepRecord;
use super::rootfs::RootfsView;
use super::stage::State;
use super::Event;
use crate::error::Result;

/// The working directory after `WORKDIR path`, as BuildKit sets it: an absolute path as
/// written (not cleaned: `/a/../b/` stays, in the config and the history), a relative one
/// joined to the current directory and cleaned.
pub(super) fn normalize(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let current = if current.is_empty() { "/" } else { current };
    rbuild_parser::dockerignore::clean_path(&format!("{current}/{path}"))
}

/// WORKDIR: makes the directory when the image lacks it, in a layer of its own (an empty
/// layer when it is there: BuildKit's mkdir step commits one all the same). `/` makes no
/// layer.
pub(super) fn make_workdir(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    path: &str,
    number: usize,
) -> Result<bool> {
    let created_by = format!("WORKDIR {path}");
    let view = state.view()?;
    let parts = view.resolve(path, true)?;
    if path == "/" {
        state.add_history(created_by.clone(), true, None);
        state.record_step(StepRecord {
            number,
            created_by,
            cache_key: None,
            cached: state.all_cached,
            ..Default::default()
        });
        return Ok(state.all_cached);
    }
    let exists = view.entry(&parts).is_some_and(|(_, m)| m.is_dir());
    if view.entry(&parts).is_some() && !exists {
        return Err(
            state.error(inst, &format!("WORKDIR {path}: a file of that name is in the way"))
        );
    }
    // Made as BuildKit makes it: owned by the stage's USER (its primary group).
    let user = state.config.config.user.clone().unwrap_or_default();
    let owner = if user.is_empty() {
        None
    } else {
        let text = |file: &str| -> Result<String> {
            Ok(String::from_utf8_lossy(&view.read(file)?.unwrap_or_default()).into_owned())
        };
        let who = crate::users::identity(&user, &text("/etc/passwd")?, &text("/etc/group")?)
            .map_err(|e| state.error(inst, &e))?;
        Some((who.uid, who.gid))
    };
    let mut inputs = json!({"op": "mkdir", "path": RootfsView::display(&parts)});
    if let Some(owner) = owner {
        inputs["owner"] = json!(owner);
    }
    let key = CacheKey::new(&state.chain, inputs.clone());
    let shared = state.shared;
    let parent = state.chain.clone();
    state.note_inputs(&parent, &inputs, Default::default());
    if state.uses_cache() {
        if let Some(record) = shared.store.cache_lookup(&key) {
            shared.reporter.event(Event::Cached { number });
            reuse(state, number, key, record, created_by)?;
            return Ok(true);
        }
    }
    state.explain_miss(number, &key);
    state.all_cached = false;
    let started = Instant::now();
    let layer_dir = shared.store.snapshot_tempdir()?;
    if !exists {
        make_parents(&view, layer_dir.path(), &parts, true, owner)?;
        restore_parent_times(&view, layer_dir.path(), &parts, true);
    }
    commit(state, layer_dir.path(), vec![key], created_by, number, started, false)?;
    Ok(false)
}
