//! A small fault-injecting HTTP proxy for the registry tests: one request per connection
//! (it asks both sides to close), and, for requests that match a rule, a made-up status
//! (with `Retry-After`), a response cut after some bytes, flipped bytes, or a delay. It
//! counts the bytes clients send through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: 1` for 429) without asking upstream.
    Status(u16),
    /// Pass the response head and this many body bytes on, then close.
    Cut(usize),
    /// Flip one byte of the body.
    Corrupt,
    /// Wait this long before answering.
    Delay(Duration),
    /// Pass only this many request-body bytes upstream, then cut both connections.
    CutRequest(u64),
}

/// A rule: requests whose first line contains `needle` get `fault`, `times` times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub needle: String,
    pub fault: Fault,
    pub times: usize,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    pub addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Bytes of request bodies and heads clients sent through the proxy.
    pub sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        let n = stream.read(&mut byte).ok()?;
        // A TLS handshake (a client probing for HTTPS) is not HTTP: drop it at once.
        if n == 0 || buf.len() > 64 << 10 || (buf.is_empty() && byte[0] == 0x16) {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
}

/// Rewrites a head so that the connection closes after this exchange.
fn with_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n") {
        if line.is_empty() || line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st, up) =
            (Arc::clone(&rules), Arc::clone(&sent), Arc::clone(&stop), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let (r, s, up) = (Arc::clone(&r), Arc::clone(&s), up.clone());
                std::thread::spawn(move || handle(client, &up, &r, &s));
            }
        });
        Proxy { addr, rules, sent, stop }
    }

    /// Adds a rule.
    pub fn add(&self, needle: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule { needle: needle.to_string(), fault, times });
    }

    /// Rules that have not fired as often as they were told to.
    pub fn pending(&self) -> Vec<Rule> {
        self.rules.lock().unwrap().iter().filter(|r| r.times > 0).cloned().collect()
    }
}

fn handle(mut client: TcpStream, upstream: &str, rules: &Mutex<Vec<Rule>>, sent: &Arc<AtomicU64>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, early_body)) = read_head(&mut client) else { return };
    let first_line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules.iter_mut().find(|r| r.times > 0 && first_line.contains(&r.needle)).map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    if let Some(Fault::Status(code)) = fault {
        let extra = if code == 429 { "Retry-After: 1\r\n" } else { "" };
        let reply = format!(
            "HTTP/1.1 {code} Injected\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = client.write_all(reply.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if let Some(Fault::Delay(d)) = fault {
        std::thread::sleep(d);
    }
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let head = with_close(&head);
    sent.fetch_add((head.len() + early_body.len()) as u64, Ordering::SeqCst);
    if server.write_all(&head).is_err() || server.write_all(&early_body).is_err() {
        return;
    }
    // Request body: relay whatever else the client sends.
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let counter = Arc::clone(sent);
    let mut request_budget = match fault {
        Some(Fault::CutRequest(n)) => Some(n.saturating_sub(early_body.len() as u64)),
        _ => None,
    };
    let relay = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match c2.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let n = match request_budget.as_mut() {
                        Some(b) => {
                            let k = (n as u64).min(*b);
                            *b -= k;
                            k as usize
                        }
                        None => n,
                    };
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                    if s2.write_all(&buf[..n]).is_err() || request_budget == Some(0) {
                        // Cut: both sides see the connection drop.
                        let _ = s2.shutdown(Shutdown::Both);
                        let _ = c2.shutdown(Shutdown::Both);
                        return;
                    }
                }
            }
        }
        let _ = s2.shutdown(Shutdown::Write);
    });
    if let Some((rhead, mut body)) = read_head(&mut server) {
        let rhead = with_close(&rhead);
        let _ = client.write_all(&rhead);
        let mut budget = match fault {
            Some(Fault::Cut(n)) => Some(n),
            _ => None,
        };
        let mut corrupt = matches!(fault, Some(Fault::Corrupt));
        let mut buf = [0u8; 65536];
        loop {
            if body.is_empty() {
                match server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
            let mut chunk = std::mem::take(&mut body);
            if corrupt && !chunk.is_empty() {
                chunk[0] ^= 0xff;
                corrupt = false;
            }
            if let Some(b) = budget.as_mut() {
                let n = (*b).min(chunk.len());
                let _ = client.write_all(&chunk[..n]);
                *b -= n;
                if *b == 0 {
                    break;
                }
                continue;
            }
            if client.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = relay.join();
}
