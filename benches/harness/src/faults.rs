//! faults: HTTP receivers on 127.0.0.1 that misbehave on a seeded schedule, for the
//! soak. Owns the fault schedule and a minimal HTTP/1.1 server (hand-written, because
//! a truncated answer or a connection dropped mid-request cannot be made with hyper):
//! 5xx bursts, hangs, refused connections (the listener closed for a while), slow
//! answers and truncated answers. What a request carried counts as received when the
//! receiver committed it: answered 200 (slowly or not) or truncated after the commit,
//! as a backend that crashed while answering would have; a 5xx, a hang or a refusal
//! commits nothing. The `extract` function given at start turns a committed body into
//! the ids it holds.

use flate2::read::GzDecoder;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// splitmix64: small, seedable, good enough to schedule faults reproducibly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// What a receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// 503 for this request and the next few.
    ServerErrors,
    /// No answer for a long time, then the connection closes.
    Hang,
    /// The connection is dropped and the port refuses connections for a while.
    Refuse,
    /// 200 after a delay.
    Slow,
    /// The answer's head announces more body than is sent, then the connection closes.
    Truncate,
}

/// How often each fault happens, in percent of requests (the rest are answered 200).
const SCHEDULE: [(Fault, u64); 5] =
    [(Fault::ServerErrors, 8), (Fault::Hang, 2), (Fault::Refuse, 3), (Fault::Slow, 8), (Fault::Truncate, 4)];
const HANG: Duration = Duration::from_secs(20);
/// The largest request head read (larger ones are answered 431 and dropped).
const MAX_HEAD: usize = 64 * 1024;

/// Faults injected so far, by kind.
#[derive(Debug, Default, Clone)]
pub struct FaultCounts {
    pub requests: u64,
    pub ok: u64,
    pub server_errors: u64,
    pub hangs: u64,
    pub refusals: u64,
    pub slow: u64,
    pub truncated: u64,
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests: {} ok, {} 5xx, {} hung, {} refused, {} slow, {} truncated",
            self.requests, self.ok, self.server_errors, self.hangs, self.refusals, self.slow, self.truncated
        )
    }
}

/// Turns a committed request (path, decoded body) into the ids it carries.
pub type Extract = fn(&str, &[u8]) -> Vec<String>;

struct State {
    rng: Rng,
    /// 5xx answers still due in the current burst.
    burst_left: u64,
    counts: FaultCounts,
    /// Every id committed, in arrival order, duplicates included.
    ids: Vec<String>,
    /// Ids that came in requests a fault refused (not committed), with the fault.
    refused: Vec<(String, &'static str)>,
}

/// A faulty receiver. Cloning shares it.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1 with the fault schedule drawn from `seed`.
    pub async fn start(seed: u64, extract: Extract) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            rng: Rng::new(seed),
            burst_left: 0,
            counts: FaultCounts::default(),
            ids: Vec::new(),
            refused: Vec::new(),
        }));
        let refuse = Arc::new(Notify::new());
        tokio::spawn(accept_loop(listener, addr, state.clone(), refuse, extract));
        Ok(Receiver { addr, state })
    }

    pub fn counts(&self) -> FaultCounts {
        lock(&self.state).counts.clone()
    }

    /// Every committed id, duplicates included.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.state).ids.clone()
    }

    /// Ids that arrived only in requests a fault refused: what the sender tried.
    pub fn refused(&self) -> Vec<(String, &'static str)> {
        lock(&self.state).refused.clone()
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    refuse: Arc<Notify>,
    extract: Extract,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (state, refuse) = (state.clone(), refuse.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, state, refuse, extract).await;
                });
            }
            () = refuse.notified() => {
                // Closing the listener makes the kernel refuse connections to the port.
                drop(listener);
                let pause = { lock(&state).rng.range(300, 2000) };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                listener = loop {
                    match TcpListener::bind(addr).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
            }
        }
    }
}

/// One request as read off the connection.
struct Request {
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Serves the requests of one connection until it closes or a fault ends it.
async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    refuse: Arc<Notify>,
    extract: Extract,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await? else { return Ok(()) };
        let fault = {
            let mut s = lock(&state);
            s.counts.requests += 1;
            let fault = if s.burst_left > 0 {
                s.burst_left -= 1;
                Fault::ServerErrors
            } else {
                let roll = s.rng.range(0, 99);
                let mut acc = 0;
                let mut chosen = Fault::None;
                for (fault, percent) in SCHEDULE {
                    acc += percent;
                    if roll < acc {
                        chosen = fault;
                        break;
                    }
                }
                if chosen == Fault::ServerErrors {
                    s.burst_left = s.rng.range(0, 4);
                }
                chosen
            };
            match fault {
                Fault::None => s.counts.ok += 1,
                Fault::ServerErrors => s.counts.server_errors += 1,
                Fault::Hang => s.counts.hangs += 1,
                Fault::Refuse => s.counts.refusals += 1,
                Fault::Slow => s.counts.slow += 1,
                Fault::Truncate => s.counts.truncated += 1,
            }
            fault
        };
        let commit = |state: &Mutex<State>| {
            let ids = extract(&request.path, &request.body);
            lock(state).ids.extend(ids);
        };
        let refuse_ids = |state: &Mutex<State>, why: &'static str| {
            let ids = extract(&request.path, &request.body);
            lock(state).refused.extend(ids.into_iter().map(|id| (id, why)));
        };
        match fault {
            Fault::None | Fault::Slow => {
                if fault == Fault::Slow {
                    let delay = { lock(&state).rng.range(200, 1500) };
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                commit(&state);
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await?;
            }
            Fault::ServerErrors => {
                refuse_ids(&state, "5xx");
                let body = br#"{"message":"injected fault"}"#;
                let head = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body).await?;
            }
            Fault::Hang => {
                refuse_ids(&state, "hang");
                tokio::time::sleep(HANG).await;
                return Ok(());
            }
            Fault::Refuse => {
                refuse_ids(&state, "refused");
                refuse.notify_one();
                return Ok(());
            }
            Fault::Truncate => {
                commit(&state);
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n{\"partial").await?;
                return Ok(());
            }
        }
        if request.close {
            return Ok(());
        }
    }
}

/// Reads one request (head, then a Content-Length or chunked body, gunzipped when it
/// says so). `None` when the peer closed between requests.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n").await?;
            return Ok(None);
        }
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/").to_owned();
    let (mut length, mut chunked, mut gzip, mut close) = (0usize, false, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" => gzip = value.eq_ignore_ascii_case("gzip"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(stream, buf).await? {
                    return Ok(None);
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                if !fill(stream, buf).await? {
                    return Ok(None);
                }
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        while buf.len() < length {
            if !fill(stream, buf).await? {
                return Ok(None);
            }
        }
        body.extend(buf.drain(..length));
    }
    if gzip {
        let mut out = Vec::new();
        if GzDecoder::new(&body[..]).read_to_end(&mut out).is_ok() {
            body = out;
        }
    }
    Ok(Some(Request { path, body, close }))
}

/// Reads more bytes; `false` at the end of the stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(_path: &str, body: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(body).lines().map(str::to_owned).collect()
    }

    async fn post(addr: SocketAddr, body: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        let req =
            format!("POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn the_schedule_is_the_seeds() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..20).map(|_| a.range(0, 99)).collect();
        let second: Vec<u64> = (0..20).map(|_| b.range(0, 99)).collect();
        assert_eq!(first, second);
        assert!(first.iter().all(|x| *x < 100));
        assert_ne!(first, (0..20).map(|_| Rng::new(8).range(0, 99)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn faults_commit_only_what_a_backend_would_have() {
        let r = Receiver::start(42, lines).await.expect("a receiver on 127.0.0.1");
        let mut committed = 0;
        for i in 0..60 {
            let Ok(answer) = post(r.addr, &format!("id{i}")).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if answer.starts_with("HTTP/1.1 200 OK") {
                committed += 1;
            } else {
                assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 503"), "{answer}");
            }
            if i == 30 {
                // Hangs hold their connection: go on without waiting for them.
                break;
            }
        }
        let c = r.counts();
        assert!(c.server_errors + c.refusals + c.slow + c.truncated + c.hangs > 0, "no fault in 30 requests: {c}");
        assert_eq!(r.ids().len() as u64, c.ok + c.slow + c.truncated);
        assert!(committed <= r.ids().len());
    }
}
