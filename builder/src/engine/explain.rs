//! Why a step missed the cache: its inputs (what went into its cache key) compared with
//! those of the same step in the last build of the same line of builds (the same tag and
//! target, or without a tag the same context, Dockerfile and target).
//!
//! Each keyed step's record keeps its parent key and its inputs; a COPY or ADD also keeps
//! the list of the files it selected (`ROOT/explain/KEY.json`), so that a miss can name
//! the files that changed. Secrets never enter a key, so no explanation can show one.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use sha2::Digest as _;

use super::cache::CacheKey;
use super::record::{BuildRecord, StepRecord};
use super::BuildOptions;
use crate::error::{Error, Result};
use crate::store::Store;

/// What a COPY or ADD selected: (source path, what it is: mode, owner, content).
pub type FileList = Vec<(String, String)>;

/// How many file names an explanation lists for each kind of change.
const NAMES_SHOWN: usize = 3;

/// What identifies a line of builds: the first tag and the target, or without a tag the
/// context, the Dockerfile and the target.
pub fn lineage(options: &BuildOptions) -> String {
    let target = options.target.clone().unwrap_or_default();
    match options.tags.first() {
        Some(tag) => format!("tag {tag} target {target}"),
        None => {
            let context = std::path::absolute(&options.context).unwrap_or_default();
            format!(
                "context {} file {} target {target}",
                context.display(),
                options.dockerfile_name
            )
        }
    }
}

fn lineage_path(store: &Store, lineage: &str) -> PathBuf {
    let hash = hex::encode(sha2::Sha256::digest(lineage.as_bytes()));
    store.root().join("builds").join("lines").join(format!("{hash}.json"))
}

/// The record of the last build of `lineage`, if there was one here.
pub fn previous(store: &Store, lineage: &str) -> Option<BuildRecord> {
    let text = fs::read_to_string(lineage_path(store, lineage)).ok()?;
    let id: oci_spec::image::Digest = serde_json::from_str::<String>(&text).ok()?.parse().ok()?;
    store.build_record(&id)
}

/// Remembers `image_id` as the last build of `lineage`.
pub fn remember(store: &Store, lineage: &str, image_id: &oci_spec::image::Digest) -> Result<()> {
    let path = lineage_path(store, lineage);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(Error::io("creating", dir.to_path_buf()))?;
    }
    let bytes = serde_json::to_vec(&image_id.to_string()).map_err(Error::json("build line"))?;
    crate::store::write_atomically(&store.tmp_dir(), &path, &bytes)
}

fn files_path(store: &Store, key: &CacheKey) -> PathBuf {
    store.root().join("explain").join(format!("{}.json", key.0))
}

/// Keeps the files a COPY or ADD with `key` selected: path → what it was (mode, owner,
/// content).
pub fn save_files(store: &Store, key: &CacheKey, files: &FileList) -> Result<()> {
    let path = files_path(store, key);
    if path.exists() {
        return Ok(());
    }
    let dir = store.root().join("explain");
    fs::create_dir_all(&dir).map_err(Error::io("creating", dir))?;
    let sorted: BTreeMap<&str, &str> =
        files.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bytes = serde_json::to_vec(&sorted).map_err(Error::json("file list"))?;
    crate::store::write_atomically(&store.tmp_dir(), &path, &bytes)
}

fn load_files(store: &Store, key: &CacheKey) -> Option<BTreeMap<String, String>> {
    serde_json::from_slice(&fs::read(files_path(store, key)).ok()?).ok()
}

/// The step of `previous` that corresponds to `step` (same stage and instruction, nearest
/// number; else the same number in the same stage).
pub fn counterpart<'p>(previous: &'p BuildRecord, step: &StepRecord) -> Option<&'p StepRecord> {
    let same_stage = previous.all_steps.iter().filter(|p| p.stage == step.stage);
    let same_text = same_stage
        .clone()
        .filter(|p| !step.text.is_empty() && p.text == step.text)
        .min_by_key(|p| p.number.abs_diff(step.number));
    same_text.or_else(|| same_stage.clone().find(|p| p.number == step.number))
}

/// What a miss is compared against, and what else the explanation needs.
#[derive(Debug)]
pub struct MissContext<'a> {
    /// The build's options (`--no-cache`, `--no-cache-filter`).
    pub options: &'a BuildOptions,
    /// The stage's name, when it has one.
    pub stage_name: Option<&'a str>,
    /// The last build of the same line, if any.
    pub previous: Option<&'a BuildRecord>,
    /// An earlier keyed step of this stage that missed in this build, if any.
    pub missed_before: Option<usize>,
    /// ARG names the stage declared (to say ARG rather than ENV).
    pub args: &'a [String],
}

/// Why `step` (with its inputs and parent filled in) missed the cache.
pub fn why(store: &Store, cx: &MissContext<'_>, step: &StepRecord, files: &FileList) -> String {
    if cx.options.no_cache {
        return "--no-cache".into();
    }
    if let Some(f) = filtered(cx.options, cx.stage_name, step.stage) {
        return format!("--no-cache-filter {f}");
    }
    let Some(previous) = cx.previous else {
        return "no earlier build of it here to compare with".into();
    };
    let Some(old) = counterpart(previous, step) else {
        return "a new step (the last build had no such step)".into();
    };
    let mut reasons = Vec::new();
    if old.parent != step.parent {
        reasons.push(parent_change(cx, old, step));
    }
    if old.text != step.text {
        reasons.push(format!(
            "the instruction changed: `{}` -> `{}`",
            clip(&old.text),
            clip(&step.text)
        ));
    }
    compare(store, cx, old, step, files, &mut reasons);
    if reasons.is_empty() {
        if old.cache_key == step.cache_key {
            return "its cache record is gone (rbuild prune --build-cache?)".into();
        }
        return "its inputs changed".into();
    }
    reasons.join("; ")
}

/// Why the key a step chains to changed: a step before it, or its base.
fn parent_change(cx: &MissContext<'_>, old: &StepRecord, step: &StepRecord) -> String {
    if let Some(n) = cx.missed_before {
        return format!("the step before missed (step {n})");
    }
    let (ob, nb) = (old.inputs.get("base"), step.inputs.get("base"));
    if let (Some(ob), Some(nb)) = (ob, nb) {
        let name = |b: &Value| b.get("name").map(text).unwrap_or_default();
        let id = |b: &Value| b.get("id").map(text).unwrap_or_default();
        if name(ob) != name(nb) {
            return format!("the base changed: {} -> {}", name(ob), name(nb));
        }
        if id(ob) != id(nb) {
            return format!("base image {} moved to {}", name(nb), id(nb));
        }
        if name(nb).starts_with("stage ") {
            return format!("{} it builds on changed", name(nb));
        }
    }
    "a step before it changed".into()
}

/// The `--no-cache-filter` entry naming this stage, if any.
pub fn filtered(options: &BuildOptions, name: Option<&str>, stage: usize) -> Option<String> {
    options
        .no_cache_filter
        .iter()
        .find(|f| Some(f.as_str()) == name || f.parse::<usize>().ok() == Some(stage))
        .cloned()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn clip(s: &str) -> String {
    let one = s.replace('\n', " ");
    if one.chars().count() > 60 {
        one.chars().take(59).collect::<String>() + "…"
    } else {
        one
    }
}

fn compare(
    store: &Store,
    cx: &MissContext<'_>,
    old: &StepRecord,
    new: &StepRecord,
    files: &FileList,
    reasons: &mut Vec<String>,
) {
    let (o, n) = (&old.inputs, &new.inputs);
    let field = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    if field(o, "argv") != field(n, "argv") && old.text == new.text {
        let show = |v: &Value| v.as_array().and_then(|a| a.last()).map(text).unwrap_or_default();
        reasons.push(format!(
            "the command changed: `{}` -> `{}`",
            clip(&show(&field(o, "argv"))),
            clip(&show(&field(n, "argv")))
        ));
    }
    if field(o, "env") != field(n, "env") {
        reasons.extend(env_changes(&field(o, "env"), &field(n, "env"), cx.args));
    }
    for (k, what) in [
        ("user", "USER"),
        ("workdir", "WORKDIR"),
        ("network", "the network"),
        ("chown", "--chown"),
        ("chmod", "--chmod"),
        ("dest", "the destination"),
        ("path", "the directory"),
    ] {
        if field(o, k) != field(n, k) {
            reasons.push(format!("{what} {} -> {}", text(&field(o, k)), text(&field(n, k))));
        }
    }
    if field(o, "files") != field(n, "files") {
        let before = old.cache_key.as_ref().and_then(|k| load_files(store, k));
        match before {
            Some(before) => {
                let now: BTreeMap<String, String> = files.iter().cloned().collect();
                reasons.push(file_changes(&before, &now))
            }
            None => reasons.push("the files it copies changed".into()),
        }
    }
    if field(o, "origin") != field(n, "origin") {
        let from = |v: &Value| {
            let t = text(v);
            if t.starts_with("stage:") {
                "stage".to_string()
            } else {
                t
            }
        };
        let (of, nf) = (from(&field(o, "origin")), from(&field(n, "origin")));
        if of == nf {
            reasons.push(format!("the {nf} it copies from (--from) changed"));
        } else {
            reasons.push(format!("--from {of} -> {nf}"));
        }
    }
    if field(o, "urls") != field(n, "urls") {
        reasons.push("a downloaded file changed".into());
    }
    if field(o, "mounts") != field(n, "mounts") {
        reasons.extend(mount_changes(&field(o, "mounts"), &field(n, "mounts")));
    }
    if field(o, "owner") != field(n, "owner") {
        reasons.push("the directory's owner changed".into());
    }
}

fn env_changes(old: &Value, new: &Value, args: &[String]) -> Vec<String> {
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let (o, n) = (map(old), map(new));
    let kind = |k: &str| if args.iter().any(|a| a == k) { "ARG" } else { "ENV" };
    let mut out = Vec::new();
    for (k, nv) in &n {
        match o.get(k) {
            Some(ov) if ov != nv => out.push(format!("{} {k} {ov} -> {nv}", kind(k))),
            None => out.push(format!("{} {k}={nv} added", kind(k))),
            _ => {}
        }
    }
    for k in o.keys().filter(|k| !n.contains_key(*k)) {
        out.push(format!("{} {k} removed", kind(k)));
    }
    out
}

/// "2 files changed under src/ (src/a.rs, src/b.rs), 1 added (src/c.rs), 1 removed (x)".
pub fn file_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    let mut changed = Vec::new();
    let mut modes = Vec::new();
    for (path, now) in new {
        if let Some(was) = old.get(path) {
            if was != now {
                let (wm, nm) = (was.split('\0').next(), now.split('\0').next());
                let same_rest = was.split('\0').skip(1).eq(now.split('\0').skip(1));
                if wm != nm && same_rest {
                    modes.push(format!(
                        "mode of {path} {} -> {}",
                        wm.unwrap_or(""),
                        nm.unwrap_or("")
                    ));
                } else {
                    changed.push(path.as_str());
                }
            }
        }
    }
    let added: Vec<&str> =
        new.keys().filter(|p| !old.contains_key(*p)).map(String::as_str).collect();
    let removed: Vec<&str> =
        old.keys().filter(|p| !new.contains_key(*p)).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !changed.is_empty() {
        let n = changed.len();
        let under = common_dir(&changed);
        let place = if under.is_empty() { String::new() } else { format!(" under {under}") };
        parts.push(format!("{n} file{} changed{place} ({})", plural(n), names(&changed)));
    }
    if !added.is_empty() {
        parts.push(format!("{} added ({})", added.len(), names(&added)));
    }
    if !removed.is_empty() {
        parts.push(format!("{} removed ({})", removed.len(), names(&removed)));
    }
    parts.extend(modes);
    if parts.is_empty() {
        return "the files it copies changed".into();
    }
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn names(paths: &[&str]) -> String {
    let mut shown: Vec<&str> = paths.iter().take(NAMES_SHOWN).copied().collect();
    if paths.len() > NAMES_SHOWN {
        shown.push("...");
    }
    shown.join(", ")
}

/// The longest directory (ending in `/`) that holds every path.
fn common_dir(paths: &[&str]) -> String {
    let Some(first) = paths.first() else { return String::new() };
    let mut dir = match first.rfind('/') {
        Some(i) => first[..=i].to_string(),
        None => return String::new(),
    };
    while !dir.is_empty() && !paths.iter().all(|p| p.starts_with(&dir)) {
        dir.pop();
        dir = match dir.rfind('/') {
            Some(i) => dir[..=i].to_string(),
            None => String::new(),
        };
    }
    dir
}

fn mount_changes(old: &Value, new: &Value) -> Vec<String> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let (o, n) = (list(old), list(new));
    let target = |m: &Value| m.get("target").map(text).unwrap_or_default();
    let mut out = Vec::new();
    for m in &n {
        let t = target(m);
        match o.iter().find(|x| target(x) == t) {
            None => out.push(format!("a --mount at {t} was added")),
            Some(x) if x != m => {
                let kind = m.get("type").map(text).unwrap_or_default();
                if x.get("type") != m.get("type") {
                    out.push(format!("the --mount at {t} changed type"));
                } else if kind == "secret" || kind == "ssh" {
                    out.push(format!("the {kind} --mount at {t} changed (its id or options)"));
                } else {
                    let from = m.get("from").map(text).unwrap_or_else(|| "context".into());
                    let from =
                        if from.starts_with("stage:") { "its stage".to_string() } else { from };
                    out.push(format!(
                        "the source of the {kind} --mount at {t} changed (from {from})"
                    ));
                }
            }
            _ => {}
        }
    }
    for x in o.iter().filter(|x| !n.iter().any(|m| target(m) == target(x))) {
        out.push(format!("the --mount at {} was removed", target(x)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_changes_are_said_in_words() {
        let old = files(&[
            ("src/a.rs", "644\0a"),
            ("src/b.rs", "644\0b"),
            ("run.sh", "644\0r"),
            ("x", "644\0x"),
        ]);
        let new = files(&[
            ("src/a.rs", "644\0A"),
            ("src/b.rs", "644\0B"),
            ("run.sh", "755\0r"),
            ("src/c.rs", "644\0c"),
        ]);
        assert_eq!(
            file_changes(&old, &new),
            "2 files changed under src/ (src/a.rs, src/b.rs), 1 added (src/c.rs), 1 removed (x), mode of run.sh 644 -> 755"
        );
    }

    #[test]
    fn env_changes_name_args_and_envs() {
        let old = serde_json::json!(["VERSION=1.2", "PATH=/bin", "GONE=1"]);
        let new = serde_json::json!(["VERSION=1.3", "PATH=/bin", "NEW=x"]);
        assert_eq!(
            env_changes(&old, &new, &["VERSION".into()]),
            ["ENV NEW=x added", "ARG VERSION 1.2 -> 1.3", "ENV GONE removed"]
        );
    }
}
