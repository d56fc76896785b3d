//! pull and push against Debian's `docker-registry` (distribution 2.8) started here on a
//! free loopback port, with skopeo as the independent client on the other side.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{busybox_images, ok, require_tool};

/// A registry process that stops when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TLS and Basic authentication for a test registry.
pub struct Secure {
    /// The CA certificate (PEM) clients must trust.
    pub ca: PathBuf,
    /// The user and password the registry accepts.
    pub user: (&'static str, &'static str),
}

/// Runs a command that must succeed.
/// A loopback port free now, for a server another process will bind: drawn at random from
/// 20000-31999, below the kernel's ephemeral range, where binding port 0 would draw and
/// where every outgoing connection takes its source port (see `free_port` in
/// `testdata/registry.sh`, which the build cases use).
fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new().hash_one(std::process::id());
    (0..500u64)
        .map(|i| 20000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 12000) as u16)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port between 20000 and 31999 (500 tried)")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Registry {
    /// Starts a plain-HTTP registry with its own storage.
    pub fn start() -> Registry {
        Self::start_with(None, None).0
    }

    /// Starts a registry over HTTPS (a CA made here) with htpasswd (bcrypt) Basic auth.
    pub fn start_secure() -> (Registry, Secure) {
        let (r, s) = Self::start_with(Some(()), None);
        (r, s.unwrap())
    }

    /// Starts a plain-HTTP registry that takes bearer tokens from `token`.
    pub fn start_token(token: &crate::token::TokenServer) -> Registry {
        let auth = format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            token.realm,
            crate::token::SERVICE,
            crate::token::ISSUER,
            token.cert.display()
        );
        Self::start_with(None, Some(auth)).0
    }

    fn start_with(secure: Option<()>, token_auth: Option<String>) -> (Registry, Option<Secure>) {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut extra = String::new();
        let mut secure_out = None;
        if secure.is_some() {
            require_tool("openssl", "openssl");
            require_tool("htpasswd", "apache2-utils");
            let d = dir.path();
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=rbuild test CA",
                ])
                .arg("-keyout")
                .arg(d.join("ca.key"))
                .arg("-out")
                .arg(d.join("ca.crt")));
            run(Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
                .arg("-keyout")
                .arg(d.join("server.key"))
                .arg("-out")
                .arg(d.join("server.csr")));
            fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(d.join("server.csr"))
                .arg("-CA")
                .arg(d.join("ca.crt"))
                .arg("-CAkey")
                .arg(d.join("ca.key"))
                .arg("-extfile")
                .arg(d.join("san.ext"))
                .arg("-out")
                .arg(d.join("server.crt")));
            run(Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(d.join("htpasswd"))
                .args(["alice", "correct horse"]));
            extra = format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display(),
                d.join("htpasswd").display()
            );
            secure_out = Some(Secure { ca: d.join("ca.crt"), user: ("alice", "correct horse") });
        }
        if let Some(auth) = token_auth {
            extra.push_str(&auth);
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{extra}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry { child, host, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start on {}", registry.host);
            std::thread::sleep(Duration::from_millis(50));
        }
        (registry, secure_out)
    }
}

/// The command failed (exit code 1) and said `text` on standard error.
fn fails_with(out: &std::process::Output, text: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(text), "expected {text:?} in: {stderr}");
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config_digest(images: &Path) -> String {
    let layout = images.join("layout");
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().replace("sha256:", "");
    let manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(m)).unwrap()).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

fn image_id(root: &Path, name: &str) -> String {
    let inspect: Value = serde_json::from_str(&ok(root, &["inspect", name])).unwrap();
    inspect[0]["Id"].as_str().unwrap().to_string()
}

#[test]
fn push_is_read_by_skopeo_and_pull_reads_it_back() {
    let images = busybox_images();
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-q", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    let dest = format!("{}/tools/busybox:v1", registry.host);
    let out = ok(root.path(), &["push", "busybox", &dest]);
    let pushed = out.lines().last().unwrap().split_whitespace().nth(2).unwrap().to_string();
    assert!(out.contains("Push complete"), "{out}");

    let inspected: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], pushed.as_str(), "skopeo sees the digest rbuild pushed");
    let copy = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:v1", copy.path().display()),
    ]);

    // A second push sends no blob.
    let again = ok(root.path(), &["push", "busybox", &dest]);
    assert!(!again.contains("Pushing"), "{again}");
    assert_eq!(again.matches("already exists").count(), 2, "{again}");

    // Pull into an empty store.
    let fresh = tempfile::tempdir().unwrap();
    let pulled = ok(fresh.path(), &["pull", &dest]);
    assert!(pulled.contains(&format!("Digest: {pushed}")), "{pulled}");
    assert_eq!(image_id(fresh.path(), &dest), config_digest(images));
    // As docker shows a pull: the one layer, not the config blob.
    assert_eq!(pulled.matches("Pull complete").count(), 1, "{pulled}");
    let config = config_digest(images);
    assert!(!pulled.contains(&config["sha256:".len().."sha256:".len() + 12]), "{pulled}");
}

#[test]
fn pulls_what_skopeo_pushes() {
    let images = busybox_images();
    let registry = Registry::start();
    let dest = format!("{}/library/busybox:latest", registry.host);
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", images.join("layout").display()),
        &format!("docker://{dest}"),
    ]);
    let root = tempfile::tempdir().unwrap();
    let quiet = ok(root.path(), &["pull", "-q", &dest]);
    assert_eq!(quiet.trim(), config_digest(images));
    let list = ok(root.path(), &["images"]);
    assert!(list.contains(&format!("{}/library/busybox", registry.host)), "{list}");
    // One size, as docker shows it (the layer uncompressed), whether the image was pulled
    // (a gzip layer) or loaded from a docker archive (a plain tar).
    let pulled_size = ok(root.path(), &["images", "--format", "{{.Size}}"]);
    let loaded = tempfile::tempdir().unwrap();
    ok(loaded.path(), &["load", "-q", "-i", images.join("busybox-docker.tar").to_str().unwrap()]);
    assert_eq!(pulled_size, ok(loaded.path(), &["images", "--format", "{{.Size}}"]));
    let inspected: Value = serde_json::from_str(&ok(root.path(), &["inspect", &dest])).unwrap();
    assert!(inspected[0]["Size"].as_u64().unwrap() > 1_500_000, "uncompressed: {inspected}");
    let missing = crate::util::rbuild_in(
        root.path(),
        &["pull", &format!("{}/nothing/here:1", registry.host)],
    );
    fails_with(&missing, "404");
}

/// Makes a two-platform OCI layout (linux/amd64 and linux/arm64, same layer, configs that
/// differ in architecture) from the busybox layout.
fn two_platform_layout(images: &Path, out: &Path) -> (String, String) {
    use sha2::Digest;
    let src = images.join("layout");
    crate::util::untar_copy(&src, out);
    let blob = |d: &str| out.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        fs::write(out.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let index: Value = serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let config: Value = serde_json::from_slice(
        &fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let mut c = config.clone();
        c["architecture"] = Value::from(arch);
        let (cd, cs) = put(&serde_json::to_vec(&c).unwrap());
        ids.push(cd.clone());
        let mut m = manifest.clone();
        m["config"]["digest"] = Value::from(cd);
        m["config"]["size"] = Value::from(cs);
        let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = Value::from(v);
        }
        entries.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms, "platform": platform}));
    }
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let (id, is) = put(&serde_json::to_vec(&idx).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(out.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (ids[0].clone(), ids[1].clone())
}

#[test]
fn pulls_the_right_platform_of_an_index() {
    let images = busybox_images();
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout: PathBuf = work.path().join("multi");
    let (amd64, arm64) = two_platform_layout(images, &layout);
    let dest = format!("{}/multi/busybox:multi", registry.host);
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{dest}"),
    ]);
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        ok(root.path(), &["pull", "-q", &dest]).trim(),
        amd64,
        "the host's platform (linux/amd64)"
    );
    assert_eq!(ok(root.path(), &["pull", "-q", "--platform", "linux/arm64", &dest]).trim(), arm64);
    let none = crate::util::rbuild_in(root.path(), &["pull", "--platform", "linux/s390x", &dest]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no manifest for platform linux/s390x"));
}

/// `rbuild` with its own docker config directory.
fn rbuild_with_config(
    root: &Path,
    config: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    rbuild_with_env(root, config, &[], args, stdin)
}

/// [`rbuild_with_config`] with more environment variables.
fn rbuild_with_env(
    root: &Path,
    config: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    let mut child = crate::util::rbuild()
        .envs(env.iter().copied())
        .env("DOCKER_CONFIG", config)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn https_with_basic_auth_login_push_pull_logout() {
    let images = busybox_images();
    let (registry, secure) = Registry::start_secure();
    let work = tempfile::tempdir().unwrap();
    let (root, config) = (work.path().join("store"), work.path().join("docker"));
    let ca = secure.ca.to_str().unwrap();
    let host = registry.host.as_str();
    let (user, password) = secure.user;
    ok(&root, &["load", "-q", "-i", images.join("busybox-docker.tar").to_str().unwrap()]);
    let dest = format!("{host}/private/busybox:1");

    let anonymous =
        rbuild_with_config(&root, &config, &["push", "--ca-file", ca, "busybox", &dest], None);
    fails_with(&anonymous, "run rbuild login first");

    let wrong = rbuild_with_config(
        &root,
        &config,
        &["login", "--ca-file", ca, "-u", user, "--password-stdin", host],
        Some("wrong\n"),
    );
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the password never shows: {stderr}");
    assert!(!config.join("config.json").exists(), "nothing saved after a failed login");

    let good = rbuild_with_config(
        &root,
        &config,
        &["login", "--ca-file", ca, "-u", user, "--password-stdin", host],
        Some(password),
    );
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert_eq!(String::from_utf8_lossy(&good.stdout), "Login Succeeded\n");
    let saved: Value =
        serde_json::from_slice(&fs::read(config.join("config.json")).unwrap()).unwrap();
    assert!(saved["auths"][host]["auth"].is_string(), "{saved}");

    let pushed =
        rbuild_with_config(&root, &config, &["push", "--ca-file", ca, "busybox", &dest], None);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let fresh = work.path().join("fresh");
    let pulled = rbuild_with_config(&fresh, &config, &["pull", "-q", "--ca-file", ca, &dest], None);
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
    assert_eq!(String::from_utf8_lossy(&pulled.stdout).trim(), config_digest(images));

    // Without the CA, HTTPS is refused, saying why, and nothing is tried over plain HTTP
    // (which a TLS port would answer with 400).
    let untrusted = rbuild_with_config(&fresh, &config, &["pull", &dest], None);
    assert_eq!(untrusted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("the TLS connection failed") && stderr.contains("certificate"),
        "a certificate problem is reported as such: {stderr}"
    );
    // (The registry's address is left out: its random port may hold "400".)
    assert!(!stderr.replace(host, "").contains("400"), "no fall-back to plain HTTP: {stderr}");
    // A CA file that holds several certificates (an unrelated CA first, as in a bundle)
    // trusts each of them.
    let other_ca = work.path().join("other-ca");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=unrelated CA", "-keyout"])
        .arg(other_ca.with_extension("key"))
        .arg("-out")
        .arg(&other_ca));
    let bundle = work.path().join("bundle.crt");
    fs::write(&bundle, [fs::read(&other_ca).unwrap(), fs::read(&secure.ca).unwrap()].concat())
        .unwrap();
    let again = work.path().join("again");
    let pulled = rbuild_with_config(
        &again,
        &config,
        &["pull", "-q", "--ca-file", bundle.to_str().unwrap(), &dest],
        None,
    );
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
    // The same registry by its other name in the certificate: TLS holds, and the
    // registry then asks for the credentials saved for the other name.
    let by_name = dest.replacen("127.0.0.1", "localhost", 1);
    let other =
        rbuild_with_config(&fresh, &config, &["pull", "-q", "--ca-file", ca, &by_name], None);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("run rbuild login first") && !stderr.contains("TLS"), "{stderr}");

    let out = rbuild_with_config(&root, &config, &["logout", host], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let after = rbuild_with_config(&fresh, &config, &["pull", "--ca-file", ca, &dest], None);
    assert_eq!(after.status.code(), Some(1));
}

#[test]
fn pull_and_push_get_through_faults() {
    use crate::proxy::{Fault, Proxy};
    let images = busybox_images();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host);
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-q", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    let dest = format!("{}/faults/busybox:1", proxy.addr);
    let via = |args: &[&str]| -> std::process::Output {
        crate::util::rbuild().arg("--root").arg(root.path()).args(args).output().unwrap()
    };

    // Push: the upload start fails twice, a blob upload answers 500, the manifest 429.
    proxy.add("POST /v2/faults/busybox/blobs/uploads/", Fault::Status(503), 2);
    proxy.add("PUT /v2/faults/busybox/blobs/uploads/", Fault::Status(500), 1);
    proxy.add("PUT /v2/faults/busybox/manifests/1", Fault::Status(429), 1);
    let pushed = via(&["push", "busybox", &dest]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert!(proxy.pending().is_empty(), "every push fault fired: {:?}", proxy.pending());
    let digest = String::from_utf8_lossy(&pushed.stdout)
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let direct = format!("{}/faults/busybox:1", registry.host);
    let inspected: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{direct}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());

    // Pull: 503s on the manifest, 429 (Retry-After) and a connection cut mid-blob.
    let fresh = tempfile::tempdir().unwrap();
    proxy.add("GET /v2/faults/busybox/manifests/1", Fault::Status(503), 2);
    proxy.add("GET /v2/faults/busybox/blobs/sha256", Fault::Status(429), 1);
    proxy.add("GET /v2/faults/busybox/blobs/sha256", Fault::Cut(300_000), 1);
    proxy.add("GET /v2/faults/busybox/blobs/sha256", Fault::Delay(Duration::from_millis(300)), 1);
    let pulled = ok(fresh.path(), &["pull", "-q", &dest]);
    assert_eq!(pulled.trim(), config_digest(images));
    assert!(proxy.pending().is_empty(), "every pull fault fired: {:?}", proxy.pending());

    // Wrong bytes: refused, and nothing stored.
    let bad = tempfile::tempdir().unwrap();
    proxy.add("GET /v2/faults/busybox/blobs/sha256", Fault::Corrupt, 100);
    let out = crate::util::rbuild_in(bad.path(), &["pull", &dest]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert_eq!(fs::read_dir(bad.path().join("blobs/sha256")).unwrap().count(), 0, "nothing stored");
    assert_eq!(fs::read_dir(bad.path().join("tmp")).unwrap().count(), 0, "no partial blob left");
    assert_eq!(ok(bad.path(), &["images", "-q"]), "");
}

/// A push cut in the middle of a 144 MiB layer (sent in 64 MiB chunks) resumes from the
/// offset the registry reports, and a second push sends no blob (asserted on the bytes
/// the proxy relayed).
#[test]
fn interrupted_push_resumes_and_a_second_push_sends_no_blob() {
    use std::sync::atomic::Ordering;

    use crate::proxy::{Fault, Proxy};
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.tar");
    crate::store::big_archive(&archive, 144);
    let root = work.path().join("store");
    ok(&root, &["load", "-q", "-i", archive.to_str().unwrap()]);
    let layer_size = 144u64 << 20;
    let dest = format!("{}/big/image:1", proxy.addr);

    // The registry's answer to the second chunk is lost: the connection drops after the
    // registry took the chunk, in the middle of the layer.
    proxy.add("PATCH /v2/big/image/blobs/uploads/", Fault::Delay(Duration::ZERO), 1);
    proxy.add("PATCH /v2/big/image/blobs/uploads/", Fault::Cut(0), 1);
    let before = proxy.sent.load(Ordering::SeqCst);
    let out = crate::util::rbuild_in(&root, &["push", "big", &dest]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.pending().is_empty(), "the cut happened: {:?}", proxy.pending());
    let sent = proxy.sent.load(Ordering::SeqCst) - before;
    assert!(sent > layer_size, "sent {sent}");
    assert!(
        sent < layer_size + (64 << 20),
        "resumed instead of starting over: {sent} bytes for a {layer_size}-byte layer"
    );
    let direct = format!("{}/big/image:1", registry.host);
    let inspected: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{direct}"),
    ]))
    .unwrap();
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));

    // A chunk cut in its middle leaves distribution unable to resume the session: the
    // blob starts over, and the push still completes with the right digest.
    // (From a second store, which knows of no repository to mount the blob from.)
    let other = format!("{}/big/other:1", proxy.addr);
    let root2 = work.path().join("store2");
    ok(&root2, &["load", "-q", "-i", archive.to_str().unwrap()]);
    proxy.add("PATCH /v2/big/other/blobs/uploads/", Fault::CutRequest(5 << 20), 1);
    let out = crate::util::rbuild_in(&root2, &["push", "big", &other]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.pending().is_empty());

    let before = proxy.sent.load(Ordering::SeqCst);
    let again = ok(&root, &["push", "big", &dest]);
    let sent = proxy.sent.load(Ordering::SeqCst) - before;
    assert!(again.contains("already exists"), "{again}");
    assert!(sent < 64 << 10, "a second push sends no blob, only requests: {sent} bytes");
}

#[test]
fn token_auth_with_a_real_token_issuer() {
    use std::sync::atomic::Ordering;

    use crate::token::{TokenServer, PASSWORD, USER};
    require_tool("openssl", "openssl");
    let images = busybox_images();
    let work = tempfile::tempdir().unwrap();
    let token = TokenServer::start(work.path());
    let registry = Registry::start_token(&token);
    let (root, config) = (work.path().join("store"), work.path().join("docker"));
    ok(&root, &["load", "-q", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    let dest = format!("{}/team/busybox:1", registry.host);

    let anonymous = rbuild_with_config(&root, &config, &["push", "busybox", &dest], None);
    fails_with(&anonymous, "run rbuild login first");

    let wrong = rbuild_with_config(
        &root,
        &config,
        &["login", "-u", USER, "--password-stdin", &registry.host],
        Some("nope"),
    );
    fails_with(&wrong, "refused the credentials");

    let login = rbuild_with_config(
        &root,
        &config,
        &["login", "-u", USER, "--password-stdin", &registry.host],
        Some(PASSWORD),
    );
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let pushed = rbuild_with_config(&root, &config, &["push", "busybox", &dest], None);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let fresh = work.path().join("fresh");
    let pulled = rbuild_with_config(&fresh, &config, &["pull", "-q", &dest], None);
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
    assert_eq!(String::from_utf8_lossy(&pulled.stdout).trim(), config_digest(images));
    let issued = token.issued.load(Ordering::SeqCst);
    assert!(issued >= 3, "tokens came from the issuer: {issued}");
    assert!(issued < 20, "tokens are cached per scope, not fetched per request: {issued}");
}

/// A blob pushed to one repository is mounted into another of the same registry instead
/// of uploaded again.
#[test]
fn push_to_a_second_repository_mounts_blobs() {
    use std::sync::atomic::Ordering;

    use crate::proxy::Proxy;
    let images = busybox_images();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host);
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-q", "-i", images.join("busybox-oci.tar").to_str().unwrap()]);
    ok(root.path(), &["push", "busybox", &format!("{}/first/busybox:1", proxy.addr)]);
    let before = proxy.sent.load(Ordering::SeqCst);
    let out = ok(root.path(), &["push", "busybox", &format!("{}/second/busybox:1", proxy.addr)]);
    let sent = proxy.sent.load(Ordering::SeqCst) - before;
    assert_eq!(out.matches("mounted from first/busybox").count(), 2, "{out}");
    assert!(sent < 32 << 10, "mounts send no blob: {sent} bytes");
    let inspected: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/second/busybox:1", registry.host),
    ]))
    .unwrap();
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));
}

/// A registry that answers a manifest request one byte at a time: the request's overall
/// deadline ends it (the stall timeout alone never would), with an error that names what
/// was being fetched.
#[test]
fn a_registry_that_drips_meets_the_deadline() {
    use std::io::{Read, Write as _};
    use std::time::{Duration, Instant};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        let mut dripped = false;
        while Instant::now() < until && !dripped {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if head.starts_with("GET /v2/ ") {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
            } else if head.starts_with("GET /v2/") {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1000\r\n\r\n",
                );
                let stop = Instant::now() + Duration::from_secs(40);
                while Instant::now() < stop && conn.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_millis(500));
                }
                dripped = true;
            }
            // Anything else (the HTTPS probe's TLS hello) is closed unanswered.
        }
        dripped
    });
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = crate::util::rbuild_in(
        root.path(),
        &["pull", "--registry-timeout", "3", &format!("{host}/slow/image:1")],
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no complete answer within 3 s"), "{stderr}");
    assert!(
        stderr.contains("/v2/slow/image/manifests/1"),
        "the error names the manifest: {stderr}"
    );
    assert!(took < Duration::from_secs(30), "the deadline ended the pull: {took:?}");
    assert!(server.join().unwrap(), "the test server dripped a manifest");
}

#[test]
fn push_all_tags_and_pull_all_tags() {
    let registry = Registry::start();
    let root = crate::util::store_with_busybox();
    let repo = format!("{}/team/box", registry.host);
    for tag in ["v1", "v2", "latest"] {
        ok(root.path(), &["tag", "busybox", &format!("{repo}:{tag}")]);
    }
    ok(root.path(), &["tag", "busybox", &format!("{}/team/other:v9", registry.host)]);
    let out = ok(root.path(), &["push", "-q", "--all-tags", &repo]);
    assert_eq!(out.lines().count(), 3, "one digest per tag: {out}");
    let listed: Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]))
    .unwrap();
    let mut tags: Vec<&str> =
        listed["Tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    tags.sort_unstable();
    assert_eq!(tags, ["latest", "v1", "v2"], "team/other stays out");
    let fails = crate::util::rbuild_in(root.path(), &["push", "--all-tags", &format!("{repo}:v1")]);
    fails_with(&fails, "without a tag");

    let fresh = tempfile::tempdir().unwrap();
    let out = ok(fresh.path(), &["pull", "-a", &repo]);
    assert_eq!(out.matches("Status: Downloaded image for").count(), 3, "{out}");
    let names = ok(fresh.path(), &["images", "--format", "{{.Tag}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["latest", "v1", "v2"]);
}

/// `login` and `logout` through a credential helper (`credsStore`): the secret goes to the
/// helper, never into config.json, and a push finds it there.
#[test]
fn login_and_logout_through_a_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let images = busybox_images();
    let (registry, secure) = Registry::start_secure();
    let work = tempfile::tempdir().unwrap();
    let (root, config) = (work.path().join("store"), work.path().join("docker"));
    let (bin, kept) = (work.path().join("bin"), work.path().join("kept"));
    for d in [&bin, &kept, &config] {
        fs::create_dir_all(d).unwrap();
    }
    // A helper that keeps each server's JSON in a file of its own.
    let helper = bin.join("docker-credential-filetest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nset -e\ndir={}\ncase \"$1\" in\n\
             store) input=$(cat); server=$(printf %s \"$input\" | sed 's/.*\"ServerURL\":\"\\([^\"]*\\)\".*/\\1/'); printf %s \"$input\" > \"$dir/$(printf %s \"$server\" | tr -c 'A-Za-z0-9' _)\" ;;\n\
             get) server=$(cat); f=\"$dir/$(printf %s \"$server\" | tr -c 'A-Za-z0-9' _)\"; [ -f \"$f\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; cat \"$f\" ;;\n\
             erase) server=$(cat); f=\"$dir/$(printf %s \"$server\" | tr -c 'A-Za-z0-9' _)\"; [ -f \"$f\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; rm \"$f\" ;;\n\
             esac\n",
            kept.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        config.join("config.json"),
        r#"{"credsStore": "filetest", "experimental": "keep-me"}"#,
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ca = secure.ca.to_str().unwrap();
    let host = registry.host.as_str();
    let (user, password) = secure.user;
    let run = |args: &[&str], stdin: &str| {
        rbuild_with_env(&root, &config, &[("PATH", &path)], args, Some(stdin))
    };
    ok(&root, &["load", "-q", "-i", images.join("busybox-docker.tar").to_str().unwrap()]);
    let login = run(&["login", "--ca-file", ca, "-u", user, "--password-stdin", host], password);
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let saved = fs::read_to_string(config.join("config.json")).unwrap();
    assert!(
        !saved.contains(password) && !saved.contains("\"auth\""),
        "no secret in the file: {saved}"
    );
    assert!(saved.contains("keep-me") && saved.contains(host), "{saved}");
    let held: Vec<_> = fs::read_dir(&kept).unwrap().collect();
    assert_eq!(held.len(), 1, "the helper holds the credentials");
    let dest = format!("{host}/private/busybox:1");
    let pushed = run(&["push", "--ca-file", ca, "busybox", &dest], "");
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let out = run(&["logout", host], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Removing login credentials for {host}\n")
    );
    assert_eq!(fs::read_dir(&kept).unwrap().count(), 0, "erased from the helper");
    let again = run(&["logout", host], "");
    assert_eq!(String::from_utf8_lossy(&again.stdout), format!("Not logged in to {host}\n"));
    let denied = run(&["push", "--ca-file", ca, "busybox", &dest], "");
    fails_with(&denied, "run rbuild login first");
}

/// An OCI layout of one image whose only layer is `layer` (a plain tar) and whose config
/// announces `diff_id` for it (the layer's true digest when `None`).
fn one_layer_layout(out: &Path, layer: &[u8], diff_id: Option<&str>) {
    use sha2::Digest;
    fs::create_dir_all(out.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        fs::write(out.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (ld, ls) = put(layer);
    let diff_id = diff_id.map_or(ld.clone(), str::to_string);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// A tar of one regular file at `path` (written raw, so that `..` can be in it).
fn tar_of_one_file(path: &str, content: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// A pull unpacks each layer into its snapshot as it arrives; a layer with an entry that
/// climbs out, or whose content is not what the config announces, fails the pull, and
/// nothing of it is left: no snapshot, no image, no file outside the store.
#[test]
fn a_pull_unpacks_its_layers_and_refuses_hostile_ones() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let push = |name: &str, layer: &[u8], diff_id: Option<&str>| -> String {
        let layout = work.path().join(name);
        one_layer_layout(&layout, layer, diff_id);
        let dest = format!("{}/hostile/{name}:1", registry.host);
        skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{dest}"),
        ]);
        dest
    };
    let snapshots = |root: &Path| -> Vec<String> {
        fs::read_dir(root.join("snapshots"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    // A plain layer: its snapshot is there after the pull, named by its diff ID.
    let plain = tar_of_one_file("etc/hello", b"hello\n");
    let dest = push("plain", &plain, None);
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["pull", "-q", &dest]);
    use sha2::Digest;
    let diff_hex = hex::encode(sha2::Sha256::digest(&plain));
    assert_eq!(snapshots(root.path()), vec![diff_hex.clone()]);
    assert_eq!(
        fs::read(root.path().join("snapshots").join(&diff_hex).join("etc/hello")).unwrap(),
        b"hello\n"
    );

    // An entry that climbs out of the layer.
    let marker = format!("rbuild-escape-{}", std::process::id());
    let climbing = tar_of_one_file(&format!("../../../../../../tmp/{marker}"), b"out\n");
    let dest = push("climbing", &climbing, None);
    let root = tempfile::tempdir().unwrap();
    let out = crate::util::rbuild_in(root.path(), &["pull", &dest]);
    fails_with(&out, "refusing layer entry");
    assert!(!Path::new("/tmp").join(&marker).exists(), "nothing written outside");
    assert!(snapshots(root.path()).is_empty(), "no snapshot of a refused layer");
    assert_eq!(ok(root.path(), &["images", "-q"]), "", "no image");

    // Content other than the config announces.
    let bogus = format!("sha256:{}", "ab".repeat(32));
    let dest = push("lying", &plain, Some(&bogus));
    let root = tempfile::tempdir().unwrap();
    let out = crate::util::rbuild_in(root.path(), &["pull", &dest]);
    fails_with(&out, "does not match its digest");
    assert!(snapshots(root.path()).is_empty(), "no snapshot of a layer that is not what it says");
    assert_eq!(ok(root.path(), &["images", "-q"]), "", "no image");
}
