//! The download cache's HTTP proxy for apt: it listens on `127.0.0.1:PORT` inside a RUN
//! step's network namespace and fetches from the host's network, as slirp4netns does for
//! the command's own connections (and as it, never from this machine's loopback
//! addresses). It runs on threads of the step's supervisor. With `--network host` it
//! listens on a free port of the host's loopback.
//!
//! Requests are answered in the order they came (apt pipelines up to ten on a
//! connection) while up to [`IN_FLIGHT`] of them are fetched at once. Written here rather
//! than taken from a crate: what it must do is narrow (GET and HEAD of absolute `http://`
//! URLs from apt, relayed as they are, a few of them kept) and every byte of it is input
//! from the sandbox, so its limits are its own: a request's head is at most 64 KiB with
//! 100 fields, at most [`CONNECTIONS`] connections are served at once, and an idle one is
//! closed after a minute. Heads are parsed by `httparse`, the mirror is reached through
//! `reqwest`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use super::{Cache, Kind, Record};

/// The port the proxy listens on, inside the sandbox's network namespace (with the host's
/// network: a free port).
pub const PORT: u16 = 3142;

/// Where apt's configuration naming the proxy is, in the sandbox (its private `/dev`).
pub const APT_CONFIG: &str = "/dev/.rbuild-apt.conf";

/// Requests of one connection fetched at once.
pub const IN_FLIGHT: usize = 8;

/// Connections served at once.
pub const CONNECTIONS: usize = 32;

const HEAD_LIMIT: usize = 64 * 1024;
const IDLE: Duration = Duration::from_secs(60);

/// What the proxy did, for the step's report.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files served from the cache.
    pub served: AtomicU64,
    /// Their bytes.
    pub served_bytes: AtomicU64,
    /// Files fetched from a mirror.
    pub fetched: AtomicU64,
    /// Their bytes.
    pub fetched_bytes: AtomicU64,
    /// Files kept in the cache.
    pub kept: AtomicU64,
}

impl Stats {
    /// As JSON, for the run's directory.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "served": get(&self.served), "served_bytes": get(&self.served_bytes),
            "fetched": get(&self.fetched), "fetched_bytes": get(&self.fetched_bytes),
            "kept": get(&self.kept),
        })
    }
}

struct Shared {
    cache: Cache,
    stats: Arc<Stats>,
    client: OnceLock<Option<reqwest::blocking::Client>>,
    connections: AtomicUsize,
}

/// The proxy's first thread, made before the sandbox's PID namespace: a process whose
/// thread has entered a new PID namespace for its children cannot make threads, and a
/// process with threads cannot enter a user namespace, so it comes in between. It waits
/// (holding no lock: the init is forked meanwhile) for the init's process ID.
#[derive(Debug)]
pub struct Waiting {
    pid: mpsc::Sender<i32>,
    started: mpsc::Receiver<std::io::Result<Arc<Stats>>>,
    /// Where it listens (known at once when it listens here).
    port: u16,
    here: bool,
}

impl Waiting {
    /// Makes the thread; it serves `cache` once [`Waiting::start`] names the init, or at
    /// once when `here` (the command shares this process's network namespace: the proxy
    /// listens on a free port of its loopback).
    pub fn new(cache: Cache, here: bool) -> std::io::Result<Waiting> {
        let (pid_tx, pid_rx) = mpsc::channel::<i32>();
        let (started_tx, started) = mpsc::channel();
        let listening = if here { Some(TcpListener::bind(("127.0.0.1", 0))?) } else { None };
        let port = match &listening {
            Some(l) => l.local_addr()?.port(),
            None => PORT,
        };
        std::thread::Builder::new().name("download-proxy".into()).spawn(move || {
            // Signals are the supervisor's main thread's to pass on.
            let _ = nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&nix::sys::signal::SigSet::all()),
                None,
            );
            let listener = match listening {
                Some(l) => Ok(l),
                None => match pid_rx.recv() {
                    Ok(pid) => listen_in(pid),
                    Err(_) => return,
                },
            };
            match listener {
                Ok(listener) => {
                    let stats = Arc::new(Stats::default());
                    let _ = started_tx.send(Ok(stats.clone()));
                    accept(listener, cache, stats);
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            }
        })?;
        Ok(Waiting { pid: pid_tx, started, port, here })
    }

    /// Listens in the network namespace of process `pid` (unless it listens here
    /// already) and serves from now until the process ends.
    pub fn start(&self, pid: i32) -> std::io::Result<Arc<Stats>> {
        if !self.here {
            self.pid.send(pid).map_err(|_| std::io::Error::other("the proxy's thread ended"))?;
        }
        self.started
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("the proxy did not start"))?
    }

    /// What apt reads from [`APT_CONFIG`] once the proxy listens.
    pub fn apt_config(&self) -> String {
        format!("Acquire::http::Proxy \"http://127.0.0.1:{}/\";\n", self.port)
    }
}

/// A listening socket in the network namespace of `pid`, made by a thread that joins it
/// (and ends), so that the proxy's own connections leave from this process's namespace.
fn listen_in(pid: i32) -> std::io::Result<TcpListener> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::spawn(move || -> std::io::Result<TcpListener> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        TcpListener::bind(("127.0.0.1", PORT))
    })
    .join()
    .map_err(|_| std::io::Error::other("the proxy's listener thread failed"))?
}

fn accept(listener: TcpListener, cache: Cache, stats: Arc<Stats>) {
    let shared = Arc::new(Shared {
        cache,
        stats,
        client: OnceLock::new(),
        connections: AtomicUsize::new(0),
    });
    for conn in listener.incoming().flatten() {
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed at once
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            serve(conn, &shared);
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One request of apt's, as the proxy needs it.
#[derive(Debug, Clone)]
struct Request {
    head_only: bool,
    url: reqwest::Url,
    headers: Vec<(String, Vec<u8>)>,
    close: bool,
}

/// What answers a request.
enum Outcome {
    Hit(Record, std::fs::File),
    Upstream(reqwest::blocking::Response, Option<Kind>),
    Fail(u16, String),
}

fn serve(conn: TcpStream, shared: &Arc<Shared>) {
    let _ = conn.set_read_timeout(Some(IDLE));
    let _ = conn.set_write_timeout(Some(IDLE));
    let Ok(reader) = conn.try_clone() else { return };
    let (tx, rx) = mpsc::sync_channel::<(Option<Request>, mpsc::Receiver<Outcome>)>(IN_FLIGHT);
    let fetcher = shared.clone();
    std::thread::spawn(move || read_requests(reader, tx, &fetcher));
    let mut conn = conn;
    for (request, outcome) in rx {
        let outcome = outcome
            .recv()
            .unwrap_or_else(|_| Outcome::Fail(502, "the request was not answered".into()));
        let keep_open = respond(&mut conn, request.as_ref(), outcome, shared);
        if !keep_open || request.is_none_or(|r| r.close) {
            break;
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Reads the requests of a connection, starting each one's fetch as it comes.
fn read_requests(
    mut conn: TcpStream,
    tx: mpsc::SyncSender<(Option<Request>, mpsc::Receiver<Outcome>)>,
    shared: &Arc<Shared>,
) {
    let mut buf = Vec::new();
    loop {
        let request = match next_request(&mut conn, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err((code, why)) => {
                let (otx, orx) = mpsc::channel();
                let _ = otx.send(Outcome::Fail(code, why));
                let _ = tx.send((None, orx));
                return;
            }
        };
        let (otx, orx) = mpsc::channel();
        let close = request.close;
        if tx.send((Some(request.clone()), orx)).is_err() {
            return;
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            let _ = otx.send(fetch(&request, &shared));
        });
        if close {
            return;
        }
    }
}

/// The next request's head from `conn` (bytes past it stay in `buf`); `None` at the end
/// of the connection; an error's status and reason for a request refused.
fn next_request(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::result::Result<Option<Request>, (u16, String)> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut parsed = httparse::Request::new(&mut fields);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let request = check_request(&parsed)?;
                buf.drain(..len);
                return Ok(Some(request));
            }
            Ok(httparse::Status::Partial) if buf.len() < HEAD_LIMIT => {}
            Ok(httparse::Status::Partial) => return Err((431, "request head too large".into())),
            Err(e) => return Err((400, format!("malformed request: {e}"))),
        }
        let mut chunk = [0u8; 16 * 1024];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Headers that concern one hop only, never passed on.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn check_request(parsed: &httparse::Request) -> std::result::Result<Request, (u16, String)> {
    let head_only = match parsed.method {
        Some("GET") => false,
        Some("HEAD") => true,
        other => return Err((501, format!("method {} not served", other.unwrap_or("?")))),
    };
    let target = parsed.path.unwrap_or_default();
    let url = reqwest::Url::parse(target)
        .ok()
        .filter(|u| u.scheme() == "http" && u.host().is_some())
        .ok_or_else(|| (400, format!("not an absolute http URL: {target:?}")))?;
    let mut headers = Vec::new();
    let mut close = parsed.version == Some(0);
    for h in parsed.headers.iter() {
        let body = (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
            || h.name.eq_ignore_ascii_case("transfer-encoding");
        if body {
            return Err((501, "requests with a body are not served".into()));
        }
        if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.eq_ignore_ascii_case(b"close");
        }
        if !hop_by_hop(h.name) {
            headers.push((h.name.to_string(), h.value.to_vec()));
        }
    }
    Ok(Request { head_only, url, headers, close })
}

/// Whether the proxy may connect to `ip`: not this machine's loopback or unspecified
/// addresses (slirp4netns is started with `--disable-host-loopback` for the same reason).
fn outward(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    !(ip.is_loopback() || ip.is_unspecified())
}

/// Resolves names for the proxy's client, leaving out the addresses it may not reach.
#[derive(Debug)]
struct Outward;

impl reqwest::dns::Resolve for Outward {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::task::spawn_blocking(move || {
                (host.as_str(), 0).to_socket_addrs().map(|a| a.collect::<Vec<SocketAddr>>())
            })
            .await??;
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| outward(a.ip())).collect();
            if allowed.is_empty() {
                return Err("the name has no address outside this machine".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

fn client(shared: &Shared) -> Option<&reqwest::blocking::Client> {
    shared
        .client
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(Outward))
                .connect_timeout(Duration::from_secs(30))
                .timeout(None)
                .build()
                .ok()
        })
        .as_ref()
}

fn fetch(request: &Request, shared: &Shared) -> Outcome {
    let host = request.url.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let local_name = host.eq_ignore_ascii_case("localhost");
    if literal.is_some_and(|ip| !outward(ip)) || local_name {
        return Outcome::Fail(403, "this machine's own addresses are not reachable".into());
    }
    let kind = super::kind(&request.url);
    let conditional = request.headers.iter().any(|(n, _)| {
        let n = n.to_ascii_lowercase();
        n == "range" || n.starts_with("if-")
    });
    let cacheable = kind.clone().filter(|_| !request.head_only && !conditional);
    if cacheable.is_some() {
        if let Some((record, file)) = shared.cache.lookup(request.url.as_str()) {
            return Outcome::Hit(record, file);
        }
    }
    let Some(client) = client(shared) else {
        return Outcome::Fail(502, "no HTTP client".into());
    };
    let method = if request.head_only { reqwest::Method::HEAD } else { reqwest::Method::GET };
    let mut builder = client.request(method, request.url.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    match builder.send() {
        Ok(response) => Outcome::Upstream(response, cacheable),
        Err(e) => Outcome::Fail(502, format!("fetching {}: {e}", request.url)),
    }
}

/// Writes the answer to a request; returns whether the connection may serve more.
fn respond(
    conn: &mut TcpStream,
    request: Option<&Request>,
    outcome: Outcome,
    shared: &Shared,
) -> bool {
    let head_only = request.is_some_and(|r| r.head_only);
    match outcome {
        Outcome::Fail(code, why) => {
            let body = format!("rbuild's download cache: {why}\n");
            let head = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                reason(code),
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = if head_only { Ok(()) } else { conn.write_all(body.as_bytes()) };
            false
        }
        Outcome::Hit(record, mut file) => {
            let mut head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", record.size);
            for (name, value) in
                [("Last-Modified", &record.last_modified), ("Content-Type", &record.content_type)]
            {
                if let Some(v) = value.as_deref().filter(|v| !v.contains(['\r', '\n'])) {
                    head.push_str(&format!("{name}: {v}\r\n"));
                }
            }
            head.push_str("\r\n");
            let ok = conn.write_all(head.as_bytes()).is_ok()
                && std::io::copy(&mut (&mut file).take(record.size), conn)
                    .is_ok_and(|n| n == record.size);
            if ok {
                shared.stats.served.fetch_add(1, Ordering::Relaxed);
                shared.stats.served_bytes.fetch_add(record.size, Ordering::Relaxed);
            }
            ok
        }
        Outcome::Upstream(response, kind) => relay(conn, request, response, kind, shared),
    }
}

fn reason(code: u16) -> &'static str {
    reqwest::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// Passes a mirror's answer on, keeping the body when it may be kept.
fn relay(
    conn: &mut TcpStream,
    request: Option<&Request>,
    mut response: reqwest::blocking::Response,
    kind: Option<Kind>,
    shared: &Shared,
) -> bool {
    let status = response.status();
    let head_only = request.is_some_and(|r| r.head_only);
    let bodiless =
        head_only || status.is_informational() || status.as_u16() == 204 || status.as_u16() == 304;
    let length = response.content_length().filter(|_| !bodiless);
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), reason(status.as_u16()));
    for (name, value) in response.headers() {
        let passed = !hop_by_hop(name.as_str()) || (head_only && name == "content-length");
        if passed {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(&String::from_utf8_lossy(value.as_bytes()));
            head.push_str("\r\n");
        }
    }
    match (bodiless, length) {
        (true, _) => {}
        (false, Some(n)) => head.push_str(&format!("Content-Length: {n}\r\n")),
        (false, None) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return false;
    }
    if bodiless {
        return true;
    }
    let mut keeper = kind.filter(|_| status == reqwest::StatusCode::OK).and_then(|kind| {
        let header =
            |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let url = request.map(|r| r.url.as_str()).unwrap_or_default();
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        shared.cache.keeper(url, kind, last_modified, header(reqwest::header::CONTENT_TYPE))
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return false, // cut short: the client sees the connection end
        };
        let written = if length.is_some() {
            conn.write_all(&buf[..n])
        } else {
            conn.write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| conn.write_all(&buf[..n]))
                .and_then(|()| conn.write_all(b"\r\n"))
        };
        if written.is_err() {
            return false;
        }
        if let Some(k) = keeper.as_mut() {
            if k.write(&buf[..n]).is_err() {
                keeper = None;
            }
        }
        sent += n as u64;
    }
    if length.is_none() && conn.write_all(b"0\r\n\r\n").is_err() {
        return false;
    }
    shared.stats.fetched.fetch_add(1, Ordering::Relaxed);
    shared.stats.fetched_bytes.fetch_add(sent, Ordering::Relaxed);
    if let Some(k) = keeper {
        if k.finish(length).unwrap_or(false) {
            shared.stats.kept.fetch_add(1, Ordering::Relaxed);
        }
    }
    length.is_none_or(|n| n == sent)
}

/// Writes the proxy's figures into a run's directory, as `downloads.json`.
pub fn write_stats(run_dir: &Path, stats: &Stats) {
    let _ = std::fs::write(run_dir.join(STATS), stats.to_json().to_string());
}

/// The file of [`write_stats`].
pub const STATS: &str = "downloads.json";
