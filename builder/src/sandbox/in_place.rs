//! Container isolation: a RUN's command run in the container rbuild itself runs in, on
//! its own root file system, as kaniko does. For throwaway CI containers that allow no new
//! namespaces (Docker's default capabilities and seccomp profile): the container is the
//! isolation, and rbuild turns its root file system into the step's (see
//! [`crate::engine::InPlaceExecutor`]).
//!
//! Mounts cannot be made here (no CAP_SYS_ADMIN): a `RUN --mount` target becomes a
//! symbolic link to what it stands for (a cache directory, a secret file, an agent
//! socket, a stage's files copied out), or an empty directory (tmpfs); what the image had
//! there is moved aside for the step and put back after it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::SandboxSpec;
use crate::error::{Error, Result};

/// One `--mount` target made for a step: where, what was there before, and the
/// directories made on the way to it (removed after, when empty).
struct Placed {
    target: PathBuf,
    aside: Option<PathBuf>,
    parents: Vec<PathBuf>,
}

/// The targets of a spec's mounts, as container paths (relative to `/`), for the
/// scanner to leave alone.
pub fn mount_targets(spec: &SandboxSpec) -> Vec<PathBuf> {
    let rel = |t: &str| PathBuf::from(t.trim_start_matches('/'));
    spec.volumes
        .iter()
        .map(|v| rel(&v.target))
        .chain(spec.tmpfs.iter().map(|t| rel(&t.target)))
        .chain(spec.layer_mounts.iter().map(|l| rel(&l.target)))
        .collect()
}

/// Runs `spec`'s command in this container's root file system, `root` (`/`; the caller
/// made it the step's): its mounts placed, as its user, in its working directory, with
/// its environment; output to `output`. Every process the command leaves in its session
/// is killed when it ends. Returns the exit code (128 + signal when killed).
pub fn run_in_place(spec: &SandboxSpec, root: &Path, output: &mut dyn Write) -> Result<i32> {
    let mut placed = Vec::new();
    let result =
        place_mounts(spec, root, &mut placed).and_then(|()| run_command(spec, root, output));
    for p in placed.into_iter().rev() {
        let _ = std::fs::remove_file(&p.target).or_else(|_| std::fs::remove_dir_all(&p.target));
        if let Some(aside) = p.aside {
            let _ = std::fs::rename(&aside, &p.target);
        }
        for dir in p.parents.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn place_mounts(spec: &SandboxSpec, root: &Path, placed: &mut Vec<Placed>) -> Result<()> {
    let host_of = |t: &str| root.join(t.trim_start_matches('/'));
    let mut place = |target: PathBuf, what: Option<&Path>| -> Result<()> {
        let aside = if std::fs::symlink_metadata(&target).is_ok() {
            let aside = target.with_file_name(format!(
                ".rbuild-aside-{}",
                target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
            std::fs::rename(&target, &aside).map_err(Error::io("moving aside", target.clone()))?;
            Some(aside)
        } else {
            None
        };
        let mut parents = Vec::new();
        for dir in target.ancestors().skip(1).collect::<Vec<_>>().into_iter().rev() {
            if std::fs::symlink_metadata(dir).is_err() {
                std::fs::create_dir(dir).map_err(Error::io("creating", dir))?;
                parents.push(dir.to_path_buf());
            }
        }
        placed.push(Placed { target: target.clone(), aside, parents });
        match what {
            Some(source) => std::os::unix::fs::symlink(source, &target),
            None => std::fs::create_dir(&target),
        }
        .map_err(Error::io("making the mount target", target))
    };
    for v in &spec.volumes {
        place(host_of(&v.target), Some(&v.host))?;
    }
    for t in &spec.tmpfs {
        place(host_of(&t.target), None)?;
    }
    for l in &spec.layer_mounts {
        // The stage's files, copied out once (writes to them are thrown away).
        let copy = l.dir.join("merged");
        crate::snapshot::stack::materialize(&l.lowers, &copy, &Default::default())?;
        place(host_of(&l.target), Some(&copy.join(&l.source)))?;
    }
    Ok(())
}

fn run_command(spec: &SandboxSpec, root: &Path, output: &mut dyn Write) -> Result<i32> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    let who = crate::users::identity(&spec.user, &passwd, &group).map_err(Error::Sandbox)?;
    let Some((program, args)) = spec.args.split_first() else {
        return Err(Error::Sandbox("RUN without a command".into()));
    };
    let cwd = root.join(spec.cwd.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd).map_err(Error::io("creating", cwd.clone()))?;
    let (mut reader, writer) =
        std::io::pipe().map_err(Error::io("making a pipe for", cwd.clone()))?;
    let writer2 = writer.try_clone().map_err(Error::io("making a pipe for", cwd.clone()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|kv| kv.split_once('=').unwrap_or((kv.as_str(), ""))))
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    let groups: Vec<nix::unistd::Gid> =
        who.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    let (uid, gid) = (nix::unistd::Uid::from_raw(who.uid), nix::unistd::Gid::from_raw(who.gid));
    // SAFETY: between fork and exec the child only makes system calls (a session of its
    // own, then its groups, group and user, in that order while it may still change
    // them), which allocate nothing and take no lock.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            nix::unistd::setgroups(&groups).map_err(std::io::Error::from)?;
            nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
            nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = writeln!(output, "rbuild: {program}: not found");
            return Ok(127);
        }
        Err(e) => return Err(Error::Io { action: "starting", path: program.into(), source: e }),
    };
    drop(command);
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    // The command's end ends its session too (processes it left running would hold the
    // output pipe open), so the output is read to its end below.
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        status
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = output.write_all(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let status = waiter
        .join()
        .map_err(|_| Error::Panicked("waiting for a RUN's command"))?
        .map_err(Error::io("waiting for", PathBuf::from(program)))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
