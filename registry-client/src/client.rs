//! The HTTP side: requests with authentication, retries and backoff.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::auth::{parse_challenge, Anonymous, CredentialSource, Credentials};
use crate::error::{Error, Result};

/// Docker Hub's API host.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries to reach over plain HTTP (loopback registries always are).
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) to trust; `/etc/docker/certs.d/HOST/ca.crt` files are
    /// added for their hosts automatically.
    pub ca_files: Vec<PathBuf>,
    /// How many times a failed request is tried again.
    pub retries: u32,
    /// The first backoff; each retry doubles it.
    pub backoff: Duration,
    /// How many blobs move at once.
    pub concurrency: usize,
    /// Blobs larger than this are uploaded in chunks of this size, which lets an
    /// interrupted upload resume.
    pub chunk_size: u64,
    /// The overall deadline of a request that moves no blob (pings, tokens, manifests,
    /// HEADs), its answer's body included.
    pub request_timeout: Duration,
    /// The overall deadline of one blob transfer request (a download, an upload or one
    /// chunk of it).
    pub transfer_timeout: Duration,
    /// How long a connection may go without delivering a byte.
    pub stall_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            retries: 5,
            backoff: Duration::from_millis(200),
            concurrency: 4,
            // Most layers go in one PUT, as one stream: each chunk is a round trip in
            // which the registry also stores its hash state. Pushing five 36 MB layers to a
            // local docker-registry, medians of 10 alternating: 0.56-0.59 s in 64 MiB
            // chunks, 0.61-0.65 s in 16 MiB ones.
            chunk_size: 64 << 20,
            request_timeout: Duration::from_secs(120),
            transfer_timeout: Duration::from_secs(3600),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// A repository on a registry: `registry` is the host (with port), `name` the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The registry's API host (`registry-1.docker.io`, `localhost:5000` ...).
    pub registry: String,
    /// The repository path (`library/busybox`).
    pub name: String,
}

impl Repository {
    /// A repository from a reference's domain and path (`docker.io` becomes Docker Hub's
    /// API host).
    pub fn new(domain: &str, path: &str) -> Self {
        let registry = if domain == "docker.io" || domain == "index.docker.io" {
            DOCKER_HUB_REGISTRY.to_string()
        } else {
            domain.to_string()
        };
        Repository { registry, name: path.to_string() }
    }
}

/// Which overall deadline a request has.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// [`ClientOptions::request_timeout`].
    Request,
    /// [`ClientOptions::transfer_timeout`].
    Transfer,
}

impl Deadline {
    /// The deadline's length, and the command-line option that sets it.
    fn limit(self, options: &ClientOptions) -> (Duration, &'static str) {
        match self {
            Deadline::Request => (options.request_timeout, "--registry-timeout"),
            Deadline::Transfer => (options.transfer_timeout, "--registry-transfer-timeout"),
        }
    }
}

/// The certificate problem behind a failed request, if that is what failed. reqwest
/// does not expose its TLS library's error type, so the causes' texts are read: rustls
/// states every verification failure as "invalid peer certificate: ...".
fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if text.contains("certificate") {
            return Some(text);
        }
        cause = c.source();
    }
    None
}

/// Whether a registry host is on the loopback interface.
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(h, p)| !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// An Authorization header value and when it stops being good (`None`: never).
type CachedAuth = (String, Option<std::time::Instant>);

/// The OCI distribution client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    credentials: Arc<dyn CredentialSource>,
    /// Authorization header values by registry and scope, with when a token stops
    /// being good (`None` for Basic, which does not expire).
    tokens: Arc<Mutex<HashMap<String, CachedAuth>>>,
    /// The scheme found for each insecure registry.
    schemes: Arc<std::sync::Mutex<HashMap<String, &'static str>>>,
    /// Whether requests without a body move a blob (see [`Client::for_transfer`]).
    transfer: bool,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    /// Seconds the token is good for (60 when absent, as the token spec says).
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn token_query<'a>(service: &'a str, scope: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut q = vec![("service", service)];
    if !scope.is_empty() {
        q.push(("scope", scope));
    }
    q
}

/// A request body the client can make again for a retry.
pub(crate) type BodyFactory<'a> = &'a (dyn Fn() -> Result<reqwest::Body> + Send + Sync);

impl Client {
    /// A client with these options and credentials.
    pub fn new(options: ClientOptions, credentials: Arc<dyn CredentialSource>) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(options.stall_timeout);
        let mut ca_files = options.ca_files.clone();
        if let Ok(dirs) = std::fs::read_dir("/etc/docker/certs.d") {
            ca_files
                .extend(dirs.flatten().map(|d| d.path().join("ca.crt")).filter(|p| p.is_file()));
        }
        for ca in &ca_files {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::Io { what: ca.display().to_string(), source: e })?;
            // A CA file may hold several certificates (a bundle, or a chain): all count.
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Protocol(format!("{}: not a PEM certificate: {e}", ca.display()))
            })?;
            if certs.is_empty() {
                return Err(Error::Protocol(format!("{}: holds no PEM certificate", ca.display())));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Transport { url: "client set-up".into(), source: e })?;
        Ok(Client {
            http,
            options,
            credentials,
            tokens: Default::default(),
            schemes: Default::default(),
            transfer: false,
        })
    }

    /// An anonymous client with default options.
    pub fn anonymous() -> Result<Self> {
        Self::new(ClientOptions::default(), Arc::new(Anonymous))
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// `http` or `https` for a registry. Registries on the loopback interface and those
    /// named insecure are tried over HTTPS first (certificates still checked) and reached
    /// over plain HTTP only when the other end does not speak TLS; a certificate that
    /// does not verify is an error, never a reason to send in the clear. Every other
    /// registry is HTTPS only.
    pub async fn scheme(&self, registry: &str) -> Result<&'static str> {
        let insecure =
            is_loopback(registry) || self.options.insecure_registries.iter().any(|r| r == registry);
        if !insecure {
            return Ok("https");
        }
        if let Some(s) = self.schemes.lock().ok().and_then(|m| m.get(registry).copied()) {
            return Ok(s);
        }
        let probe = self
            .http
            .get(format!("https://{registry}/v2/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let scheme = match probe {
            Ok(_) => "https",
            Err(e) => match certificate_problem(&e) {
                Some(message) => {
                    return Err(Error::Tls { registry: registry.to_string(), message })
                }
                None => "http",
            },
        };
        tracing::debug!("{registry}: using {scheme}");
        if let Ok(mut m) = self.schemes.lock() {
            m.insert(registry.to_string(), scheme);
        }
        Ok(scheme)
    }

    /// The base URL of a repository's API.
    pub(crate) async fn repo_url(&self, repo: &Repository) -> Result<String> {
        Ok(format!("{}://{}/v2/{}", self.scheme(&repo.registry).await?, repo.registry, repo.name))
    }

    async fn fetch_token(
        &self,
        registry: &str,
        params: &HashMap<String, String>,
        scope: &str,
    ) -> Result<(String, std::time::Duration)> {
        let realm = params.get("realm").ok_or_else(|| {
            Error::Protocol(format!("{registry}: a bearer challenge without a realm"))
        })?;
        let service = params.get("service").cloned().unwrap_or_default();
        let creds = self.credentials.credentials(registry);
        let request = match &creds {
            Some(Credentials::IdentityToken(token)) => self.http.post(realm).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("service", service.as_str()),
                ("scope", scope),
                ("client_id", "rbuild"),
            ]),
            Some(Credentials::Basic { username, password }) => self
                .http
                .get(realm)
                .query(&token_query(&service, scope))
                .basic_auth(username, Some(password)),
            None => self.http.get(realm).query(&token_query(&service, scope)),
        };
        let reply = request
            .timeout(self.options.request_timeout)
            .send()
            .await
            .map_err(|e| self.request_error(realm, e, Deadline::Request))?;
        let status = reply.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = if creds.is_some() {
                "the token service refused the credentials (check the user name and password, or run rbuild login)"
            } else {
                "the token service refused anonymous access (run rbuild login first)"
            };
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                message: message.into(),
            });
        }
        if !status.is_success() {
            return Err(Error::Status {
                url: realm.clone(),
                status: status.as_u16(),
                message: String::new(),
            });
        }
        let token: TokenReply = reply
            .json()
            .await
            .map_err(|e| Error::Protocol(format!("{realm}: bad token reply: {e}")))?;
        let good_for = std::time::Duration::from_secs(token.expires_in.unwrap_or(60).max(1));
        let value = token
            .token
            .or(token.access_token)
            .ok_or_else(|| Error::Protocol(format!("{realm}: the token reply has no token")))?;
        Ok((value, good_for))
    }

    fn basic_header(&self, registry: &str) -> Option<HeaderValue> {
        match self.credentials.credentials(registry)? {
            Credentials::Basic { username, password } => {
                let raw = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                let mut v = HeaderValue::from_str(&format!("Basic {raw}")).ok()?;
                v.set_sensitive(true);
                Some(v)
            }
            Credentials::IdentityToken(_) => None,
        }
    }

    /// This client for blob downloads: its requests have the deadline of a transfer (the
    /// answer's body, read after `send` returns, within it).
    pub(crate) fn for_transfer(&self) -> Client {
        Client { transfer: true, ..self.clone() }
    }

    /// The error for a reqwest failure of a request to `url`: a timeout names its
    /// deadline, a certificate problem says so.
    pub(crate) fn request_error(&self, url: &str, e: reqwest::Error, deadline: Deadline) -> Error {
        if e.is_timeout() {
            let (after, flag) = deadline.limit(&self.options);
            return Error::Timeout { url: url.to_string(), after, flag };
        }
        if let Some(message) = certificate_problem(&e) {
            let registry = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or(url)
                .to_string();
            return Error::Tls { registry, message };
        }
        Error::Transport { url: url.to_string(), source: e.without_url() }
    }

    /// The Authorization value cached for `key`, unless it has expired (or is about to):
    /// such a token is asked for again rather than sent.
    async fn cached_auth(&self, key: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().await;
        let expired = tokens
            .get(key)
            .is_some_and(|(_, until)| until.is_some_and(|u| std::time::Instant::now() >= u));
        if expired {
            tokens.remove(key);
        }
        tokens.get(key).map(|(auth, _)| auth.clone())
    }

    /// The Authorization value that answers a registry's challenge: a Bearer token from
    /// its realm (good until shortly before it expires), or Basic credentials.
    async fn answer(
        &self,
        repo: &Repository,
        challenge: Option<crate::auth::Challenge>,
        scope: &str,
    ) -> Result<CachedAuth> {
        let refused = |message: &str| Error::Unauthorized {
            registry: repo.registry.clone(),
            message: message.into(),
        };
        match challenge {
            Some(c) if c.scheme == "bearer" => {
                let (token, good_for) = self.fetch_token(&repo.registry, &c.params, scope).await?;
                // Renewed 10 s before it ends (or at half its life when shorter), so no
                // request goes out with a token that dies on the way.
                let margin = (good_for / 2).min(Duration::from_secs(10));
                let until = std::time::Instant::now() + good_for - margin;
                Ok((format!("Bearer {token}"), Some(until)))
            }
            Some(c) if c.scheme == "basic" => match self.basic_header(&repo.registry) {
                Some(h) => Ok((h.to_str().unwrap_or_default().to_string(), None)),
                None => Err(refused("the registry needs credentials (run rbuild login first)")),
            },
            _ => Err(refused("access denied, and no authentication challenge to answer")),
        }
    }

    /// Sends a request to a repository's API, authenticating on demand and retrying
    /// transient failures (connection errors, 5xx, 429 with its `Retry-After`). A request
    /// with a body, or from [`Client::for_transfer`], has the transfer deadline; any
    /// other the request deadline.
    pub(crate) async fn send(
        &self,
        repo: &Repository,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<BodyFactory<'_>>,
        actions: &str,
    ) -> Result<Response> {
        let deadline =
            if body.is_some() || self.transfer { Deadline::Transfer } else { Deadline::Request };
        let (timeout, _) = deadline.limit(&self.options);
        // The /v2/ ping names no repository, and its token no scope.
        let scope = if repo.name.is_empty() {
            String::new()
        } else {
            format!("repository:{}:{}", repo.name, actions)
        };
        let key = format!("{}|{}", repo.registry, scope);
        let mut authenticated_once = false;
        let mut attempt = 0;
        loop {
            let mut request =
                self.http.request(method.clone(), url).headers(headers.clone()).timeout(timeout);
            if let Some(auth) = self.cached_auth(&key).await {
                if let Ok(mut v) = HeaderValue::from_str(&auth) {
                    v.set_sensitive(true);
                    request = request.header(AUTHORIZATION, v);
                }
            }
            if let Some(make) = body {
                request = request.body(make()?);
            }
            let result = request.send().await;
            let wait = match result {
                Err(e) => {
                    // A deadline that passed or a certificate that does not verify will
                    // not change by trying again.
                    if attempt >= self.options.retries
                        || e.is_timeout()
                        || certificate_problem(&e).is_some()
                    {
                        return Err(self.request_error(url, e, deadline));
                    }
                    tracing::debug!("{url}: {e}; retrying");
                    None
                }
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::UNAUTHORIZED && !authenticated_once {
                        authenticated_once = true;
                        let challenge = response
                            .headers()
                            .get(WWW_AUTHENTICATE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_challenge);
                        let auth = self.answer(repo, challenge, &scope).await?;
                        self.tokens.lock().await.insert(key.clone(), auth);
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        self.tokens.lock().await.remove(&key);
                        let message = if self.credentials.credentials(&repo.registry).is_some() {
                            "the registry refused the credentials (check the user name and password)"
                        } else {
                            "access denied (run rbuild login first)"
                        };
                        return Err(Error::Unauthorized {
                            registry: repo.registry.clone(),
                            message: message.into(),
                        });
                    }
                    let transient =
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !transient || attempt >= self.options.retries {
                        return Ok(response);
                    }
                    tracing::debug!("{url}: {status}; retrying");
                    response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)))
                }
            };
            let backoff = wait.unwrap_or(self.options.backoff * 2u32.saturating_pow(attempt));
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// Sends one request with a body, authenticating on demand but without retrying a
    /// failure (for upload chunks, whose retry starts from where the registry stands).
    pub(crate) async fn send_once(
        &self,
        repo: &Repository,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: BodyFactory<'_>,
    ) -> Result<Response> {
        let once = Client {
            options: ClientOptions { retries: 0, ..self.options.clone() },
            ..self.clone()
        };
        once.send(repo, method, url, headers, Some(body), "pull,push").await
    }

    /// Turns an unsuccessful response into an error with the registry's message.
    pub(crate) async fn fail(url: &str, response: Response) -> Error {
        let status = response.status().as_u16();
        let message =
            response
                .json::<ErrorReply>()
                .await
                .ok()
                .and_then(|r| r.errors.into_iter().next())
                .map(|e| {
                    if e.message.is_empty() {
                        e.code
                    } else {
                        format!("{}: {}", e.code, e.message)
                    }
                })
                .unwrap_or_default();
        Error::Status { url: url.to_string(), status, message }
    }

    /// `GET /v2/`: checks that the registry answers and, with credentials, that it
    /// accepts them.
    pub async fn check(&self, registry: &str) -> Result<()> {
        let url = format!("{}://{registry}/v2/", self.scheme(registry).await?);
        let repo = Repository { registry: registry.to_string(), name: String::new() };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // The catalog-less ping: a bearer challenge for /v2/ carries no scope.
        let response = self.send(&repo, Method::GET, &url, headers, None, "pull").await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::fail(&url, response).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_hub() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:38211"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert_eq!(Repository::new("docker.io", "library/busybox").registry, DOCKER_HUB_REGISTRY);
    }

    #[test]
    fn an_expired_token_is_not_sent_again() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = Client::anonymous().unwrap();
            let now = std::time::Instant::now();
            let mut tokens = client.tokens.lock().await;
            tokens.insert("fresh".into(), ("Bearer a".into(), Some(now + Duration::from_secs(60))));
            tokens.insert("stale".into(), ("Bearer b".into(), Some(now)));
            tokens.insert("basic".into(), ("Basic c".into(), None));
            drop(tokens);
            assert_eq!(client.cached_auth("fresh").await.as_deref(), Some("Bearer a"));
            assert_eq!(client.cached_auth("stale").await, None);
            assert!(!client.tokens.lock().await.contains_key("stale"), "forgotten");
            assert_eq!(client.cached_auth("basic").await.as_deref(), Some("Basic c"));
        });
    }
}
