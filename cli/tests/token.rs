//! A token issuer for the registry tests: the registry runs with `auth: token`, and this
//! server hands out JWTs signed with a key whose certificate is the registry's root
//! bundle, following the registry token specification (ES256, `x5c` header, `access`
//! claims). It grants `alice` everything she asks for and anonymous callers nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "token-pass";
pub const SERVICE: &str = "rbuild-test-registry";
pub const ISSUER: &str = "rbuild-test-issuer";

/// A running token server.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate (PEM) the registry trusts.
    pub cert: PathBuf,
    /// Tokens handed out.
    pub issued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn query_param(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| {
            v.replace("%3A", ":").replace("%2F", "/").replace("%2C", ",").replace('+', " ")
        })
        .collect()
}

impl TokenServer {
    /// Makes a key and certificate in `dir` and starts serving tokens.
    pub fn start(dir: &Path) -> TokenServer {
        let key = dir.join("issuer.key");
        let pk8 = dir.join("issuer.pk8");
        let cert = dir.join("issuer.crt");
        let der = dir.join("issuer.der");
        run(Command::new("openssl")
            .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"])
            .arg(&key));
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&pk8));
        run(Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "2", "-subj", "/CN=rbuild-test-issuer", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der));
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &std::fs::read(&pk8).unwrap(),
            &rng,
        )
        .unwrap();
        let x5c = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{addr}/token");
        let issued = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, count) = (Arc::clone(&stop), Arc::clone(&issued));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut buf = vec![0u8; 16384];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = answer(&request, &pair, &rng, &x5c, &count);
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        TokenServer { realm, cert, issued, stop, addr }
    }
}

fn answer(
    request: &str,
    pair: &EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    x5c: &str,
    count: &AtomicU64,
) -> String {
    let first = request.lines().next().unwrap_or("");
    let target = first.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let auth = request
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization: basic "))
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l[21..].trim()).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string());
    let user = match auth.as_deref() {
        Some(creds) if creds == format!("{USER}:{PASSWORD}") => Some(USER),
        Some(_) => {
            return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        }
        None => None,
    };
    let access: Vec<serde_json::Value> = query_param(query, "scope")
        .iter()
        .filter(|_| user.is_some())
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user.unwrap_or(""), "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("t{}", count.fetch_add(1, Ordering::SeqCst)), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(&claims).unwrap())
    );
    let signature = pair.sign(rng, signing_input.as_bytes()).unwrap();
    let token = format!("{signing_input}.{}", b64(signature.as_ref()));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}
