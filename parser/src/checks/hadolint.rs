//! An opt-in set of hadolint's rules: those that need no shell parser, with hadolint's
//! codes, levels and messages, decided as hadolint decides them (its rules as of 2.15).
//!
//! Written here because hadolint is a Haskell program; the rules are small, and the test
//! suite compares every finding with hadolint's own on the real-world corpus.

use std::collections::BTreeSet;

use crate::instructions::{Command, Dockerfile, HealthCheck, InstructionKind};

/// One hadolint finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HadolintFinding {
    /// The line of the instruction.
    pub line: usize,
    /// hadolint's code (`DL3006`).
    pub code: &'static str,
    /// `error`, `warning`, `info` or `style`, as hadolint rates it.
    pub level: &'static str,
    /// hadolint's message.
    pub message: &'static str,
}

/// The codes implemented, with level and message.
pub const HADOLINT_RULES: &[(&str, &str, &str)] = &[
    ("DL3000", "error", "Use absolute WORKDIR"),
    ("DL3002", "warning", "Last USER should not be root"),
    ("DL3006", "warning", "Always tag the version of an image explicitly"),
    ("DL3007", "warning", "Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag"),
    ("DL3011", "error", "Valid UNIX ports range from 0 to 65535"),
    ("DL3012", "error", "Multiple `HEALTHCHECK` instructions"),
    ("DL3020", "error", "Use COPY instead of ADD for files and folders"),
    ("DL3021", "error", "COPY with more than 2 arguments requires the last argument to end with /"),
    ("DL3022", "warning", "`COPY --from` should reference a previously defined `FROM` alias"),
    ("DL3023", "error", "`COPY --from` cannot reference its own `FROM` alias"),
    ("DL3024", "error", "FROM aliases (stage names) must be unique"),
    ("DL3025", "warning", "Use arguments JSON notation for CMD and ENTRYPOINT arguments"),
    ("DL3029", "warning", "Do not use --platform flag with FROM"),
    ("DL3044", "error", "Do not refer to an environment variable within the same `ENV` statement where it is defined."),
    ("DL3048", "style", "Invalid label key."),
    ("DL3061", "error", "Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment."),
    ("DL4000", "error", "MAINTAINER is deprecated"),
    ("DL4003", "warning", "Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect"),
    ("DL4004", "error", "Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect"),
];

const ARCHIVES: &[&str] = &[
    ".tar", ".Z", ".bz2", ".gz", ".lz", ".lzma", ".tZ", ".tb2", ".tbz", ".tbz2", ".tgz", ".tlz",
    ".tpz", ".txz", ".xz",
];

fn drop_quotes(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

fn windows_absolute(s: &str) -> bool {
    let mut c = s.chars();
    matches!((c.next(), c.next()), (Some(l), Some(':')) if l.is_alphabetic())
}

/// `text` with what stands inside `${...}` blanked (same length), so that the `@`, `:` and
/// `/` of a variable's default do not count as the reference's own.
fn outside_variables(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'{') {
            depth += 1;
            out.push('$');
            continue;
        }
        if depth > 0 {
            if c == '}' {
                depth -= 1;
            }
            out.extend(std::iter::repeat_n('_', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}

/// A FROM's image as hadolint reads it: (name without registry, tag, digest).
fn image_parts(image: &str) -> (String, Option<String>, Option<String>) {
    let masked = outside_variables(image);
    let (rest, digest) = match masked.find('@') {
        Some(i) => (&image[..i], Some(image[i + 1..].to_string())),
        None => (image, None),
    };
    let masked = &masked[..rest.len()];
    let last_slash = masked.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match masked[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
        None => (rest, None),
    };
    let name = match masked[..name.len()].find('/') {
        Some(i) if masked[..i].contains(['.', ':']) || &name[..i] == "localhost" => &name[i + 1..],
        _ => name,
    };
    (name.to_string(), tag, digest)
}

/// The variables `text` refers to as hadolint sees them: `${name}` whole (not `${name:-x}`)
/// and `$name` with every name character that follows.
fn referenced(text: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (i, _) in text.match_indices('$') {
        let after = &text[i + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                names.insert(&braced[..end]);
            }
        } else {
            let len = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
            if len > 0 {
                names.insert(&after[..len]);
            }
        }
    }
    names
}

fn label_key_ok(key: &str) -> bool {
    let valid = |c: char| c.is_ascii_digit() || c.is_ascii_lowercase() || ".-_/".contains(c);
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key.chars().all(valid)
        && !["com.docker.", "io.docker.", "org.dockerproject."].iter().any(|p| key.starts_with(p))
        && !key.contains("..")
        && !key.contains("--")
}

/// Per-stage state of the walk.
#[derive(Default)]
struct Stage {
    alias: Option<String>,
    cmd: bool,
    entrypoint: bool,
    healthcheck: bool,
    root_user_line: Option<usize>,
}

/// Runs the implemented hadolint rules; findings sorted by line, then code.
pub fn hadolint(df: &Dockerfile) -> Vec<HadolintFinding> {
    let mut found = BTreeSet::new();
    let mut add = |line: usize, code: &'static str| {
        if let Some((code, level, message)) = HADOLINT_RULES.iter().find(|r| r.0 == code) {
            found.insert(HadolintFinding { line, code, level, message });
        }
    };
    let mut aliases: BTreeSet<String> = BTreeSet::new();
    let mut froms = 0usize;
    let mut stage: Option<Stage> = None;
    let mut finished: Vec<Stage> = Vec::new();
    let mut env_seen: BTreeSet<String> = BTreeSet::new();
    for (inst, node) in df.instructions.iter().zip(&df.tree.nodes) {
        let line = node.start_line;
        if stage.is_none()
            && !matches!(inst.kind, InstructionKind::From { .. } | InstructionKind::Arg(_))
        {
            add(line, "DL3061");
        }
        match &inst.kind {
            InstructionKind::From { image, platform, .. } => {
                let alias = (node.args.len() >= 3).then(|| node.args[2].clone());
                let (name, tag, digest) = image_parts(image);
                if name != "scratch"
                    && digest.is_none()
                    && tag.is_none()
                    && !name.starts_with('$')
                    && !aliases.contains(&name)
                {
                    add(line, "DL3006");
                }
                if tag.as_deref() == Some("latest") && digest.is_none() {
                    add(line, "DL3007");
                }
                if platform
                    .as_ref()
                    .is_some_and(|p| !p.contains("BUILDPLATFORM") && !p.contains("TARGETPLATFORM"))
                {
                    add(line, "DL3029");
                }
                if let Some(a) = &alias {
                    if aliases.contains(a) {
                        add(line, "DL3024");
                    }
                    aliases.insert(a.clone());
                }
                froms += 1;
                finished.extend(stage.take());
                stage = Some(Stage { alias, ..Default::default() });
            }
            InstructionKind::Workdir(path) => {
                let p = drop_quotes(path);
                if !(p.starts_with('$') || p.starts_with('/') || windows_absolute(p)) {
                    add(line, "DL3000");
                }
            }
            InstructionKind::User(user) => {
                if let Some(s) = stage.as_mut() {
                    let root = user == "root"
                        || user == "0"
                        || user.starts_with("root:")
                        || user.starts_with("0:");
                    s.root_user_line = root.then_some(line);
                }
            }
            InstructionKind::Expose(ports) => {
                let too_big = ports.iter().any(|p| {
                    let number = p.split('/').next().unwrap_or("");
                    number.split('-').any(|n| n.parse::<u64>().is_ok_and(|n| n > 65535))
                });
                if too_big {
                    add(line, "DL3011");
                }
            }
            InstructionKind::Add(c) if c.heredocs.is_empty() => {
                let plain = c.sources.iter().map(|s| drop_quotes(s)).any(|s| {
                    !ARCHIVES.iter().any(|e| s.ends_with(e))
                        && !s.starts_with("https://")
                        && !s.starts_with("http://")
                });
                if plain {
                    add(line, "DL3020");
                }
            }
            InstructionKind::Copy(c) if c.heredocs.is_empty() => {
                if c.sources.len() > 1 && !drop_quotes(&c.dest).ends_with('/') {
                    add(line, "DL3021");
                }
                if let Some(from) = &c.from {
                    let numbered = from.parse::<usize>().is_ok_and(|n| n < froms);
                    if !drop_quotes(from).contains(':') && !aliases.contains(from) && !numbered {
                        add(line, "DL3022");
                    }
                    if stage.as_ref().and_then(|s| s.alias.as_ref()) == Some(from) {
                        add(line, "DL3023");
                    }
                }
            }
            InstructionKind::Cmd(cmd) | InstructionKind::Entrypoint(cmd) => {
                if matches!(cmd, Command::Shell(_)) {
                    add(line, "DL3025");
                }
                let is_cmd = matches!(inst.kind, InstructionKind::Cmd(_));
                if let Some(s) = stage.as_mut() {
                    let seen = if is_cmd { &mut s.cmd } else { &mut s.entrypoint };
                    if *seen {
                        add(line, if is_cmd { "DL4003" } else { "DL4004" });
                    }
                    *seen = true;
                }
            }
            InstructionKind::Healthcheck(h) => {
                if matches!(h, HealthCheck::Cmd { command: Command::Shell(_), .. }) {
                    add(line, "DL3025");
                }
                if let Some(s) = stage.as_mut() {
                    if s.healthcheck {
                        add(line, "DL3012");
                    }
                    s.healthcheck = true;
                }
            }
            InstructionKind::Maintainer(_) => add(line, "DL4000"),
            InstructionKind::Env(pairs) => {
                let defined: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                // Which pairs' values refer to each name, found in one pass over the values.
                let mut referrers: std::collections::BTreeMap<&str, Vec<usize>> =
                    Default::default();
                for (j, (_, v)) in pairs.iter().enumerate() {
                    for name in referenced(v) {
                        referrers.entry(name).or_default().push(j);
                    }
                }
                let refers = defined.iter().enumerate().any(|(i, var)| {
                    !env_seen.contains(*var)
                        && referrers.get(var).is_some_and(|js| js.iter().any(|j| *j != i))
                });
                if refers {
                    add(line, "DL3044");
                }
                env_seen.extend(defined.iter().map(|s| s.to_string()));
            }
            InstructionKind::Arg(pairs) => env_seen.extend(pairs.iter().map(|(k, _)| k.clone())),
            InstructionKind::Label(pairs)
                if pairs.iter().any(|(k, _)| !label_key_ok(drop_quotes(k))) =>
            {
                add(line, "DL3048");
            }
            _ => {}
        }
    }
    finished.extend(stage.take());
    for s in finished {
        if let Some(line) = s.root_user_line {
            add(line, "DL3002");
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<String> {
        let df = crate::parse(text).unwrap_or_else(|e| panic!("{e}"));
        hadolint(&df).iter().map(|f| format!("{}:{}", f.line, f.code)).collect()
    }

    #[test]
    fn each_rule_fires_and_keeps_quiet() {
        assert_eq!(codes("FROM busybox\nWORKDIR app\n"), ["1:DL3006", "2:DL3000"]);
        assert!(codes("FROM busybox:1\nWORKDIR /app\nWORKDIR $HOME\nWORKDIR C:\\x\n").is_empty());
        assert_eq!(
            codes("FROM busybox:1\nUSER root\nFROM busybox:1\nUSER root\nUSER app\n"),
            ["2:DL3002"]
        );
        assert_eq!(
            codes("FROM busybox:latest AS b\nFROM b\nFROM reg.io:5000/x\n"),
            ["1:DL3007", "3:DL3006"]
        );
        assert_eq!(codes("FROM ${B:-reg.io/x}\nFROM reg.io/x${A:+@sha256:00}\n"), ["2:DL3006"]);
        assert!(codes("FROM $BASE\nFROM scratch\nFROM x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n").is_empty());
        assert_eq!(codes("FROM a:1\nEXPOSE 80 70000/tcp\n"), ["2:DL3011"]);
        assert_eq!(codes("FROM a:1\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n"), ["3:DL3012"]);
        assert_eq!(codes("FROM a:1\nADD x.tar.gz https://e.com/f /d/\nADD f /d\n"), ["3:DL3020"]);
        assert_eq!(codes("FROM a:1\nCOPY a b /d\nCOPY a b /d/\n"), ["2:DL3021"]);
        assert_eq!(
            codes("FROM a:1 AS one\nCOPY --from=one x /\nCOPY --from=two x /\nCOPY --from=0 x /\nCOPY --from=img:1 x /\n"),
            ["2:DL3023", "3:DL3022"]
        );
        assert_eq!(codes("FROM a:1 AS x\nFROM a:1 AS x\n"), ["2:DL3024"]);
        assert_eq!(
            codes("FROM a:1\nCMD echo\nENTRYPOINT [\"x\"]\nHEALTHCHECK CMD true\n"),
            ["2:DL3025", "4:DL3025"]
        );
        assert_eq!(
            codes("FROM --platform=linux/amd64 a:1\nFROM --platform=$BUILDPLATFORM a:1\n"),
            ["1:DL3029"]
        );
        assert_eq!(codes("FROM a:1\nENV A=1 B=$A C=${A}x\nENV D=$A E=$Ex\n"), ["2:DL3044"]);
        assert_eq!(
            codes("FROM a:1\nLABEL Bad=1 good.key=2\nLABEL com.docker.x=1\n"),
            ["2:DL3048", "3:DL3048"]
        );
        assert_eq!(codes("ARG A=1\nLABEL x=y\nFROM a:1\n"), ["2:DL3061"]);
        assert_eq!(codes("FROM a:1\nMAINTAINER me\n"), ["2:DL4000"]);
        assert_eq!(
            codes("FROM a:1\nCMD [\"a\"]\nCMD [\"b\"]\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n"),
            ["3:DL4003", "5:DL4004"]
        );
    }
}
