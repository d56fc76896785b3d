//! Image references, parsed and normalised the way Docker does (`busybox` is
//! `docker.io/library/busybox:latest`).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// The registry assumed when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// Why a reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty input.
    #[error("invalid reference format: the reference is empty")]
    Empty,
    /// Upper-case letters in the repository part.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    NotLowercase(String),
    /// A 64-character hexadecimal string, which would be confused with an image ID.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// The name is longer than 255 characters.
    #[error(
        "invalid reference format: repository name ({0}) must not be more than 255 characters"
    )]
    TooLong(String),
    /// Anything else that does not follow the grammar.
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
}

/// A normalised image reference: registry domain, repository path, and a tag and/or
/// digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn grammar() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // The reference grammar of the distribution project, written out.
        let alnum = r"[a-z0-9]+";
        let sep = r"(?:[._]|__|[-]+)";
        let component = format!("{alnum}(?:{sep}{alnum})*");
        let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let host = format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[a-fA-F0-9:]+\])");
        let domain = format!(r"{host}(?::[0-9]+)?");
        let name = format!(r"(?:(?P<domain>{domain})/)?(?P<path>{component}(?:/{component})*)");
        // Go's \w is ASCII; spelled out, the pattern stays small and quick to compile.
        let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        let full = format!(r"^{name}(?::(?P<tag>{tag}))?(?:@(?P<digest>{digest}))?$");
        // The pattern is a constant; a failure here is a bug caught by every test.
        #[allow(clippy::expect_used)]
        Regex::new(&full).expect("the reference grammar is a valid regular expression")
    })
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` would.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if is_hex64(input) {
            return Err(ReferenceError::HexName(input.to_string()));
        }
        // Split off the domain the way Docker's normalisation does: the first component is
        // a registry when it has a `.` or `:`, or is `localhost`, or has upper case.
        let (domain, remainder) = match input.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), input.to_string()),
        };
        let domain = if domain == LEGACY_DOMAIN { DEFAULT_DOMAIN.to_string() } else { domain };
        let name_part = remainder.split(['@']).next().unwrap_or("");
        let repo_part = match name_part.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => name_part,
        };
        if repo_part.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::NotLowercase(repo_part.to_string()));
        }
        let remainder = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("{OFFICIAL_PREFIX}{remainder}")
        } else {
            remainder
        };
        let full = format!("{domain}/{remainder}");
        let caps =
            grammar().captures(&full).ok_or_else(|| ReferenceError::Invalid(input.to_string()))?;
        let path = caps.name("path").map(|m| m.as_str().to_string()).unwrap_or_default();
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(input.to_string()));
        }
        let tag = caps.name("tag").map(|m| m.as_str().to_string());
        let digest = caps.name("digest").map(|m| m.as_str().to_string());
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { domain, path, tag, digest })
    }

    /// The registry domain (`docker.io`, `localhost:5000` ...).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any (`sha256:...`).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The full repository name: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix(OFFICIAL_PREFIX).unwrap_or(&self.path).to_string()
        } else {
            self.repository()
        }
    }

    /// The reference as Docker shows it: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).map(|r| r.to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalisation() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/app:1.0"), "docker.io/user/app:1.0");
        assert_eq!(norm("index.docker.io/library/redis"), "docker.io/library/redis:latest");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/ns/app:v2"), "localhost:5000/ns/app:v2");
        assert_eq!(norm("127.0.0.1:5000/a"), "127.0.0.1:5000/a:latest");
        assert_eq!(norm("pkoin/percona-server"), "docker.io/pkoin/percona-server:latest");
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(norm(&format!("busybox@{d}")), format!("docker.io/library/busybox@{d}"));
        assert_eq!(norm(&format!("busybox:1@{d}")), format!("docker.io/library/busybox:1@{d}"));
        assert_eq!(
            Reference::parse("busybox").map(|r| r.familiar()).ok().as_deref(),
            Some("busybox:latest")
        );
        assert_eq!(
            Reference::parse("localhost:5000/x:y").map(|r| r.familiar()).ok().as_deref(),
            Some("localhost:5000/x:y")
        );
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "a:b:c",
            "-a",
            "a/",
            "a//b",
            "a:",
            ":tag",
            "a@sha256:12",
            "a:-x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} must be invalid");
        }
        assert!(matches!(Reference::parse(&"a".repeat(64)), Err(ReferenceError::HexName(_))));
        assert!(matches!(Reference::parse("UPPER"), Err(ReferenceError::NotLowercase(_))));
        assert!(Reference::parse(&format!("x/{}", "a".repeat(300))).is_err());
    }
}
