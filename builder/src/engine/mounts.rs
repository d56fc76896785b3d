//! `RUN --mount`: what each kind of mount becomes in the sandbox, and what it adds to the
//! step's cache key.
//!
//! - `bind`: a directory or file of the context (a filtered copy when `.dockerignore`
//!   hides something in it), another stage or an image, read-only unless `rw` (then writes
//!   go to a throw-away upper directory). Its content is in the key.
//! - `cache`: a directory kept in the store (`ROOT/cache-mounts/`) between builds, shared,
//!   locked (one RUN at a time) or private (a fresh directory when it is busy). Never in a
//!   layer, not in the key.
//! - `tmpfs`: an empty tmpfs.
//! - `secret`: a file holding the value given with `--secret` (and/or an environment
//!   variable), never in a layer, the config, the history or the key.
//! - `ssh`: an SSH agent socket given with `--ssh`, with `SSH_AUTH_SOCK` pointing at it.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rbuild_parser::{Instruction, Mount, MountKind};
use serde_json::{json, Value};

use super::rootfs::RootfsView;
use super::stage::State;
use crate::error::{Error, Result};
use crate::sandbox::{LayerMount, TmpfsMount, Volume};

/// A secret's value; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a RUN's mounts add to its sandbox.
#[derive(Debug, Default)]
pub(super) struct Mounts {
    pub volumes: Vec<Volume>,
    pub layer_mounts: Vec<LayerMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Environment variables (secrets with `env=`, `SSH_AUTH_SOCK`): never in the key.
    pub env: Vec<String>,
    /// What the mounts add to the cache key.
    pub key: Vec<Value>,
    /// Every mount target, for the stubs left in the upper directory.
    pub targets: Vec<String>,
    /// Locks on cache mounts, held until the RUN ends.
    pub locks: Vec<fs::File>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(action, path.to_path_buf())
}

/// Makes a directory (and its parents) with a mode and owner.
fn make_dir(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(io("creating", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io("setting the mode of", path))?;
    if crate::users::is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io("changing the owner of", path))?;
    }
    Ok(())
}

/// A hex name for an arbitrary id.
fn id_dir(id: &str) -> String {
    crate::digest::sha256(id.as_bytes()).digest()[..32].to_string()
}

/// One RUN's mounts being worked out: the step, its sandbox directory, and whether the
/// mounts are made (else only the key and the environment are worked out, with no side
/// effect: that is all a cache hit needs).
struct Prep<'p, 's, 'a> {
    state: &'p State<'s, 'a>,
    inst: &'p Instruction,
    run_dir: &'p Path,
    materialize: bool,
}

/// One `--mount` with its words expanded.
struct Request<'m> {
    /// Its index among the RUN's mounts.
    n: usize,
    m: &'m Mount,
    target: Option<String>,
    source: Option<String>,
    from: Option<String>,
    id: Option<String>,
}

impl Prep<'_, '_, '_> {
    fn error(&self, message: &str) -> Error {
        self.state.error(self.inst, message)
    }

    fn target(&self, r: &Request<'_>, what: &str) -> Result<String> {
        r.target
            .clone()
            .ok_or_else(|| self.error(&format!("RUN --mount=type={what} needs a target")))
    }
}

/// Works out the mounts of one RUN; `run_dir` is its sandbox directory. Without
/// `materialize` only the key (and the environment) is worked out, with no side effect:
/// that is all a cache hit needs.
pub(super) fn prepare(
    state: &mut State<'_, '_>,
    inst: &Instruction,
    mounts: &[Mount],
    run_dir: &Path,
    materialize: bool,
) -> Result<Mounts> {
    let mut out = Mounts::default();
    let prep = Prep { state, inst, run_dir, materialize };
    let mut ssh_count = 0;
    for (n, m) in mounts.iter().enumerate() {
        let expand = |s: &Option<String>| s.as_deref().map(|v| state.expand(inst, v)).transpose();
        let r = Request {
            n,
            m,
            target: expand(&m.target)?.map(|t| state.absolute(&t)),
            source: expand(&m.source)?,
            // An empty `from=` is the build context, as in BuildKit.
            from: expand(&m.from)?.filter(|f| !f.is_empty()),
            id: expand(&m.id)?,
        };
        match m.kind {
            MountKind::Tmpfs => {
                let target = prep.target(&r, "tmpfs")?;
                out.key.push(json!({"type": "tmpfs", "target": target, "size": m.size}));
                out.tmpfs.push(TmpfsMount { target: target.clone(), size: m.size });
                out.targets.push(target);
            }
            MountKind::Cache => cache(&prep, r, &mut out)?,
            MountKind::Secret => secret(&prep, r, &mut out)?,
            MountKind::Ssh => {
                ssh(&prep, r, ssh_count, &mut out)?;
                ssh_count += 1;
            }
            MountKind::Bind if r.from.is_some() => bind_from(&prep, r, &mut out)?,
            MountKind::Bind => bind_context(&prep, r, &mut out)?,
        }
    }
    Ok(out)
}

/// `type=cache`: a directory of the store kept between builds (seeded from a stage or
/// image when new), shared, locked or private.
fn cache(prep: &Prep<'_, '_, '_>, r: Request<'_>, out: &mut Mounts) -> Result<()> {
    let (m, shared) = (r.m, prep.state.shared);
    let target = prep.target(&r, "cache")?;
    // A new cache directory can start as a copy of a stage's or image's files.
    let seed = match &r.from {
        Some(f) => {
            let (view, origin) = view_of(prep.state, f)?;
            let src = r.source.as_deref().unwrap_or("/");
            let parts = view.resolve(src, true)?;
            if !view.entry(&parts).is_some_and(|(_, m)| m.is_dir()) {
                return Err(
                    prep.error(&format!("RUN --mount=type=cache: {src} is not a directory of {f}"))
                );
            }
            Some((view, parts, origin))
        }
        None if r.source.is_some() => {
            return Err(prep.error("RUN --mount=type=cache: source= needs from="))
        }
        None => None,
    };
    // The seed is part of the cache's identity: another seed, another directory.
    let id = r.id.clone().unwrap_or_else(|| target.clone());
    let seeded_from =
        seed.as_ref().map(|(_, parts, origin)| format!("{origin}{}", RootfsView::display(parts)));
    let base = shared.store.root().join("cache-mounts");
    let name = id_dir(&format!("{id}\0{}", seeded_from.as_deref().unwrap_or("")));
    let data = base.join(&name);
    let (mode, uid, gid) = (m.mode.unwrap_or(0o755), m.uid.unwrap_or(0), m.gid.unwrap_or(0));
    let sharing = m.sharing.as_deref().unwrap_or("shared");
    if !["shared", "locked", "private"].contains(&sharing) {
        return Err(
            prep.error(&format!("invalid cache sharing {sharing:?}: shared, private or locked"))
        );
    }
    out.key.push(json!({"type": "cache", "target": target, "from": seeded_from}));
    out.targets.push(target.clone());
    if !prep.materialize {
        return Ok(());
    }
    if !data.exists() {
        fs::create_dir_all(&base).map_err(io("creating", &base))?;
        // Made aside and renamed, so a half-made cache directory is never used.
        let tmp = shared.store.tmp_dir().join(format!("cache-mount-{name}"));
        make_dir(&tmp, mode, uid, gid)?;
        if let Some((view, parts, _)) = &seed {
            copy_tree(view, parts, &tmp)?;
        }
        if fs::rename(&tmp, &data).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    let lock_path = base.join(format!("{name}.lock"));
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io("opening", &lock_path))?;
    let host = match sharing {
        "locked" => {
            lock.lock().map_err(io("locking", &lock_path))?;
            out.locks.push(lock);
            data
        }
        "private" => match lock.try_lock() {
            Ok(()) => {
                out.locks.push(lock);
                data
            }
            Err(_) => {
                let own = prep.run_dir.join(format!("cache-{}", r.n));
                make_dir(&own, mode, uid, gid)?;
                own
            }
        },
        _ => data,
    };
    out.volumes.push(Volume { host, target, readonly: m.readonly });
    Ok(())
}

/// `type=secret`: a file (mode 0400 unless told) and/or an environment variable with the
/// value given with `--secret`; never in a layer or the key.
fn secret(prep: &Prep<'_, '_, '_>, r: Request<'_>, out: &mut Mounts) -> Result<()> {
    let m = r.m;
    let id = r.id.clone().or_else(|| {
        r.target
            .as_ref()
            .and_then(|t| Path::new(t).file_name().map(|n| n.to_string_lossy().into_owned()))
    });
    let Some(id) = id else {
        return Err(prep.error("RUN --mount=type=secret needs an id or a target"));
    };
    let Some(value) = prep.state.shared.options.secrets.get(&id) else {
        if m.required {
            return Err(prep.error(&format!(
                "secret {id} is required but was not given (--secret id={id},src=FILE)"
            )));
        }
        return Ok(());
    };
    if let Some(var) = &m.env {
        out.env.push(format!("{var}={}", String::from_utf8_lossy(&value.0)));
    }
    out.key.push(json!({"type": "secret", "id": id, "target": r.target, "env": m.env}));
    if m.env.is_some() && r.target.is_none() {
        return Ok(());
    }
    let target = r.target.unwrap_or_else(|| format!("/run/secrets/{id}"));
    out.targets.push(target.clone());
    if !prep.materialize {
        return Ok(());
    }
    let file = prep.run_dir.join(format!("secret-{}", r.n));
    // Made 0600 (never readable by others, even for a moment), then given the mount's mode.
    fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &value.0))
        .map_err(io("writing", &file))?;
    fs::set_permissions(&file, fs::Permissions::from_mode(m.mode.unwrap_or(0o400)))
        .map_err(io("setting the mode of", &file))?;
    if crate::users::is_root() {
        std::os::unix::fs::chown(&file, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
            .map_err(io("changing the owner of", &file))?;
    }
    out.volumes.push(Volume { host: file, target, readonly: true });
    Ok(())
}

/// `type=ssh`: the agent socket given with `--ssh` (`count` ssh mounts before this one in
/// the RUN). As in BuildKit, the first ssh mount's target is `SSH_AUTH_SOCK` (unless the
/// stage sets it), even when it is optional and no agent was given.
fn ssh(prep: &Prep<'_, '_, '_>, r: Request<'_>, count: usize, out: &mut Mounts) -> Result<()> {
    let id = r.id.unwrap_or_else(|| "default".into());
    let target = r.target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{count}"));
    if count == 0 && super::vars::get_var(&prep.state.vars(), "SSH_AUTH_SOCK").is_none() {
        out.env.push(format!("SSH_AUTH_SOCK={target}"));
    }
    let Some(socket) = prep.state.shared.options.ssh.get(&id) else {
        if r.m.required {
            return Err(prep.error(&format!(
                "SSH agent {id} is required but was not given (--ssh {id}=SOCKET)"
            )));
        }
        return Ok(());
    };
    out.key.push(json!({"type": "ssh", "id": id, "target": target}));
    out.volumes.push(Volume { host: socket.clone(), target: target.clone(), readonly: false });
    out.targets.push(target);
    Ok(())
}

/// `type=bind,from=`: a path of a stage or image, as an overlay of its layers.
fn bind_from(prep: &Prep<'_, '_, '_>, r: Request<'_>, out: &mut Mounts) -> Result<()> {
    let target = prep.target(&r, "bind")?;
    let source = r.source.clone().unwrap_or_else(|| "/".into());
    let from = r.from.clone().unwrap_or_default();
    let rw = !r.m.readonly;
    out.targets.push(target.clone());
    let (view, origin) = view_of(prep.state, &from)?;
    let parts = view.resolve(&source, true)?;
    let Some((_, meta)) = view.entry(&parts) else {
        return Err(prep.error(&format!("RUN --mount: {source} not found in {from}")));
    };
    let shown = RootfsView::display(&parts);
    out.key
        .push(json!({"type": "bind", "from": origin, "source": shown, "target": target, "rw": rw}));
    if !prep.materialize {
        return Ok(());
    }
    out.layer_mounts.push(LayerMount {
        lowers: view.layers().to_vec(),
        dir: prep.run_dir.join(format!("layers-{}", r.n)),
        source: parts.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/"),
        target,
        readonly: !rw,
        file: !meta.is_dir(),
    });
    Ok(())
}

/// `type=bind` of the context: read-only, or an overlay whose writes are thrown away
/// (`rw`); the files' content is in the key.
fn bind_context(prep: &Prep<'_, '_, '_>, r: Request<'_>, out: &mut Mounts) -> Result<()> {
    let target = prep.target(&r, "bind")?;
    let source = r.source.clone().unwrap_or_else(|| "/".into());
    let rw = !r.m.readonly;
    out.targets.push(target.clone());
    let ctx = &prep.state.shared.context;
    let Some(entry) = ctx.select(&source)?.into_iter().next() else {
        return Err(prep.error(&format!("RUN --mount: {source} not found in the build context")));
    };
    let mut inner = if entry.meta.is_dir() { ctx.under(&entry.path)?.to_vec() } else { Vec::new() };
    inner.insert(0, entry.clone());
    let files: Vec<&super::context::ContextEntry> =
        inner.iter().filter(|e| e.meta.is_file()).collect();
    // One digest per regular file, in the order of `inner`.
    let mut digests = ctx.content_digests(&files, None)?.into_iter();
    let listing: Vec<String> = inner
        .iter()
        .map(|e| {
            let digest = if e.meta.is_file() { digests.next() } else { None };
            let digest = digest.unwrap_or_default();
            format!("{}:{:o}:{}:{digest}", e.path, e.meta.mode(), e.meta.uid())
        })
        .collect();
    let files_digest = crate::digest::sha256(listing.join("\n").as_bytes()).to_string();
    out.key.push(
        json!({"type": "bind", "from": "context", "files": files_digest, "target": target, "rw": rw}),
    );
    if !prep.materialize {
        return Ok(());
    }
    let host = context_source(ctx, &entry, &inner, prep.run_dir, r.n)?;
    if !rw {
        out.volumes.push(Volume { host, target, readonly: true });
        return Ok(());
    }
    let (lower, source) = if entry.meta.is_dir() {
        (host, String::new())
    } else {
        let parent = host.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (parent, name)
    };
    out.layer_mounts.push(LayerMount {
        lowers: vec![lower],
        dir: prep.run_dir.join(format!("layers-{}", r.n)),
        source,
        target,
        readonly: false,
        file: !entry.meta.is_dir(),
    });
    Ok(())
}

/// The file system of a stage or image named by `from=`.
fn view_of(state: &State<'_, '_>, from: &str) -> Result<(RootfsView, String)> {
    state.shared.view_of(state.stage, from)
}

/// The host path to bind for a context source: the file or directory itself when
/// `.dockerignore` hides nothing in it, else a copy of what it does not hide (hard links
/// where the file system allows, mounted read-only so the context cannot be written).
fn context_source(
    ctx: &super::context::BuildContext,
    entry: &super::context::ContextEntry,
    inner: &[super::context::ContextEntry],
    run_dir: &Path,
    n: usize,
) -> Result<PathBuf> {
    let host = ctx.host_path(&entry.path);
    if !entry.meta.is_dir() {
        return Ok(host);
    }
    // Compare what the walk kept with what is on disk: any hidden entry means a copy.
    let on_disk = count_entries(&host);
    if on_disk == inner.len().saturating_sub(1) {
        return Ok(host);
    }
    let copy = run_dir.join(format!("context-{n}"));
    fs::create_dir_all(&copy).map_err(io("creating", &copy))?;
    for e in &inner[1..] {
        let rel = e.path.strip_prefix(&entry.path).unwrap_or(&e.path).trim_start_matches('/');
        let dest = copy.join(rel);
        let src = ctx.host_path(&e.path);
        let ft = e.meta.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest).map_err(io("creating", &dest))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(e.meta.mode() & 0o7777))
                .map_err(io("setting the mode of", &dest))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(&src).map_err(io("reading the link", &src))?;
            std::os::unix::fs::symlink(t, &dest).map_err(io("creating", &dest))?;
        } else if ft.is_file() && fs::hard_link(&src, &dest).is_err() {
            fs::copy(&src, &dest).map_err(io("copying to", &dest))?;
        }
    }
    Ok(copy)
}

fn count_entries(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            count += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    count
}

/// Copies the directory `parts` of a view into `dest` (which exists), keeping modes,
/// owners (as root) and links.
fn copy_tree(view: &RootfsView, parts: &[std::ffi::OsString], dest: &Path) -> Result<()> {
    for (rel, host, meta) in view.walk(parts)? {
        let target = dest.join(&rel);
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target).map_err(io("creating", &target))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(&host).map_err(io("reading the link", &host))?;
            std::os::unix::fs::symlink(t, &target).map_err(io("creating", &target))?;
            continue;
        } else if ft.is_file() {
            fs::copy(&host, &target).map_err(io("copying to", &target))?;
        } else {
            continue;
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io("setting the mode of", &target))?;
        if crate::users::is_root() {
            std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))
                .map_err(io("changing the owner of", &target))?;
        }
    }
    Ok(())
}

/// Removes every cache mount directory. Returns the bytes freed.
pub fn remove_cache_mounts(store: &crate::store::Store) -> Result<u64> {
    let dir = store.root().join("cache-mounts");
    let mut freed = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => freed += m.size(),
                Err(_) => {}
            }
        }
    }
    if dir.exists() {
        store.remove_dir_aside(&dir).map_err(io("removing", &dir))?;
    }
    Ok(freed)
}
