//! Instruction flags (`--name=value`), checked the way BuildKit's flag set checks them.

use std::time::Duration;

use crate::error::ErrorKind;

/// The kinds of value a flag takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    /// `--name=value`, at most once.
    Value,
    /// `--name=value`, any number of times.
    List,
    /// `--name`, `--name=true` or `--name=false`.
    Bool,
}

/// The flags of one instruction, parsed against the flags it declares.
pub(crate) struct Flags {
    values: Vec<(&'static str, String)>,
}

impl Flags {
    /// Parses `raw` (each `--name[=value]`) against `spec`.
    pub(crate) fn parse(
        instruction: &str,
        raw: &[String],
        spec: &[(&'static str, FlagType)],
    ) -> Result<Self, ErrorKind> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        for flag in raw {
            let body = flag.strip_prefix("--").unwrap_or(flag);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let suggestion = spec
                    .iter()
                    .map(|(known, _)| (strsim::damerau_levenshtein(name, known), *known))
                    .filter(|(d, known)| *d <= 2.min(known.len() / 2).max(1))
                    .min()
                    .map(|(_, known)| known.to_string());
                return Err(ErrorKind::UnknownFlag {
                    instruction: instruction.to_string(),
                    flag: name.to_string(),
                    suggestion,
                });
            };
            if kind != FlagType::List && values.iter().any(|(n, _)| *n == name) {
                return Err(ErrorKind::Invalid(format!("duplicate flag specified: --{name}")));
            }
            let value = match (kind, value) {
                (FlagType::Bool, None) => "true".to_string(),
                (FlagType::Bool, Some(v)) => match v.to_lowercase().as_str() {
                    "" | "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(ErrorKind::Invalid(format!(
                            "expecting boolean value for flag --{name}, not: {v}"
                        )))
                    }
                },
                (_, None) => {
                    return Err(ErrorKind::Invalid(format!("missing a value on flag: --{name}")))
                }
                (_, Some(v)) => v.to_string(),
            };
            values.push((name, value));
        }
        Ok(Flags { values })
    }

    /// The value of a single-valued flag.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.values.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.clone()).collect()
    }

    /// A boolean flag: `None` when absent.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

/// Parses a Go duration (`300ms`, `1.5h`, `2m30s`), the format of HEALTHCHECK's flags.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration {text:?}");
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(format!("{text:?}: durations cannot be negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." {
            return Err(err());
        }
        let value: f64 = number.parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    if total > i64::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn flag_rules() {
        let spec =
            [("link", FlagType::Bool), ("from", FlagType::Value), ("exclude", FlagType::List)];
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = Flags::parse(
            "COPY",
            &raw(&["--link", "--from=a", "--exclude=x", "--exclude=y"]),
            &spec,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.list("exclude"), ["x", "y"]);
        assert!(Flags::parse("COPY", &raw(&["--from"]), &spec).is_err());
        assert!(Flags::parse("COPY", &raw(&["--from=a", "--from=b"]), &spec).is_err());
        assert!(Flags::parse("COPY", &raw(&["--link=maybe"]), &spec).is_err());
        assert!(matches!(
            Flags::parse("COPY", &raw(&["--nope"]), &spec),
            Err(ErrorKind::UnknownFlag { suggestion: None, .. })
        ));
        let typo = Flags::parse("COPY", &raw(&["--frm=a"]), &spec).err().map(|e| e.to_string());
        assert_eq!(typo.as_deref(), Some("unknown flag: --frm for COPY (did you mean --from?)"));
    }
}
