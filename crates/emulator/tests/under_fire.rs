//! The emulator under bad input (issue 11): a truncated function response fails the
//! invocation, a response body to an unknown request id is refused before it is read,
//! slow clients are dropped at the header timeout and connections beyond a limit are
//! refused, on the Runtime/Extensions API and on the Invoke API; a subscriber's answer
//! is read only as far as an acknowledgement needs.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; true when it did within `limit` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_for_an_unknown_request_id_is_refused_before_it_is_read() {
    let env = start(echo_config()).await;
    let mut s = TcpStream::connect(env.runtime_api()).await.expect("connect to the Runtime API");
    // 19 MiB announced, none of it sent: the answer must not wait for the body.
    let head = "POST /2018-06-01/runtime/invocation/no-such-request/response HTTP/1.1\r\nHost: runtime\r\nContent-Length: 19922944\r\n\r\n";
    s.write_all(head.as_bytes()).await.expect("send the headers");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    within(DEADLINE, "the answer to a response for an unknown request id", async {
        while !String::from_utf8_lossy(&answer).contains("InvalidRequestID") {
            let n = s.read(&mut buf).await.expect("read the answer");
            assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    invoke_ok(&env, "{}").await;
    shutdown(&env).await;
}

/// A runtime whose first response announces 100 bytes and sends 11, whose second is a
/// chunked body cut off before its last chunk, and whose third is whole.
const TRUNCATING_RUNTIME: &str = r#"
n = 0
while True:
    headers, body = next_event()
    rid = headers["lambda-runtime-aws-request-id"]
    path = ("/2018-06-01/runtime/invocation/%s/response" % rid).encode()
    n += 1
    if n == 1:
        head = b"POST " + path + b" HTTP/1.1\r\nHost: runtime\r\nContent-Length: 100\r\n\r\n"
        cut = head + b'{"partial":'
    elif n == 2:
        head = b"POST " + path + b" HTTP/1.1\r\nHost: runtime\r\nTransfer-Encoding: chunked\r\n\r\n"
        cut = head + b"b\r\n{\"partial\":\r\n"
    else:
        status, _, _ = post(path.decode(), b'"whole"')
        continue
    s = connect()
    s.sendall(cut)
    s.shutdown(socket.SHUT_WR)
    s.recv(65536)
    s.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_response_fails_the_invocation() {
    let dir = TempDir::new();
    let env = start(config(python_runtime(&dir, "truncating.py", TRUNCATING_RUNTIME))).await;
    for framing in ["Content-Length", "chunked"] {
        let out = invoke(&env, "{}").await.result;
        let payload = String::from_utf8_lossy(&out.payload).into_owned();
        assert_eq!(out.error_type.as_deref(), Some("Runtime.TruncatedResponse"), "{framing}: {payload}");
        assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{framing}");
        assert!(!payload.contains("partial"), "{framing}: part of a response is never the answer: {payload}");
    }
    let whole = invoke_ok(&env, "{}").await;
    assert_eq!(whole.payload.as_ref(), b"\"whole\"");
    shutdown(&env).await;
}

/// The Invoke API in front of `env`, on a port of its own.
async fn front_door(env: Arc<tandem_emulator::Environment>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Invoke API");
    let addr = listener.local_addr().expect("local address");
    (addr, tokio::spawn(tandem_emulator::serve_invoke_api(listener, env)))
}

/// Sends one byte per second; true when the server closed the connection within `limit`.
async fn slowloris(addr: SocketAddr, limit: Duration) -> bool {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\n";
    let until = Instant::now() + limit;
    for byte in head.iter().cycle() {
        if Instant::now() >= until {
            return false;
        }
        if s.write_all(&[*byte]).await.is_err() || closed_within(&mut s, Duration::from_secs(1)).await {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_a_byte_a_second_is_dropped() {
    let env = Arc::new(start(echo_config()).await);
    let (door, server) = front_door(env.clone()).await;
    // Well past the header timeout, not forever.
    let limit = Duration::from_secs(25);
    let (runtime_api, invoke_api) = tokio::join!(slowloris(env.runtime_api(), limit), slowloris(door, limit));
    assert!(runtime_api, "the Runtime API kept a 1 byte/s client past {limit:?}");
    assert!(invoke_api, "the Invoke API kept a 1 byte/s client past {limit:?}");
    let answer = request(door, "POST", "/2015-03-31/functions/function/invocations", &[], "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    server.abort();
    shutdown(&env).await;
}

/// Opens `n` idle connections to `addr`; returns how many the server closed within a
/// few seconds (refused), and the connections.
async fn idle_connections(addr: SocketAddr, n: usize) -> (usize, Vec<TcpStream>) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(TcpStream::connect(addr).await.expect("the kernel accepts the connection"));
    }
    // All checked at once (well within the header timeout).
    let checks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let closed = closed_within(&mut s, Duration::from_secs(3)).await;
                (closed, s)
            })
        })
        .collect();
    let mut refused = 0;
    let mut kept = Vec::new();
    for c in checks {
        let (closed, s) = c.await.expect("the check did not panic");
        if closed {
            refused += 1;
        } else {
            kept.push(s);
        }
    }
    (refused, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_and_idle_ones_dropped() {
    let env = Arc::new(start(echo_config()).await);
    let (door, server) = front_door(env.clone()).await;
    // Limits: 256 for the Runtime API (its runtime holds one or two), 512 for the Invoke API.
    let (runtime_refused, runtime_kept) = idle_connections(env.runtime_api(), 256 + 20).await;
    assert!((20..=24).contains(&runtime_refused), "Runtime API: {runtime_refused} of 276 refused");
    let (door_refused, door_kept) = idle_connections(door, 512 + 20).await;
    assert_eq!(door_refused, 20, "Invoke API: {door_refused} of 532 refused");
    // The idle ones go at the header timeout; then the APIs serve again.
    for mut s in runtime_kept.into_iter().chain(door_kept) {
        assert!(closed_within(&mut s, DEADLINE).await, "an idle connection was kept past the header timeout");
    }
    let answer = request(door, "POST", "/2015-03-31/functions/function/invocations", &[], "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    invoke_ok(&env, "{}").await;
    server.abort();
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_answering_with_an_endless_body_loses_its_connection_not_its_telemetry() {
    let dir = TempDir::new();
    let endless = Ext::probe(
        &dir,
        "endless",
        &[("PROBE_ENDLESS_ANSWER", "1"), ("PROBE_TIMEOUT_MS", "25"), ("PROBE_SHUTDOWN_LINGER_MS", "300")],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![endless.path()];
    let env = start(cfg).await;
    for i in 0..3 {
        invoke_ok(&env, &format!(r#"{{"log":["endless line {i}"],"sleep_ms":60}}"#)).await;
    }
    // No answer is ever read to its end; an emulator reading it unbounded would stay
    // stuck on the first batch and never deliver the later invocations' lines.
    poll(Duration::from_secs(20), "the last invocation's line delivered", || {
        let lines = endless.probe_output().of_type("function");
        lines.iter().any(|e| e["record"].as_str().is_some_and(|r| r.contains("endless line 2"))).then_some(())
    })
    .await;
    shutdown(&env).await;
    let batches = endless.probe_output().batches().len();
    assert!(batches >= 2, "deliveries went on after an endless answer: {batches} batches");
}
