//! `tandem-emulator serve --concurrency N` as Lambda scales (issue 18 §4): 8 concurrent
//! invocations of a function that sleeps 1 s with `--concurrency 4` start exactly 4
//! environments (each a cold start with its own processes), never run more than 4 at
//! once, all succeed, and the `tandem` extension in each environment delivers that
//! environment's records, each exactly once, to an HTTP receiver on 127.0.0.1 (a file
//! sink cannot be read back: every environment has its own private /tmp). An idle
//! environment is shut down after `--idle-timeout`, and the queue's bound answers 429.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_emulator::{Error, InvokeRequest, Pool, PoolConfig, Rejection};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

/// Every request an HTTP sink made: its `Idempotency-Key` and its NDJSON body.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String)>>>);

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let rx = Receiver::default();
        let state = rx.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let key = req
                                .headers()
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            if let Ok(mut r) = state.0.lock() {
                                r.push((key, String::from_utf8_lossy(&body).into_owned()));
                            }
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (rx, addr)
    }

    /// `(the tandem process that sent it, record)` for every record received.
    fn records(&self) -> Vec<(String, Value)> {
        let requests = self.0.lock().map(|r| r.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for (key, body) in requests {
            // `<origin>-<first record>-<count>`: the origin names the sending process.
            let origin = key.rsplitn(3, '-').nth(2).unwrap_or_else(|| panic!("an Idempotency-Key: {key:?}")).to_owned();
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                out.push((origin.clone(), json(line.as_bytes())));
            }
        }
        out
    }
}

/// Reads `stream` line by line into `sink` until it closes.
fn collect_lines(stream: impl AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut s) = sink.lock() {
                s.push(line);
            }
        }
    });
}

struct Serve {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    async fn start(args: &[String]) -> Serve {
        // A free port for the Invoke API, released just before the server binds it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("pick a free port");
        let mut child = tokio::process::Command::new(bin("tandem-emulator"))
            .arg("serve")
            .args(["--listen", &addr.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start tandem-emulator serve");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        collect_lines(child.stdout.take().expect("piped stdout"), Arc::clone(&stdout));
        collect_lines(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr));
        let serve = Serve { child, addr, stdout, stderr };
        poll(DEADLINE, "serve is ready", || {
            serve.stderr().iter().any(|l| l.contains("invoke with: curl")).then_some(())
        })
        .await;
        serve
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn started(&self) -> Vec<String> {
        self.stderr().into_iter().filter(|l| l.contains(" started (cold start): ")).collect()
    }

    async fn invoke(&self, event: &str) -> Answer {
        request(self.addr, "POST", "/2015-03-31/functions/function/invocations", &[], event.to_owned()).await
    }

    /// SIGTERM, as Ctrl-C: every environment gets SHUTDOWN and the server exits 0.
    async fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let pid = self.child.id().expect("serve is running") as i32;
        // SAFETY: signalling a child process this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = within(DEADLINE, "serve exits after SIGTERM", self.child.wait()).await.expect("wait for serve");
        assert!(status.success(), "serve exited with {status:?}; stderr: {:#?}", self.stderr());
        // The readers see the end of both pipes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (self.stdout(), self.stderr())
    }
}

/// The most intervals `[start, end)` that overlap at one instant.
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = intervals.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    // At equal times an end comes before a start: back-to-back is not overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_invocations_with_concurrency_4_start_4_environments_and_lose_no_record() {
    let (receiver, sink) = Receiver::start().await;
    let serve = Serve::start(&[
        "--runtime".into(),
        bin("echo-fn").to_string_lossy().into_owned(),
        "--extension".into(),
        bin("tandem").to_string_lossy().into_owned(),
        "--concurrency".into(),
        "4".into(),
        "--timeout".into(),
        "30".into(),
        "--env".into(),
        "TANDEM_SINKS=http".into(),
        "--env".into(),
        format!("TANDEM_HTTP_URL=http://{sink}/ingest"),
    ])
    .await;
    assert_eq!(serve.started().len(), 1, "one environment is ready before the first request");

    let calls: Vec<_> = (0..8)
        .map(|i| {
            let event = format!(r#"{{"sleep_ms":1000,"log":["marker-{i}-a","marker-{i}-b"]}}"#);
            let addr = serve.addr;
            tokio::spawn(async move {
                request(addr, "POST", "/2015-03-31/functions/function/invocations", &[], event).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(within(Duration::from_secs(120), "an invocation", call).await.expect("the call ran"));
    }

    // All succeeded, on exactly 4 environments (each has its own Runtime API).
    let mut env_of_request = BTreeMap::new();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.header("X-Amz-Function-Error"), None, "{}", a.text());
        let body = a.json();
        assert_eq!(body["echo"]["log"][0], format!("marker-{i}-a"), "{body}");
        let api = body["env"]["AWS_LAMBDA_RUNTIME_API"].as_str().expect("the runtime's API").to_owned();
        env_of_request.insert(body["request_id"].as_str().expect("a request id").to_owned(), api);
    }
    assert_eq!(env_of_request.len(), 8, "8 distinct invocations");
    let envs: BTreeSet<&String> = env_of_request.values().collect();
    assert_eq!(envs.len(), 4, "8 invocations ran on exactly 4 environments: {env_of_request:?}");
    assert_eq!(serve.started().len(), 4, "exactly 4 environments started: {:#?}", serve.started());

    let (stdout, stderr) = serve.stop().await;
    // Each environment's console lines carry its id; 4 cold starts in the REPORT lines.
    let reports: Vec<&String> = stdout.iter().filter(|l| l.contains("] REPORT RequestId: ")).collect();
    assert_eq!(reports.len(), 8, "{stdout:#?}");
    let ids: BTreeSet<&str> =
        reports.iter().filter_map(|l| l.strip_prefix('[').and_then(|l| l.split_once("] ")).map(|(id, _)| id)).collect();
    assert_eq!(ids, BTreeSet::from(["env-1", "env-2", "env-3", "env-4"]), "{reports:#?}");
    assert_eq!(reports.iter().filter(|l| l.contains("\tInit Duration: ")).count(), 4, "{reports:#?}");
    assert!(!stderr.iter().any(|l| l.contains("killed")), "every process exited on SHUTDOWN: {stderr:#?}");

    // tandem in each environment delivered that environment's records, each once.
    let records = receiver.records();
    let mut origins_of_env: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for i in 0..8 {
        for marker in [format!("marker-{i}-a"), format!("marker-{i}-b")] {
            let got: Vec<&(String, Value)> =
                records.iter().filter(|(_, r)| r["type"] == "log" && r["message"] == marker.as_str()).collect();
            assert_eq!(got.len(), 1, "{marker} delivered once (of {} records)", records.len());
            let request_id = got[0].1["requestId"].as_str().expect("the record's request id");
            let env = env_of_request.get(request_id).unwrap_or_else(|| panic!("{request_id} was invoked"));
            origins_of_env.entry(env).or_default().insert(&got[0].0);
        }
    }
    let invocations: Vec<&(String, Value)> = records.iter().filter(|(_, r)| r["type"] == "invocation").collect();
    assert_eq!(invocations.len(), 8, "one invocation record per invocation");
    let mut spans = Vec::new();
    for (origin, r) in &invocations {
        let request_id = r["requestId"].as_str().expect("the record's request id");
        let env = env_of_request.get(request_id).unwrap_or_else(|| panic!("{request_id} was invoked"));
        origins_of_env.entry(env).or_default().insert(origin);
        // startMs is whole milliseconds and the next invocation of an environment may
        // start within the same one: 2 ms off the end keep back-to-back apart.
        let start = r["startMs"].as_f64().expect("startMs");
        spans.push((start, start + r["durationMs"].as_f64().expect("durationMs") - 2.0));
    }
    for (env, origins) in &origins_of_env {
        assert_eq!(origins.len(), 1, "the records of {env}'s invocations all came from its own tandem: {origins:?}");
    }
    let all_origins: BTreeSet<&&String> = origins_of_env.values().flatten().collect();
    assert_eq!(all_origins.len(), 4, "four tandem processes, one per environment");
    assert_eq!(max_overlap(&spans), 4, "never more than 4 invocations at once, and 4 did run at once: {spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_environment_is_shut_down_and_the_next_request_is_a_cold_start() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let serve = Serve::start(&[
        "--runtime".into(),
        bin("echo-fn").to_string_lossy().into_owned(),
        "--extension".into(),
        events.path().to_string_lossy().into_owned(),
        "--idle-timeout".into(),
        "0.5".into(),
    ])
    .await;
    poll(DEADLINE, "env-1 shut down once idle", || {
        serve.stderr().iter().any(|l| l == "tandem-emulator: env-1 idle: shutting it down (spindown)").then_some(())
    })
    .await;
    let shutdowns = poll(DEADLINE, "the extension got SHUTDOWN", || {
        let s: Vec<Value> = events.lines().into_iter().filter(|l| l["event"] == "SHUTDOWN").collect();
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(shutdowns.len(), 1);
    assert_eq!(shutdowns[0]["shutdown_reason"], "spindown", "{}", shutdowns[0]);

    let a = serve.invoke(r#"{"n":1}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(serve.started().len(), 2, "the request after the idle shutdown started env-2: {:#?}", serve.stderr());
    let (stdout, _) = serve.stop().await;
    let report = stdout.iter().find(|l| l.starts_with("[env-2] REPORT RequestId: ")).expect("env-2's report");
    assert!(report.contains("\tInit Duration: "), "a cold start: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_at_its_limit_queues_then_throttles_with_429() {
    // The library's pool: 2 environments, a queue of 1.
    let mut cfg = echo_config();
    cfg.queue_limit = 1;
    let pool = Arc::new(Pool::new(cfg, PoolConfig { concurrency: 2, idle_timeout: None }, None));
    let call = |pool: &Arc<Pool>, event: &'static str| {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.invoke_with(InvokeRequest { payload: Bytes::from_static(event.as_bytes()), ..Default::default() })
                .await
        })
    };
    let running: Vec<_> = (0..2).map(|_| call(&pool, r#"{"sleep_ms":2000}"#)).collect();
    poll(DEADLINE, "two environments busy", || (pool.live() == 2).then_some(())).await;
    let queued = call(&pool, r#"{"queued":true}"#);
    poll(DEADLINE, "one call queued", || (pool.waiting() == 1).then_some(())).await;
    let refused =
        within(DEADLINE, "a call beyond the queue", pool.invoke_with(InvokeRequest::default())).await.map(|_| ());
    assert!(matches!(refused, Err(Error::Rejected(Rejection::TooManyRequests))), "{refused:?}");
    for r in running {
        let out = within(DEADLINE, "a running call", r).await.expect("joined").expect("it ran");
        assert_eq!(out.result.function_error, None);
    }
    let out = within(DEADLINE, "the queued call", queued).await.expect("joined").expect("it ran after waiting");
    assert_eq!(json(&out.result.payload)["echo"], serde_json::json!({"queued": true}));
    assert_eq!(pool.started(), 2, "the queued call reused a warm environment");
    within(DEADLINE, "pool shutdown", pool.shutdown()).await;
    assert_eq!(pool.live(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_does_not_leak_its_environment() {
    let pool = Arc::new(Pool::new(echo_config(), PoolConfig { concurrency: 1, idle_timeout: None }, None));
    let p = pool.clone();
    let abandoned = tokio::spawn(async move {
        p.invoke_with(InvokeRequest { payload: Bytes::from_static(br#"{"sleep_ms":500}"#), ..Default::default() }).await
    });
    poll(DEADLINE, "the invocation runs", || (pool.live() == 1).then_some(())).await;
    // The caller goes away (as a client that hangs up): the invocation still ends and
    // hands its environment back, so the next call reuses it instead of a second one.
    abandoned.abort();
    let next = InvokeRequest { payload: Bytes::from_static(b"{}"), ..Default::default() };
    let out = within(DEADLINE, "the next call", pool.invoke_with(next)).await.expect("it ran");
    assert_eq!(out.result.function_error, None);
    assert_eq!((pool.started(), pool.live()), (1, 1), "one environment, never a second");
    within(DEADLINE, "pool shutdown", pool.shutdown()).await;
}
