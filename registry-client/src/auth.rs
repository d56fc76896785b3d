//! Credentials and authentication challenges.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Credentials for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An identity (refresh) token, exchanged at the token endpoint.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Where credentials come from.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// The credentials for `registry` (a host, with port when not the default).
    fn credentials(&self, registry: &str) -> Option<Credentials>;
}

/// No credentials at all: anonymous access.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credentials(&self, _registry: &str) -> Option<Credentials> {
        None
    }
}

/// An authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer`, lower case.
    pub scheme: String,
    /// The parameters (`realm`, `service`, `scope` ...).
    pub params: HashMap<String, String>,
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (or Basic).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            // A quoted string; `\"` escapes a quote.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end?;
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
}

/// The docker client configuration file (`config.json`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DockerConfig {
    /// Stored credentials per registry.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub auths: HashMap<String, AuthEntry>,
    /// A credential helper for every registry (`docker-credential-NAME`).
    #[serde(default, rename = "credsStore", skip_serializing_if = "Option::is_none")]
    pub creds_store: Option<String>,
    /// Credential helpers per registry.
    #[serde(default, rename = "credHelpers", skip_serializing_if = "HashMap::is_empty")]
    pub cred_helpers: HashMap<String, String>,
    /// Everything else in the file, kept as it was.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One `auths` entry.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// An identity token.
    #[serde(default, rename = "identitytoken", skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("identity_token", &self.identity_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The keys Docker Hub's credentials may be stored under.
const HUB_KEYS: &[&str] =
    &["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"];

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("config.json");
        }
        let home =
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".docker/config.json")
    }

    /// Reads a config file; a missing file is an empty config.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the config file (mode 0600), through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The `auths` key for a registry (`https://index.docker.io/v1/` for Docker Hub, as
    /// `docker login` writes it).
    pub fn key_for(registry: &str) -> String {
        if HUB_KEYS.contains(&registry) {
            HUB_KEYS[0].to_string()
        } else {
            registry.to_string()
        }
    }

    /// Records credentials for a registry in `auths`.
    pub fn set(&mut self, registry: &str, username: &str, password: &str) {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let entry = self.auths.entry(Self::key_for(registry)).or_default();
        entry.auth = Some(auth);
        entry.identity_token = None;
    }

    /// Forgets a registry's credentials; whether there were any.
    pub fn remove(&mut self, registry: &str) -> bool {
        self.auths.remove(&Self::key_for(registry)).is_some()
    }

    /// The credential helper for a registry: its `credHelpers` entry, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(registry)
            .or_else(|| self.cred_helpers.get(&Self::key_for(registry)))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// Saves credentials as `docker login` does: through the registry's credential helper
    /// when one is configured (the file then keeps only an empty `auths` entry, no
    /// secret), else base64 in `auths`.
    pub fn login(&mut self, registry: &str, username: &str, password: &str) -> std::io::Result<()> {
        match self.helper_for(registry).map(str::to_string) {
            Some(helper) => {
                let request = serde_json::json!({
                    "ServerURL": Self::key_for(registry),
                    "Username": username,
                    "Secret": password,
                });
                run_helper(&helper, "store", &request.to_string())?;
                let entry = self.auths.entry(Self::key_for(registry)).or_default();
                entry.auth = None;
                entry.identity_token = None;
                Ok(())
            }
            None => {
                self.set(registry, username, password);
                Ok(())
            }
        }
    }

    /// Forgets a registry's credentials, in its helper too; whether there were any.
    pub fn logout(&mut self, registry: &str) -> std::io::Result<bool> {
        let mut had = self.remove(registry);
        if let Some(helper) = self.helper_for(registry).map(str::to_string) {
            match run_helper(&helper, "erase", &Self::key_for(registry)) {
                Ok(_) => had = true,
                // Helpers say "credentials not found in native keychain" when there is none.
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(had)
    }
}

/// Runs `docker-credential-NAME ACTION` with `input` on its standard input; its output.
fn run_helper(helper: &str, action: &str, input: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("running {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        return Err(std::io::Error::other(format!("{program} {action}: {said}")));
    }
    Ok(out.stdout)
}

/// Runs `docker-credential-NAME get` for a registry.
fn from_helper(helper: &str, registry: &str) -> Option<Credentials> {
    let stdout = run_helper(helper, "get", &DockerConfig::key_for(registry)).ok()?;
    #[derive(Deserialize)]
    struct HelperReply {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let reply: HelperReply = serde_json::from_slice(&stdout).ok()?;
    if reply.username == "<token>" {
        Some(Credentials::IdentityToken(reply.secret))
    } else {
        Some(Credentials::Basic { username: reply.username, password: reply.secret })
    }
}

impl CredentialSource for DockerConfig {
    fn credentials(&self, registry: &str) -> Option<Credentials> {
        if let Some(helper) = self.helper_for(registry) {
            if let Some(c) = from_helper(helper, registry) {
                return Some(c);
            }
        }
        let keys: Vec<String> = if HUB_KEYS.contains(&registry) {
            HUB_KEYS.iter().map(|s| s.to_string()).collect()
        } else {
            vec![registry.to_string(), format!("https://{registry}"), format!("http://{registry}")]
        };
        let entry = keys.iter().find_map(|k| self.auths.get(k))?;
        if let Some(token) = &entry.identity_token {
            return Some(Credentials::IdentityToken(token.clone()));
        }
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(entry.auth.as_ref()?).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(Credentials::Basic { username: username.to_string(), password: password.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((c.scheme.as_str(), c.params["realm"].as_str()), ("basic", "Registry Realm"));
    }

    #[test]
    fn config_round_trip_and_redaction() {
        let mut cfg = DockerConfig::default();
        cfg.set("localhost:5000", "alice", "s3cret");
        cfg.set("docker.io", "bob", "hunter2");
        assert_eq!(
            cfg.credentials("localhost:5000"),
            Some(Credentials::Basic { username: "alice".into(), password: "s3cret".into() })
        );
        assert!(cfg.auths.contains_key("https://index.docker.io/v1/"));
        assert!(cfg.credentials("registry-1.docker.io").is_some());
        let shown = format!("{:?} {:?}", cfg, cfg.credentials("localhost:5000"));
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2") && !shown.contains("czNjcmV0"),
            "{shown}"
        );
        assert!(cfg.remove("localhost:5000"));
        assert!(cfg.credentials("localhost:5000").is_none());
    }
}
