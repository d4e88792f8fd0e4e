//! The OTLP receiver, end to end: a Python function on awslambdaric instrumented only
//! through `AWS_LAMBDA_EXEC_WRAPPER` (`examples/functions/python/otel-instrument`, PyPI
//! `opentelemetry-distro`), no OpenTelemetry in its handler, exports to tandem's
//! receiver; tandem delivers to an OTLP receiver on 127.0.0.1 whose requests are
//! decoded by PyPI `opentelemetry-proto` (`tests/py/list_otlp.py`). Plus hostile and
//! malformed requests from a raw client. Needs `cargo build --workspace --bins` and the
//! venv of `cargo xtask setup`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tandem_emulator::{Config, Environment, InvokeRequest};

/// A port free on 127.0.0.1 now (tests run in parallel: never the default 4318).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address").port()
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// What the OTLP receiver accepted, listed by `opentelemetry-proto`.
fn listed(otlp: &Receiver, dir: &Path) -> Value {
    let reqs = dir.join("requests");
    std::fs::create_dir_all(&reqs).expect("create the request directory");
    for (i, r) in otlp.accepted().iter().enumerate() {
        assert_eq!(r.content_type, "application/x-protobuf");
        let signal = r.path.rsplit('/').next().unwrap_or_default();
        std::fs::write(reqs.join(format!("{i:03}-{signal}.pb")), &r.body).expect("write a request");
    }
    list_dir(&reqs)
}

/// The requests in `reqs` (NNN-SIGNAL.pb), listed by `opentelemetry-proto`.
fn list_dir(reqs: &Path) -> Value {
    let out = Command::new(python()).arg(script("list_otlp.py")).arg(reqs).output().expect("run list_otlp.py");
    assert!(out.status.success(), "list_otlp.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("list_otlp.py prints JSON")
}

fn items<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v[kind].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

async fn python_env(dir: &Path, env: &[(&str, String)]) -> Environment {
    python_env_timeout(dir, env, Duration::from_secs(30)).await
}

async fn python_env_timeout(dir: &Path, env: &[(&str, String)], timeout: Duration) -> Environment {
    let here = common::repo_root().join("examples/functions/python");
    let mut cfg = Config::new(vec![here.join("bootstrap").display().to_string()]);
    cfg.handler = "otel_fn.handle".into();
    cfg.extensions.push(tandem_bin());
    cfg.function_name = "instrumented".into();
    cfg.timeout = timeout;
    let base = [
        ("TANDEM_PYTHON", python().display().to_string()),
        ("AWS_LAMBDA_EXEC_WRAPPER", here.join("otel-instrument").display().to_string()),
        ("TANDEM_SPOOL_DIR", dir.join("spool").display().to_string()),
        ("TANDEM_LOG_LEVEL", "debug".to_owned()),
        ("TANDEM_FLUSH", "end".to_owned()),
    ];
    // A setting of the test's replaces the base one.
    let base = base.into_iter().filter(|(k, _)| !env.iter().any(|(e, _)| e == k));
    cfg.env.extend(base.map(|(k, v)| (k.to_owned(), v)));
    cfg.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let env = Environment::start(cfg).await.expect("the environment starts");
    let (status, error) = env.init_outcome().expect("init ended");
    assert_eq!(status, tandem_wire::Status::Success, "init failed: {error:?}; console: {:#?}", env.console_lines());
    env
}

const TRACE_HEX: &str = "5759e988bd862e3fe1be46a994272793";
const LAMBDA_PARENT: &str = "53995c3f42cd8ad8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumented_python_function_exports_over_http_protobuf_through_tandem_exactly_once_linked() {
    python_function_exports("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumented_python_function_exports_over_grpc_through_tandem_exactly_once_linked() {
    python_function_exports("grpc").await;
}

/// Three invocations of the instrumented function exporting over `protocol` to
/// tandem's receiver; tandem's otlp sink (http/protobuf, its own TANDEM_OTLP_*
/// settings) delivers to a receiver on 127.0.0.1.
async fn python_function_exports(protocol: &str) {
    let dir = tempdir(&format!("receiver-python-{}", protocol.replace('/', "-")));
    let otlp = Receiver::start().await;
    let (port, listener, port_key) = match protocol {
        "grpc" => (free_port(), "grpc", "TANDEM_OTLP_RECEIVER_GRPC_PORT"),
        _ => (free_port(), "http", "TANDEM_OTLP_RECEIVER_HTTP_PORT"),
    };
    let env = python_env(
        &dir,
        &[
            ("TANDEM_SINKS", "otlp".to_owned()),
            // The sink's own destination and protocol; the function's SDK reads OTEL_*
            // (tandem's receiver).
            ("TANDEM_OTLP_ENDPOINT", otlp.url("")),
            ("TANDEM_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("TANDEM_OTLP_RECEIVER", listener.to_owned()),
            (port_key, port.to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ],
    )
    .await;
    let mut logged = Vec::new();
    let mut request_ids = Vec::new();
    for i in 0..3 {
        // The caller's trace, also in the event's headers: the instrumentation's default
        // context extractor reads them, so the function's span is in the X-Ray trace.
        let event = json!({
            "logs": 2 + i,
            "tag": format!("inv{i}"),
            "linger_ms": 300,
            "headers": {"traceparent": format!("00-{TRACE_HEX}-{LAMBDA_PARENT}-01")},
        });
        let out = env
            .invoke_with(InvokeRequest {
                payload: event.to_string().into(),
                trace_id: Some(format!(
                    "Root=1-{}-{};Parent={LAMBDA_PARENT};Sampled=1",
                    &TRACE_HEX[..8],
                    &TRACE_HEX[8..]
                )),
                ..InvokeRequest::default()
            })
            .await
            .expect("the invocation runs");
        assert_eq!(out.result.status, tandem_wire::Status::Success, "{:?}; {:#?}", out.result, env.console_lines());
        let answer: Value = serde_json::from_slice(&out.result.payload).expect("a JSON answer");
        for j in 0..answer["logs"].as_u64().unwrap_or(0) {
            logged.push(format!("otel-fn inv{i} line {j}"));
        }
        request_ids.push(out.result.request_id.clone());
    }
    env.shutdown().await;
    let got = listed(&otlp, &dir);

    // Every log record the function wrote, exactly once, with its invocation's id.
    let theirs: Vec<&Value> = items(&got, "logs").into_iter().filter(|l| l["scope"] != "tandem").collect();
    let bodies: Vec<String> = theirs.iter().filter_map(|l| l["body"].as_str().map(str::to_owned)).collect();
    exactly_once("the function's log records", &bodies, &logged);
    assert_eq!(bodies.len(), logged.len(), "nothing else was logged: {bodies:#?}");
    for (i, id) in request_ids.iter().enumerate() {
        let of_inv = theirs.iter().filter(|l| l["body"].as_str().is_some_and(|b| b.contains(&format!("inv{i} "))));
        assert!(of_inv.clone().all(|l| l["attributes"]["faas.invocation_id"] == id.as_str()), "{theirs:#?}");
    }

    // One span per invocation from the function, each a child of tandem's invocation span.
    let spans = items(&got, "spans");
    let function_spans: Vec<&&Value> = spans.iter().filter(|s| s["scope"] != "tandem").collect();
    assert_eq!(function_spans.len(), 3, "{function_spans:#?}");
    for id in &request_ids {
        let tandem_root = spans
            .iter()
            .find(|s| {
                s["scope"] == "tandem"
                    && s["parentSpanId"] == LAMBDA_PARENT
                    && s["attributes"]["faas.invocation_id"] == id.as_str()
            })
            .unwrap_or_else(|| panic!("tandem's span of {id}: {spans:#?}"));
        let theirs: Vec<_> =
            function_spans.iter().filter(|s| s["attributes"]["faas.invocation_id"] == id.as_str()).collect();
        assert_eq!(theirs.len(), 1, "{id}: {function_spans:#?}");
        assert_eq!(theirs[0]["traceId"], TRACE_HEX);
        assert_eq!(theirs[0]["parentSpanId"], tandem_root["spanId"], "linked under tandem's invocation span");
        assert_eq!(theirs[0]["service"], "instrumented", "the function's resource is kept");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_receiver_acknowledged_before_a_timeout_arrives() {
    let dir = tempdir("receiver-timeout");
    let otlp = Receiver::start().await;
    let port = free_port();
    let env = python_env_timeout(
        &dir,
        &[
            ("TANDEM_SINKS", "otlp".to_owned()),
            ("TANDEM_OTLP_ENDPOINT", otlp.url("")),
            ("TANDEM_OTLP_RECEIVER", "http".to_owned()),
            ("TANDEM_OTLP_RECEIVER_HTTP_PORT", port.to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ],
        Duration::from_secs(2),
    )
    .await;
    // The function logs, the SDK exports (tandem acknowledges), then it overruns.
    let out = invoke(&env, json!({"logs": 3, "tag": "slow", "linger_ms": 5000})).await;
    assert_eq!(out.result.status, tandem_wire::Status::Timeout, "the function timed out");
    env.shutdown().await;
    let got = listed(&otlp, &dir);
    let bodies: Vec<String> = items(&got, "logs")
        .into_iter()
        .filter(|l| l["scope"] != "tandem")
        .filter_map(|l| l["body"].as_str().map(str::to_owned))
        .collect();
    let want: Vec<String> = (0..3).map(|j| format!("otel-fn slow line {j}")).collect();
    exactly_once("log records exported before the timeout", &bodies, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_receiver_acknowledged_before_a_crash_arrives() {
    let dir = tempdir("receiver-crash");
    let otlp = Receiver::start().await;
    let port = free_port();
    let env = python_env(
        &dir,
        &[
            ("TANDEM_SINKS", "otlp".to_owned()),
            ("TANDEM_OTLP_ENDPOINT", otlp.url("")),
            ("TANDEM_OTLP_RECEIVER", "http".to_owned()),
            ("TANDEM_OTLP_RECEIVER_HTTP_PORT", port.to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
            // Adaptive: nothing is delivered before `next`; the crash comes first.
            ("TANDEM_FLUSH", "adaptive".to_owned()),
        ],
    )
    .await;
    // The function logs, lets the SDK export (tandem acknowledges), then dies.
    let out = invoke(&env, json!({"logs": 4, "tag": "crash", "linger_ms": 400, "exit": 3})).await;
    assert_ne!(out.result.status, tandem_wire::Status::Success, "the function crashed");
    env.shutdown().await;
    let got = listed(&otlp, &dir);
    let bodies: Vec<String> = items(&got, "logs")
        .into_iter()
        .filter(|l| l["scope"] != "tandem")
        .filter_map(|l| l["body"].as_str().map(str::to_owned))
        .collect();
    let want: Vec<String> = (0..4).map(|j| format!("otel-fn crash line {j}")).collect();
    exactly_once("log records exported before the crash", &bodies, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// echo-fn with tandem: its otlp sink to `endpoint`, its OTLP/HTTP receiver on `port`,
/// and `extra` settings (over these).
async fn echo_env(dir: &Path, endpoint: String, port: u16, extra: &[(&str, String)]) -> std::sync::Arc<Environment> {
    let mut env = vec![
        ("TANDEM_SINKS", "otlp".to_owned()),
        ("TANDEM_OTLP_ENDPOINT", endpoint),
        ("TANDEM_OTLP_RECEIVER", "http".to_owned()),
        ("TANDEM_OTLP_RECEIVER_HTTP_PORT", port.to_string()),
        ("TANDEM_FLUSH", "end".to_owned()),
    ];
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra.iter().cloned());
    std::sync::Arc::new(start(dir, &env, |c| c.timeout = Duration::from_secs(30)).await)
}

/// Runs an invocation in the background (the environment is frozen between
/// invocations: a client talks to tandem during one).
fn during(
    env: &std::sync::Arc<Environment>,
    payload: Value,
) -> tokio::task::JoinHandle<tandem_emulator::InvokeOutcome> {
    let env = env.clone();
    tokio::spawn(async move { invoke(&env, payload).await })
}

/// One HTTP/1.1 request on a fresh connection; the whole answer.
fn raw_answer(port: u16, head: &str, body: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the receiver");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("a read timeout");
    s.write_all(head.as_bytes()).expect("send the head");
    // A refused body may be cut short by the server: what matters is its answer.
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

/// The status of an answer, and where its body starts.
fn status_of(answer: &[u8]) -> (u16, usize) {
    let text = String::from_utf8_lossy(answer);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no answer: {text:?}"));
    (status, answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |p| p + 4))
}

/// One HTTP/1.1 request on a fresh connection; the status and body of the answer.
fn raw_request(port: u16, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let answer = raw_answer(port, head, body);
    let (status, at) = status_of(&answer);
    (status, answer[at..].to_vec())
}

fn post_head(path: &str, content_type: &str, extra: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n"
    )
}

fn post(port: u16, path: &str, content_type: &str, extra: &str, body: &[u8]) -> (u16, Vec<u8>) {
    raw_request(port, &post_head(path, content_type, extra, body.len()), body)
}

/// A traces export of `n` spans named `{tag}-{i}`, each with a padding attribute (a
/// few hundred bytes per span).
fn spans_request(tag: &str, n: usize) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let span = |i: usize| Span {
        trace_id: vec![7; 16],
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        name: format!("{tag}-{i}"),
        attributes: vec![KeyValue {
            key: "padding".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue("p".repeat(300))) }),
            key_strindex: 0,
        }],
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: (0..n).map(span).collect(), ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_makes_the_receiver_answer_retryably_and_nothing_is_lost_once_it_is_back() {
    let dir = tempdir("receiver-backpressure");
    let otlp = Receiver::start().await;
    otlp.set_mode(Mode::Unavailable);
    let port = free_port();
    let extra = [
        // The smallest bound: 64 KiB in memory, no spool.
        ("TANDEM_BUFFER_MAX_BYTES", "64KiB".to_owned()),
        ("TANDEM_SPOOL_MAX_BYTES", "0".to_owned()),
        ("TANDEM_RETRY_MAX_MS", "200".to_owned()),
        ("TANDEM_FLUSH", "adaptive".to_owned()),
    ];
    let env = echo_env(&dir, otlp.url(""), port, &extra).await;
    let during = |payload: Value| during(&env, payload);
    // While the sink is down: exports are taken until the bound, then refused retryably.
    let running = during(json!({"sleep_ms": 1500}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (taken, refused) = tokio::task::spawn_blocking(move || {
        let mut taken = Vec::new();
        for k in 0..40 {
            let tag = format!("batch{k}");
            let body = spans_request(&tag, 40);
            let answer = raw_answer(port, &post_head("/v1/traces", "application/x-protobuf", "", body.len()), &body);
            match status_of(&answer).0 {
                200 => taken.push(tag),
                503 => {
                    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
                    assert!(text.contains("\r\nretry-after: "), "{text}");
                    return (taken, Some(tag));
                }
                other => panic!("{tag}: {other}"),
            }
        }
        (taken, None)
    })
    .await
    .expect("the client runs");
    let refused = refused.expect("the receiver refused once the lanes were full");
    assert!(!taken.is_empty(), "the first exports were taken");
    assert_eq!(running.await.expect("invocation").result.status, tandem_wire::Status::Success);

    // The sink is back: the exporter's retry is taken once tandem delivered.
    otlp.set_mode(Mode::Ok);
    let running = during(json!({"sleep_ms": 8000}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retried = refused.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let body = spans_request(&retried, 40);
        for _ in 0..60 {
            if post(port, "/v1/traces", "application/x-protobuf", "", &body).0 == 200 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
    .await
    .expect("the client runs");
    assert!(ok, "the refused export was taken once the sink recovered");
    assert_eq!(running.await.expect("invocation").result.status, tandem_wire::Status::Success);
    let env = std::sync::Arc::try_unwrap(env).unwrap_or_else(|_| panic!("the invocations are done"));
    env.shutdown().await;

    let got = listed(&otlp, &dir);
    let names: Vec<String> = items(&got, "spans")
        .into_iter()
        .filter(|s| s["scope"] != "tandem")
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    let want: Vec<String> =
        taken.iter().chain([&refused]).flat_map(|t| (0..40).map(move |i| format!("{t}-{i}"))).collect();
    exactly_once("spans taken while the sink was down, and the retried export", &names, &want);
    assert_eq!(names.len(), want.len(), "nothing else");
    // The flushes never held the function: each invocation's added time stays small.
    for overhead in extension_overheads(&env) {
        assert!(overhead < 1000.0, "extensionOverhead {overhead} ms");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_sink_exports_over_grpc_to_a_grpcio_server_with_what_was_received() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = tempdir("receiver-sink-grpc");
    let reqs = dir.join("grpc-requests");
    let mut server = Command::new(python())
        .arg(script("grpc_otlp_server.py"))
        .arg(&reqs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the grpcio server");
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().expect("its stdout"))
        .read_line(&mut first)
        .expect("the server prints its port");
    let grpc_port: u16 = first.trim().parse().unwrap_or_else(|_| panic!("a port, not {first:?}"));
    let port = free_port();
    let env =
        echo_env(&dir, format!("http://127.0.0.1:{grpc_port}"), port, &[("TANDEM_OTLP_PROTOCOL", "grpc".to_owned())])
            .await;
    let logged = lines("grpc-sink", 3);
    let running = during(&env, json!({"log": logged, "sleep_ms": 1500}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || {
        post(port, "/v1/traces", "application/x-protobuf", "", &spans_request("grpc-received", 5)).0
    })
    .await
    .expect("the client runs");
    assert_eq!(status, 200);
    assert_eq!(running.await.expect("invocation").result.status, tandem_wire::Status::Success);
    let env = std::sync::Arc::try_unwrap(env).unwrap_or_else(|_| panic!("the invocation is done"));
    env.shutdown().await;
    drop(server.stdin.take());
    let stopped = eventually(Duration::from_secs(10), || matches!(server.try_wait(), Ok(Some(_)))).await;
    if !stopped {
        let _ = server.kill();
        let _ = server.wait();
    }
    let got = list_dir(&reqs);
    let bodies: Vec<String> = items(&got, "logs")
        .into_iter()
        .filter(|l| l["scope"] == "tandem")
        .filter_map(|l| l["body"].as_str().map(str::to_owned))
        .collect();
    exactly_once("tandem's log records over gRPC", &bodies, &logged);
    let spans = items(&got, "spans");
    let names: Vec<String> =
        spans.iter().filter(|s| s["scope"] != "tandem").filter_map(|s| s["name"].as_str().map(str::to_owned)).collect();
    let want: Vec<String> = (0..5).map(|i| format!("grpc-received-{i}")).collect();
    exactly_once("received spans over gRPC", &names, &want);
    assert!(spans.iter().any(|s| s["scope"] == "tandem"), "tandem's invocation spans too: {spans:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A metrics export as an SDK sends it: a resource, a scope, a gauge and a sum.
fn metrics_request() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let point = |v: i64| NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsInt(v)),
        ..NumberDataPoint::default()
    };
    let metric = |name: &str, data| Metric { name: name.into(), data: Some(data), ..Metric::default() };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue("raw-client".into())) }),
                    key_strindex: 0,
                }],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "raw".into(), ..InstrumentationScope::default() }),
                metrics: vec![
                    metric("queue.depth", metric::Data::Gauge(Gauge { data_points: vec![point(4)] })),
                    metric(
                        "orders",
                        metric::Data::Sum(Sum {
                            data_points: vec![point(1), point(2)],
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        }),
                    ),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_good_ones_arrive_once() {
    let dir = tempdir("receiver-bad-input");
    let otlp = Receiver::start().await;
    let port = free_port();
    let env = echo_env(&dir, otlp.url(""), port, &[]).await;
    let running = during(&env, json!({"sleep_ms": 4000}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = tokio::task::spawn_blocking(move || {
        let pb = "application/x-protobuf";
        let mut a = vec![
            ("malformed protobuf", post(port, "/v1/traces", pb, "", b"\xff\xff\xff\xff\x0f"), 400),
            (
                "JSON with wrong types",
                post(port, "/v1/logs", "application/json", "", br#"{"resourceLogs":[{"scopeLogs":"many"}]}"#),
                400,
            ),
            ("unknown path", post(port, "/v1/profiles", pb, "", b""), 404),
            ("GET", raw_request(port, "GET /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b""), 405),
            ("text/plain", post(port, "/v1/metrics", "text/plain", "", b"x"), 415),
        ];
        let big = vec![b'a'; 20 << 20];
        a.push(("a 20 MiB body", post(port, "/v1/metrics", pb, "", &big), 413));
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&big).expect("gzip");
        let bomb = bomb.finish().expect("gzip");
        a.push((
            "a gzip body inflating to 20 MiB",
            post(port, "/v1/metrics", pb, "Content-Encoding: gzip\r\n", &bomb),
            413,
        ));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&metrics_request()).expect("gzip");
        let gz = gz.finish().expect("gzip");
        a.push(("a gzipped metrics export", post(port, "/v1/metrics", pb, "Content-Encoding: gzip\r\n", &gz), 200));
        let json_logs = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"raw-client"}}]},
            "scopeLogs":[{"scope":{"name":"raw"},"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":9,
            "body":{"stringValue":"a JSON log record"},"traceId":"5759e988bd862e3fe1be46a994272793","spanId":"53995c3f42cd8ad8"}]}]}]}"#;
        a.push(("an OTLP/JSON logs export", post(port, "/v1/logs", "application/json", "", json_logs), 200));
        a
    })
    .await
    .expect("the client runs");
    for (what, (status, body), want) in &answers {
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(body));
    }
    // A 400 carries a google.rpc.Status: code INVALID_ARGUMENT (field 1 = 3) first.
    assert_eq!(&answers[0].1 .1[..2], &[0x08, 3], "{:?}", answers[0].1 .1);
    let out = running.await.expect("the invocation task");
    assert_eq!(out.result.status, tandem_wire::Status::Success, "tandem and the function carried on");
    env.shutdown().await;
    let got = listed(&otlp, &dir);
    let points: Vec<_> = items(&got, "points").into_iter().filter(|p| p["scope"] == "raw").collect();
    assert_eq!(points.len(), 3, "gauge point and two sum points, once each: {points:#?}");
    assert!(points.iter().all(|p| p["service"] == "raw-client"), "the sender's resource is kept");
    assert!(points.iter().all(|p| p["attributes"].get("faas.invocation_id").is_none()), "points are not stamped");
    let logs: Vec<_> = items(&got, "logs").into_iter().filter(|l| l["scope"] == "raw").collect();
    assert_eq!(logs.len(), 1, "{logs:#?}");
    assert_eq!(logs[0]["body"], "a JSON log record");
    assert_eq!(logs[0]["service"], "raw-client");
    let json_answer = &answers.iter().find(|(w, ..)| *w == "an OTLP/JSON logs export").expect("asked").1 .1;
    assert_eq!(json_answer, b"{}", "a full success in the request's encoding");
    let _ = std::fs::remove_dir_all(&dir);
}
