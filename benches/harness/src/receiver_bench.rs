//! receiver_bench: the OTLP receiver's rows of `cargo xtask bench` (issue 16).
//!
//! - Spans per second through tandem's receiver to its `otlp` sink, tandem pinned to
//!   one core (`taskset`): a generator here posts `ExportTraceServiceRequest`s of 100
//!   spans (OTLP/HTTP protobuf, or gRPC) from a few connections, retrying what the
//!   receiver answers retryable, while the function is invoked back to back (the
//!   `end` flush delivers at each invocation's end); the sink delivers (http/protobuf)
//!   to the harness's OTLP receiver, which decodes and counts; the rate is the
//!   generated spans over the time until the last of them arrived. Acknowledged means held, so the receiver's
//!   write-ahead is in the figure.
//! - The post-runtime `extensionOverhead` per invocation of the instrumented Python
//!   function (`otel_fn.py` under the `otel-instrument` wrapper, exporting its span and
//!   log records to the receiver) next to the same handler uninstrumented with the
//!   receiver off; tandem's defaults otherwise.
//! - Init (exec to first `next`) of the same binary with `TANDEM_OTLP_RECEIVER=http,grpc`
//!   and `off`, and the stripped size of the `grpc` feature (measured once, in
//!   crates/tandem/Cargo.toml; the HTTP listener is hyper's server, already in the
//!   binary for the secrets cache, so it has no separable size).

use crate::extension::{self, Subject};
use crate::otlp_receiver::Receiver;
use crate::throughput::PlainRow;
use crate::Bins;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use tandem::sink::otlp::encode::Signal;
use tandem::sink::otlp::grpc::GrpcClient;
use tandem::sink::transport::{self, url::Endpoint, Client};
use tandem::sink::Attempt;
use tandem_emulator::{Config, Environment, Observation};

/// Spans per generated request.
const SPANS_PER_REQUEST: usize = 100;
/// The generated spans' name, counted at the sink's destination.
const SPAN_NAME: &str = "bench.receiver.span";
/// Connections the generator posts from at once.
const CONNECTIONS: usize = 4;
/// The generator's wait after a retryable answer: short, everything is local.
const RETRY_WAIT: Duration = Duration::from_millis(5);
/// The stripped size the `grpc` feature adds (crates/tandem/Cargo.toml, measured once).
const GRPC_FEATURE_BYTES: f64 = 615_048.0;

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// Request `n` of the generator, encoded: one resource, one scope, 100 spans of one trace.
fn request(n: usize) -> Vec<u8> {
    let trace_id = (n as u128 + 1).to_be_bytes().to_vec();
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| Span {
            trace_id: trace_id.clone(),
            span_id: ((n * SPANS_PER_REQUEST + i) as u64 + 1).to_be_bytes().to_vec(),
            name: SPAN_NAME.into(),
            kind: 1,
            start_time_unix_nano: 1_765_000_000_000_000_000 + i as u64 * 1_000,
            end_time_unix_nano: 1_765_000_000_000_000_000 + i as u64 * 1_000 + 500,
            attributes: vec![kv("http.route", "/orders/{id}"), kv("db.system", "dynamodb"), kv("bench.i", "x")],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", "bench-fn")], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "bench".into(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Posts `bodies` to the receiver at `port` over `grpc` or OTLP/HTTP, one at a time,
/// retrying each while the receiver answers retryable (bounded by `deadline`).
async fn post_all(grpc: bool, port: u16, bodies: Vec<Vec<u8>>, deadline: Instant) -> Result<u64, String> {
    let mut retries = 0;
    let headers = http::HeaderMap::new();
    if grpc {
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}"))?;
        let mut client = GrpcClient::new(&endpoint)?;
        for body in bodies {
            loop {
                match client.export(Signal::Traces, &headers, &body, false).await {
                    Attempt::Ok => break,
                    Attempt::Retry { .. } if Instant::now() < deadline => {
                        retries += 1;
                        tokio::time::sleep(RETRY_WAIT).await;
                    }
                    Attempt::Retry { reason, .. } | Attempt::Permanent(reason) => return Err(reason),
                }
            }
        }
    } else {
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}/v1/traces"))?;
        let mut client = Client::new(&endpoint);
        for body in bodies {
            loop {
                let req = transport::post(&endpoint, "application/x-protobuf", false, &headers, body.clone().into())?;
                let answer = client.send(req).await?;
                match answer.status.as_u16() {
                    200 => break,
                    429 | 503 if Instant::now() < deadline => {
                        retries += 1;
                        tokio::time::sleep(RETRY_WAIT).await;
                    }
                    s => return Err(format!("the receiver answered HTTP {s}")),
                }
            }
        }
    }
    Ok(retries)
}

/// Pins every thread of `pid` to CPU 0.
fn pin_to_one_core(pid: i32) -> Result<(), String> {
    let out = std::process::Command::new("taskset")
        .args(["-a", "-cp", "0", &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("taskset failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Spans per second through the receiver (`grpc` or OTLP/HTTP protobuf) to the otlp
/// sink, and the retryable answers the generator got.
async fn spans_per_second(
    bins: &Bins,
    tandem: &Path,
    scratch: &Path,
    grpc: bool,
    requests: usize,
) -> Result<(f64, u64), String> {
    let sink = Receiver::start(None).await.map_err(|e| format!("cannot start the OTLP receiver: {e}"))?;
    let port = free_port()?;
    let mut cfg = Config::new(vec![bins.need("echo-fn")?.to_string_lossy().into_owned()]);
    cfg.extensions.push(tandem.to_path_buf());
    cfg.timeout = Duration::from_secs(10);
    cfg.record_bodies = false;
    // The generator posts during and between invocations: the environment stays thawed.
    cfg.freeze = false;
    let spool = scratch.join(if grpc { "receiver-grpc" } else { "receiver-http" });
    let (listener, port_key) =
        if grpc { ("grpc", "TANDEM_OTLP_RECEIVER_GRPC_PORT") } else { ("http", "TANDEM_OTLP_RECEIVER_HTTP_PORT") };
    for (k, v) in [
        ("TANDEM_SINKS", "otlp".to_owned()),
        ("TANDEM_OTLP_ENDPOINT", format!("http://{}", sink.addr)),
        ("TANDEM_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("TANDEM_OTLP_RECEIVER", listener.to_owned()),
        (port_key, port.to_string()),
        ("TANDEM_FLUSH", "end".to_owned()),
        ("TANDEM_SPOOL_DIR", spool.to_string_lossy().into_owned()),
    ] {
        cfg.env.push((k.to_owned(), v));
    }
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    let name = tandem.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pid = env.observations().iter().find_map(|o| match &o.what {
        Observation::Spawned { process, pid } if *process == name => Some(*pid),
        _ => None,
    });
    let measured = async {
        pin_to_one_core(pid.ok_or("tandem was not started")?)?;
        env.invoke(r#"{"log":["warm-up"]}"#).await.map_err(|e| e.to_string())?;
        let bodies: Vec<Vec<u8>> = (0..requests).map(request).collect();
        let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
        for (i, b) in bodies.into_iter().enumerate() {
            shares[i % CONNECTIONS].push(b);
        }
        let total = (requests * SPANS_PER_REQUEST) as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        let started = Instant::now();
        let posts: Vec<_> = shares.into_iter().map(|s| tokio::spawn(post_all(grpc, port, s, deadline))).collect();
        while !posts.iter().all(|p| p.is_finished()) && Instant::now() < deadline {
            env.invoke("{}").await.map_err(|e| e.to_string())?;
        }
        let mut retries = 0;
        for p in posts {
            retries += p.await.map_err(|e| format!("a generator task failed: {e}"))??;
        }
        let arrived = |r: &crate::otlp_receiver::Received| r.span_names.get(SPAN_NAME).copied().unwrap_or(0);
        // Invocations keep coming while the data does, as in Lambda: each one's end
        // (`end` flush) delivers what the receiver holds.
        while arrived(&sink.received()) < total {
            if Instant::now() > deadline {
                return Err(format!("{} of {total} spans arrived in time", arrived(&sink.received())));
            }
            env.invoke("{}").await.map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let got = arrived(&sink.received());
        if got != total {
            return Err(format!("{got} spans arrived for {total} acknowledged"));
        }
        Ok::<_, String>((total as f64 / elapsed, retries))
    }
    .await;
    env.shutdown().await;
    measured
}

/// tandem with the instrumented Python function (`instrumented`) or the same handler
/// uninstrumented with the receiver off; `flush`, the otlp sink to `sink`.
fn python_subject(
    root: &Path,
    tandem: &Path,
    scratch: &Path,
    sink: &Receiver,
    instrumented: bool,
    flush: &str,
) -> Result<Subject, String> {
    let here = root.join("examples/functions/python");
    let python = root.join("target/venv/bin/python");
    let mut env = vec![
        ("_HANDLER".to_owned(), "otel_fn.handle".to_owned()),
        ("TANDEM_PYTHON".to_owned(), python.to_string_lossy().into_owned()),
        ("TANDEM_SINKS".to_owned(), "otlp".to_owned()),
        ("TANDEM_OTLP_ENDPOINT".to_owned(), format!("http://{}", sink.addr)),
        ("TANDEM_SPOOL_DIR".to_owned(), scratch.join(format!("python-{instrumented}")).to_string_lossy().into_owned()),
        ("TANDEM_FLUSH".to_owned(), flush.to_owned()),
    ];
    if instrumented {
        let port = free_port()?.to_string();
        env.extend([
            ("AWS_LAMBDA_EXEC_WRAPPER".to_owned(), here.join("otel-instrument").to_string_lossy().into_owned()),
            ("TANDEM_OTLP_RECEIVER".to_owned(), "http".to_owned()),
            ("TANDEM_OTLP_RECEIVER_HTTP_PORT".to_owned(), port.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://127.0.0.1:{port}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), "http/protobuf".to_owned()),
        ]);
    } else {
        env.push(("TANDEM_OTLP_RECEIVER".to_owned(), "off".to_owned()));
    }
    Ok(Subject { binary: tandem.to_path_buf(), env })
}

/// The receiver's rows.
pub async fn rows(bins: &Bins, tandem: &Path, scratch: &Path, quick: bool) -> Result<Vec<PlainRow>, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let (requests, invocations, init_runs) = if quick { (300, 30, 10) } else { (1000, 100, 40) };
    let mut rows = Vec::new();

    for (grpc, label) in [(false, "OTLP/HTTP protobuf"), (true, "OTLP/gRPC")] {
        eprintln!("bench: receiver throughput over {label} ({requests} requests of {SPANS_PER_REQUEST} spans)");
        let (rate, retries) = spans_per_second(bins, tandem, scratch, grpc, requests).await?;
        rows.push(PlainRow {
            metric: format!(
                "receiver: spans per second in over {label} ({SPANS_PER_REQUEST} per request, {CONNECTIONS} connections) to the otlp sink out, tandem on one core"
            ),
            unit: "1/s",
            tandem: rate,
            baseline: None,
            target: None,
            json: json!({"protocol": label, "requests": requests, "spans_per_request": SPANS_PER_REQUEST, "retryable_answers": retries, "spans_per_second": rate}),
        });
    }

    let python = root.join("target/venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing (run `cargo xtask setup`)", python.display()));
    }
    let sink = Receiver::start(None).await.map_err(|e| format!("cannot start the OTLP receiver: {e}"))?;
    let bootstrap = root.join("examples/functions/python/bootstrap");
    let event = r#"{"logs":2,"linger_ms":30}"#;
    // `adaptive` (the default) ships in the background; `end` delivers what the function
    // exported before the next invocation, so its cost shows in the billed time.
    for flush in ["adaptive", "end"] {
        eprintln!("bench: receiver extensionOverhead, instrumented Python function, `{flush}` flush ({invocations} invocations each)");
        let with = python_subject(&root, tandem, scratch, &sink, true, flush)?;
        let without = python_subject(&root, tandem, scratch, &sink, false, flush)?;
        let on = extension::post_runtime(&bootstrap, &with, invocations, event).await?;
        let off = extension::post_runtime(&bootstrap, &without, invocations, event).await?;
        let received = sink.received();
        if received.span_names.keys().all(|n| !n.contains("handle")) {
            return Err(format!("the instrumented function's spans did not arrive: {:?}", received.span_names));
        }
        for (stat, a, b) in [("p50", on.median(), off.median()), ("p99", on.p99(), off.p99())] {
            rows.push(PlainRow {
                metric: format!(
                    "receiver: post-runtime extensionOverhead per invocation, `{flush}` flush, instrumented Python function exporting to the receiver (baseline: same handler uninstrumented, receiver off), {stat}"
                ),
                unit: "ms",
                tandem: a,
                baseline: Some(b),
                target: None,
                json: json!({"flush": flush, "stat": stat, "with_receiver_ms": a, "without_ms": b, "invocations": invocations}),
            });
        }
    }

    eprintln!("bench: init with the receiver on and off ({init_runs} cold starts each)");
    let init_subject = |receiver: &str| -> Result<Subject, String> {
        Ok(Subject {
            binary: tandem.to_path_buf(),
            env: vec![
                ("TANDEM_SINKS".into(), "otlp".into()),
                ("TANDEM_OTLP_ENDPOINT".into(), format!("http://{}", sink.addr)),
                ("TANDEM_OTLP_RECEIVER".into(), receiver.into()),
                ("TANDEM_OTLP_RECEIVER_HTTP_PORT".into(), free_port()?.to_string()),
                ("TANDEM_OTLP_RECEIVER_GRPC_PORT".into(), free_port()?.to_string()),
                ("TANDEM_SPOOL_DIR".into(), scratch.join(format!("init-{receiver}")).to_string_lossy().into_owned()),
            ],
        })
    };
    let init_on = extension::init_overhead(bins, &init_subject("http,grpc")?, init_runs).await?;
    let init_off = extension::init_overhead(bins, &init_subject("off")?, init_runs).await?;
    for (stat, a, b) in [("p50", init_on.median(), init_off.median()), ("p99", init_on.p99(), init_off.p99())] {
        rows.push(PlainRow {
            metric: format!(
                "receiver: extension init (exec to first `next`) with TANDEM_OTLP_RECEIVER=http,grpc (baseline: off, same binary), {stat}; issue target ≤ 2 ms p50"
            ),
            unit: "ms",
            tandem: a,
            baseline: Some(b),
            target: None,
            json: json!({"stat": stat, "on_ms": a, "off_ms": b, "runs": init_runs}),
        });
    }
    rows.push(PlainRow {
        metric: "receiver: stripped size the `grpc` feature adds (gRPC listener and export; measured once, crates/tandem/Cargo.toml)".into(),
        unit: "KiB",
        tandem: GRPC_FEATURE_BYTES / 1024.0,
        baseline: None,
        target: None,
        json: json!({"bytes": GRPC_FEATURE_BYTES, "source": "crates/tandem/Cargo.toml, feature grpc"}),
    });
    Ok(rows)
}
