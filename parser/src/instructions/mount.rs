//! `RUN --mount=...`: the mount specification, as BuildKit reads it.

use crate::error::ErrorKind;
use crate::grammar;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Files from the context or another stage, read-only by default.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty in-memory file system.
    Tmpfs,
    /// A secret file (or environment variable) given to the build.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// One `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Its kind (`type=`; bind when absent).
    pub kind: MountKind,
    /// Where it appears in the container.
    pub target: Option<String>,
    /// The path inside `from` (or the context).
    pub source: Option<String>,
    /// A stage name or index, or an image, to mount from.
    pub from: Option<String>,
    /// Mounted read-only.
    pub readonly: bool,
    /// Cache or secret id.
    pub id: Option<String>,
    /// Cache sharing: `shared`, `private` or `locked`.
    pub sharing: Option<String>,
    /// File mode (octal).
    pub mode: Option<u32>,
    /// Owner user id.
    pub uid: Option<u32>,
    /// Owner group id.
    pub gid: Option<u32>,
    /// Fail when the secret or SSH agent is not supplied.
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// For secrets: also expose as this environment variable.
    pub env: Option<String>,
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, ErrorKind> {
    match value.map(str::to_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ErrorKind::Invalid(format!("invalid value for {key}: {other}"))),
    }
}

fn parse_num<T: TryFrom<u64>>(key: &str, value: &str, radix8: bool) -> Result<T, ErrorKind> {
    let parsed =
        if radix8 { u64::from_str_radix(value, 8).ok() } else { value.parse::<u64>().ok() };
    parsed
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| ErrorKind::Invalid(format!("invalid value for {key}: {value}")))
}

/// Parses a tmpfs size: bytes, or a number with a `k`, `m`, `g` suffix (powers of 1024).
fn parse_size(value: &str) -> Result<u64, ErrorKind> {
    let lower = value.to_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| ErrorKind::Invalid(format!("invalid value for size: {value}")))
}

/// Parses one `--mount` value.
pub(crate) fn parse_mount(spec: &str) -> Result<Mount, ErrorKind> {
    let fields = grammar::csv_fields(spec)
        .ok_or_else(|| ErrorKind::Invalid(format!("invalid mount specification: {spec}")))?;
    let mut m = Mount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        readonly: true,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    // `type` decides the defaults, so read it first.
    for field in &fields {
        if let Some(("type", value)) = field.split_once('=').map(|(k, v)| (k.trim(), v)) {
            m.kind = match value.to_lowercase().as_str() {
                "bind" => MountKind::Bind,
                "cache" => MountKind::Cache,
                "tmpfs" => MountKind::Tmpfs,
                "secret" => MountKind::Secret,
                "ssh" => MountKind::Ssh,
                other => {
                    return Err(ErrorKind::Invalid(format!("unsupported mount type \"{other}\"")))
                }
            };
        }
    }
    m.readonly = matches!(m.kind, MountKind::Bind);
    for field in &fields {
        if field.is_empty() {
            continue;
        }
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v)),
            None => (field.trim().to_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string).ok_or_else(|| {
                ErrorKind::Invalid(format!("invalid field '{field}' must be a key=value pair"))
            })
        };
        match key.as_str() {
            "type" => {}
            "readonly" | "ro" => m.readonly = parse_bool(&key, value)?,
            "readwrite" | "rw" => m.readonly = !parse_bool(&key, value)?,
            "required" => m.required = parse_bool(&key, value)?,
            "target" | "dst" | "destination" => m.target = Some(need(value)?),
            "source" | "src" => m.source = Some(need(value)?),
            "from" => m.from = Some(need(value)?),
            "id" => m.id = Some(need(value)?),
            "sharing" => {
                let v = need(value)?;
                if !matches!(v.as_str(), "shared" | "private" | "locked") {
                    return Err(ErrorKind::Invalid(format!("unsupported sharing value \"{v}\"")));
                }
                m.sharing = Some(v);
            }
            "mode" => m.mode = Some(parse_num(&key, &need(value)?, true)?),
            "uid" => m.uid = Some(parse_num(&key, &need(value)?, false)?),
            "gid" => m.gid = Some(parse_num(&key, &need(value)?, false)?),
            "size" if m.kind == MountKind::Tmpfs => m.size = Some(parse_size(&need(value)?)?),
            "env" if m.kind == MountKind::Secret => m.env = Some(need(value)?),
            _ => return Err(ErrorKind::Invalid(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if m.target.is_none() && matches!(m.kind, MountKind::Bind | MountKind::Cache | MountKind::Tmpfs)
    {
        return Err(ErrorKind::Invalid(format!("mount target is required: {spec}")));
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return Err(ErrorKind::Invalid("sharing is only valid for cache mounts".into()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        let m = parse_mount("type=cache,target=/root/.cache,sharing=locked,id=x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (m.kind, m.target.as_deref(), m.readonly),
            (MountKind::Cache, Some("/root/.cache"), false)
        );
        let m =
            parse_mount("target=/src,from=build,source=/out,rw").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (m.kind, m.readonly, m.from.as_deref()),
            (MountKind::Bind, false, Some("build"))
        );
        let m =
            parse_mount("type=secret,id=tok,env=TOKEN,required").unwrap_or_else(|e| panic!("{e}"));
        assert!(m.required && m.env.as_deref() == Some("TOKEN"));
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m").ok().and_then(|m| m.size),
            Some(64 << 20)
        );
        assert!(parse_mount("type=bind").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=bind,target=/x,bogus=1").is_err());
        assert!(parse_mount("type=cache,target=/x,sharing=sometimes").is_err());
    }
}
