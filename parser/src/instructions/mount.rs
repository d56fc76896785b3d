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

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, value: &str) -> Result<bool, ErrorKind> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ErrorKind::Invalid(format!("invalid value for {key}: {value}"))),
    }
}

fn parse_u32(key: &str, value: &str, radix: u32) -> Result<u32, ErrorKind> {
    u32::from_str_radix(value, radix)
        .map_err(|_| ErrorKind::Invalid(format!("invalid value {value} for {key}")))
}

/// A tmpfs size as docker's `RAMInBytes` reads it: a number (fractions allowed), an
/// optional space, then an optional `k`, `m`, `g`, `t` or `p` (powers of 1024), an optional
/// `i` and an optional `b`, case-insensitive.
fn parse_size(value: &str) -> Result<u64, ErrorKind> {
    let err = || ErrorKind::Invalid(format!("invalid value for size: {value}"));
    let digits_end = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let valid_number = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && !number.contains("..");
    if !valid_number {
        return Err(err());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(err()),
    };
    // Go parses "1.2.3" as far as it can; a plain f64 parse of the first two parts matches.
    let head: String = number.split('.').take(2).collect::<Vec<_>>().join(".");
    let n: f64 = head.parse().map_err(|_| err())?;
    let bytes = n * multiplier;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Parses one `--mount` value, with BuildKit's rules: fields are CSV; keys are
/// case-insensitive; `ro`, `rw` and `required` may stand alone; bind, secret and ssh mounts
/// are read-only by default, cache and tmpfs read-write. A mount without a target is
/// valid here: the build places it relative to WORKDIR.
pub(crate) fn parse_mount(spec: &str) -> Result<Mount, ErrorKind> {
    let fields = grammar::csv_fields(spec)
        .ok_or_else(|| ErrorKind::Invalid(format!("failed to parse csv mounts: {spec}")))?;
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
    let mut readonly: Option<bool> = None;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let secret_or_ssh = matches!(m.kind, MountKind::Secret | MountKind::Ssh);
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => readonly = Some(true),
                "readwrite" | "rw" => readonly = Some(false),
                "required" if secret_or_ssh => m.required = true,
                "required" => {
                    return Err(ErrorKind::Invalid(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        kind_name(m.kind)
                    )))
                }
                _ => {
                    return Err(ErrorKind::Invalid(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        let value = value.to_string();
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => {
                        return Err(ErrorKind::Invalid(format!("unsupported mount type {value:?}")))
                    }
                }
            }
            "from" => {
                if value.contains('$') {
                    return Err(ErrorKind::Invalid(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .into(),
                    ));
                }
                m.from = Some(value);
            }
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => readonly = Some(parse_bool(&key, &value)?),
            "readwrite" | "rw" => readonly = Some(!parse_bool(&key, &value)?),
            "required" if secret_or_ssh => m.required = parse_bool(&key, &value)?,
            "size" if m.kind == MountKind::Tmpfs => m.size = Some(parse_size(&value)?),
            "required" | "size" => {
                return Err(ErrorKind::Invalid(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    kind_name(m.kind)
                )))
            }
            "id" => m.id = Some(value),
            "sharing" => {
                let v = value.to_lowercase();
                if !matches!(v.as_str(), "shared" | "private" | "locked") {
                    return Err(ErrorKind::Invalid(format!("unsupported sharing value {value:?}")));
                }
                m.sharing = Some(v);
            }
            "mode" => m.mode = Some(parse_u32(&key, &value, 8)?),
            "uid" => m.uid = Some(parse_u32(&key, &value, 10)?),
            "gid" => m.gid = Some(parse_u32(&key, &value, 10)?),
            "env" if m.kind == MountKind::Secret => m.env = Some(value),
            _ => return Err(ErrorKind::Invalid(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    validate(&mut m, readonly)?;
    Ok(m)
}

fn kind_name(kind: MountKind) -> &'static str {
    match kind {
        MountKind::Bind => "bind",
        MountKind::Cache => "cache",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Secret => "secret",
        MountKind::Ssh => "ssh",
    }
}

fn validate(m: &mut Mount, readonly: Option<bool>) -> Result<(), ErrorKind> {
    let name = kind_name(m.kind);
    if !matches!(m.kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache) {
        for (key, set) in
            [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())]
        {
            if set {
                return Err(ErrorKind::Invalid(format!(
                    "{key} not allowed for \"{name}\" type mounts"
                )));
            }
        }
    }
    m.readonly = readonly.unwrap_or(!matches!(m.kind, MountKind::Cache | MountKind::Tmpfs));
    if m.kind == MountKind::Secret {
        if m.from.is_some() {
            return Err(ErrorKind::Invalid("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(ErrorKind::Invalid("secret mount should not define sharing".into()));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(ErrorKind::Invalid(
                "invalid secret mount. one of source, target required".into(),
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(ErrorKind::Invalid("both source and id can't be set".into()));
        }
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return Err(ErrorKind::Invalid(format!("invalid cache sharing set for {name} mount")));
    }
    Ok(())
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
        assert!(parse_mount("type=bind").is_ok_and(|m| m.target.is_none() && m.readonly));
        assert!(parse_mount("from=binaries").is_ok());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=bind,target=/x,z").is_err());
        assert!(parse_mount("type=bind,target=/x,required").is_err());
        assert!(parse_mount("type=bind,target=/x,mode=0755").is_err());
        assert!(parse_mount("type=secret").is_err());
        assert!(parse_mount("type=secret,id=a,src=b").is_err());
        assert!(parse_mount("from=$STAGE,target=/x").is_err());
        assert_eq!(parse_size("1.5g").ok(), Some(3 << 29));
        assert_eq!(parse_size("100KiB").ok(), Some(102_400));
        assert!(parse_size("12x").is_err());
        assert!(parse_mount("type=bind,target=/x,bogus=1").is_err());
        assert!(parse_mount("type=cache,target=/x,sharing=sometimes").is_err());
    }
}
