//! Docker's and buildx's syntaxes for a build's inputs (`--secret`, `--ssh`, `--allow`,
//! `--build-arg`, `--label`, `# syntax=`, the Dockerfile's place), read into
//! [`BuildOptions`](super::BuildOptions) fields. Every front end (the CLI, a CI tool that
//! embeds rbuild) reads them the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Platform, Secret};
use crate::error::{Error, Result};

fn invalid(message: String) -> Error {
    Error::InvalidOption(message)
}

/// Reads `--secret` values: `id=ID,src=FILE`, `id=ID,env=VAR`, or `id=ID` (the
/// variable ID, else with `type=file` the file ID).
pub fn secrets(items: &[String]) -> Result<BTreeMap<String, Secret>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for field in item.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", v)) => kind = Some(v.to_string()),
                _ => {
                    return Err(invalid(format!(
                        "invalid --secret {item:?}: expected id=ID,src=FILE or id=ID,env=VAR"
                    )))
                }
            }
        }
        let Some(id) = id else {
            return Err(invalid(format!("invalid --secret {item:?}: id= is missing")));
        };
        let variable = |var: &str, why: String| {
            std::env::var_os(var).map(|v| v.into_encoded_bytes()).ok_or_else(|| invalid(why))
        };
        let value = match (src, env, kind.as_deref()) {
            (Some(path), _, _) => {
                std::fs::read(&path).map_err(Error::io("reading the secret", path))?
            }
            (None, Some(var), _) => {
                variable(&var, format!("--secret {id}: the variable {var} is not set"))?
            }
            (None, None, Some("file")) => {
                std::fs::read(&id).map_err(Error::io("reading the secret", id.clone()))?
            }
            (None, None, _) => variable(
                &id,
                format!("--secret {id}: give src=FILE or env=VAR (no variable {id} is set)"),
            )?,
        };
        out.insert(id, Secret(value));
    }
    Ok(out)
}

/// Reads `--ssh` agent sockets: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET`.
pub fn ssh_agents(items: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (id, socket) = match item.split_once('=') {
            Some((id, path)) => {
                (id.to_string(), PathBuf::from(path.split(',').next().unwrap_or(path)))
            }
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    invalid(format!("--ssh {item}: SSH_AUTH_SOCK is not set; give {item}=SOCKET"))
                })?;
                (item.clone(), PathBuf::from(sock))
            }
        };
        if !socket.exists() {
            return Err(invalid(format!("--ssh {id}: {} does not exist", socket.display())));
        }
        out.insert(id, socket);
    }
    Ok(out)
}

/// Reads `--allow` entitlements; returns whether `network.host` is granted.
/// `security.insecure` is refused (the sandbox has no insecure mode), as is anything
/// unknown.
pub fn host_network_allowed(allow: &[String]) -> Result<bool> {
    let mut host = false;
    for value in allow.iter().flat_map(|v| v.split(',')) {
        match value.trim() {
            "network.host" => host = true,
            "security.insecure" => {
                return Err(invalid(
                    "--allow security.insecure: rbuild's sandbox has no insecure mode".into(),
                ))
            }
            other => {
                return Err(invalid(format!(
                    "--allow {other}: unknown entitlement (network.host is known)"
                )))
            }
        }
    }
    Ok(host)
}

/// Reads `KEY=VALUE` items (`what` names them in errors). For build arguments a bare
/// `KEY` takes the caller's variable, and is left out when it is not set.
pub fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(invalid(format!("invalid {what} {item:?}: the key is empty"))),
            None if what == "build argument" => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            None => return Err(invalid(format!("invalid {what} {item:?}: expected KEY=VALUE"))),
        }
    }
    Ok(out)
}

/// `SOURCE_DATE_EPOCH` for a build: the build argument, else the caller's variable.
pub fn source_date_epoch(build_args: &BTreeMap<String, String>) -> Option<u64> {
    build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether a `# syntax=` image is Dockerfile 1.x, which rbuild's own frontend serves.
pub fn builtin_syntax(value: &str) -> bool {
    let name = value.split('@').next().unwrap_or(value);
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let Some(tag) = name
        .strip_prefix("docker/dockerfile:")
        .or_else(|| name.strip_prefix("docker/dockerfile-upstream:"))
    else {
        return name == "docker/dockerfile";
    };
    let tag = tag.strip_suffix("-labs").unwrap_or(tag);
    tag.split('.').next() == Some("1")
        && tag.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks that this machine can build for `platform`: Linux only, and for another
/// architecture a registered binfmt_misc handler (qemu-user) that RUN steps need.
pub fn check_platform(platform: &Platform) -> Result<()> {
    let host = Platform::host();
    let refuse = |why: String| {
        Err(invalid(format!("cannot build for {platform} on this {host} machine: {why}")))
    };
    if platform.os != host.os {
        return refuse("only Linux images are built".into());
    }
    if platform.architecture == host.architecture {
        return Ok(());
    }
    let machine = platform.machine();
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return refuse(
            "no binfmt_misc handlers can be registered here (is binfmt_misc mounted?)".into(),
        );
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().contains(machine) {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.lines().next() == Some("enabled") {
                return Ok(());
            }
        }
    }
    refuse(format!(
        "no binfmt_misc handler runs {machine} programs (install qemu-user-static, or register one)"
    ))
}

/// The Dockerfile of a build, read (at most [`crate::limits::MAX_DOCKERFILE_BYTES`]).
#[derive(Debug, Clone)]
pub struct DockerfileInput {
    /// Its text.
    pub text: String,
    /// Its name in messages (`Dockerfile`, `path/to/Containerfile`, `-`).
    pub name: String,
    /// Its host path (for `<Dockerfile>.dockerignore`), if it has one.
    pub path: Option<PathBuf>,
}

impl DockerfileInput {
    /// Reads the Dockerfile `-f` names (`-`: from `stdin`), or else the context's
    /// `Dockerfile`, or its `Containerfile` when only that exists. `context_from_stdin`:
    /// the context came as a tar (its directory's name means nothing to the user).
    pub fn read(
        file: Option<&str>,
        context: &Path,
        context_from_stdin: bool,
        stdin: impl std::io::Read,
    ) -> Result<DockerfileInput> {
        use crate::limits::{read_file_limited, read_limited, MAX_DOCKERFILE_BYTES};
        if file == Some("-") {
            let what = Path::new("the Dockerfile on standard input");
            let text = read_limited(stdin, MAX_DOCKERFILE_BYTES, what)?;
            let text = String::from_utf8_lossy(&text).into_owned();
            return Ok(DockerfileInput { text, name: "-".into(), path: None });
        }
        let path = match file {
            Some(f) => PathBuf::from(f),
            None => {
                let d = context.join("Dockerfile");
                let c = context.join("Containerfile");
                if !d.exists() && c.exists() {
                    c
                } else {
                    d
                }
            }
        };
        let bytes = read_file_limited(&path, MAX_DOCKERFILE_BYTES).map_err(|e| match e {
            Error::Io { path, source, .. } => {
                Error::Io { action: "reading the Dockerfile", path, source }
            }
            other => other,
        })?;
        let name = match file {
            Some(f) => f.to_string(),
            None if context_from_stdin => "Dockerfile".to_string(),
            None => {
                let shown = path.display().to_string();
                shown.strip_prefix("./").map(str::to_string).unwrap_or(shown)
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(DockerfileInput { text, name, path: Some(path) })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn syntax_images() {
        for ok in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7",
            "docker.io/docker/dockerfile:1.4-labs",
            "docker/dockerfile:1.6.0@sha256:ab",
        ] {
            assert!(super::builtin_syntax(ok), "{ok}");
        }
        for no in ["docker/dockerfile:2", "example.com/front:1", "docker/dockerfile:1.x"] {
            assert!(!super::builtin_syntax(no), "{no}");
        }
    }

    #[test]
    fn entitlements() {
        assert!(super::host_network_allowed(&["network.host".into()]).is_ok_and(|h| h));
        assert!(super::host_network_allowed(&[]).is_ok_and(|h| !h));
        assert!(super::host_network_allowed(&["security.insecure".into()]).is_err());
    }
}
