//! Runtime API: real runtimes (lambda_runtime, awslambdaric, a bash bootstrap, tiny
//! stdlib scripts) and the Runtime API's error answers, driven over real HTTP.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tandem_emulator::{InvokeRequest, Observation};
use tandem_wire::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_function_receives_its_context_and_the_lambda_environment() {
    let mut cfg = echo_config();
    cfg.function_name = "ctx-check".into();
    cfg.memory_mb = 256;
    cfg.handler = "bootstrap.handler".into();
    cfg.region = "eu-west-1".into();
    cfg.timeout = Duration::from_secs(7);
    let env = start(cfg).await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let before = now_ms();
    let out = within(
        DEADLINE,
        "invoke",
        env.invoke_with(InvokeRequest {
            payload: r#"{"hello":"world"}"#.into(),
            trace_id: Some(trace.into()),
            ..Default::default()
        }),
    )
    .await
    .expect("the invoke runs");
    let after = now_ms();
    let r = &out.result;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(r.function_error, None);
    let v = json(&r.payload);
    assert_eq!(v["echo"], json!({"hello":"world"}));
    assert_eq!(v["request_id"], r.request_id.as_str());
    let deadline = v["deadline_ms"].as_u64().expect("deadline_ms");
    assert!(
        deadline + 5 >= before + 7000 && deadline <= after + 7000 + 5,
        "deadline {deadline} is the invoke start ({before}..{after}) + the 7 s timeout"
    );
    assert_eq!(v["invoked_function_arn"], "arn:aws:lambda:eu-west-1:012345678912:function:ctx-check");
    assert_eq!(v["trace_id"], trace);
    let e = &v["env"];
    assert_eq!(e["AWS_LAMBDA_FUNCTION_NAME"], "ctx-check");
    assert_eq!(e["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(e["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(e["AWS_REGION"], "eu-west-1");
    assert_eq!(e["_HANDLER"], "bootstrap.handler");
    assert_eq!(e["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/ctx-check");
    assert_eq!(e["AWS_LAMBDA_RUNTIME_API"], env.runtime_api().to_string().as_str());
    assert_eq!(e["TANDEM_WRAPPED"], serde_json::Value::Null);
    let stream = e["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().expect("log stream");
    let (date, rest) = stream.split_at(11);
    assert!(
        date.len() == 11
            && date.chars().enumerate().all(|(i, c)| if [4, 7, 10].contains(&i) {
                c == '/'
            } else {
                c.is_ascii_digit()
            }),
        "log stream {stream:?} starts with YYYY/MM/DD/"
    );
    let hex = rest.strip_prefix("[$LATEST]").unwrap_or_else(|| panic!("log stream {stream:?} has [$LATEST]"));
    assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{stream:?}");

    // A second invoke: a new request id, a generated trace header, the same instance.
    let second = invoke(&env, "{}").await.result;
    let v2 = json(&second.payload);
    assert_ne!(second.request_id, r.request_id);
    assert_eq!(v2["request_id"], second.request_id.as_str());
    assert!(
        v2["trace_id"].as_str().is_some_and(|t| t.starts_with("Root=1-")),
        "a trace header is generated when the caller has none: {v2}"
    );
    assert_eq!(v2["env"]["AWS_LAMBDA_LOG_STREAM_NAME"], stream);
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_function_on_awslambdaric_echoes_and_logs_text_and_json() {
    let mut cfg = config(vec![example("functions/python/bootstrap").to_string_lossy().into_owned()]);
    cfg.handler = "handlers.handle".into();
    cfg.env.push(("TANDEM_PYTHON".into(), python().to_string_lossy().into_owned()));
    cfg.env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let env = start(cfg).await;
    assert_eq!(
        env.init_outcome().map(|o| o.0),
        Some(Status::Success),
        "awslambdaric initialised: {:?}",
        env.console_lines()
    );
    let out = invoke(&env, r#"{"log":["plain text line"],"logger":["structured line"]}"#).await.result;
    assert_eq!(out.status, Status::Success, "{out:?}");
    let v = json(&out.payload);
    assert_eq!(v["echo"]["log"], json!(["plain text line"]));
    assert_eq!(v["request_id"], out.request_id.as_str());
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_NAME"], "function");
    assert_eq!(v["env"]["_HANDLER"], "handlers.handle");
    let rid = out.request_id.clone();
    let (text, structured) = poll(DEADLINE, "the function's two log lines", || {
        let lines = env.console_lines();
        let text = lines.iter().find(|l| *l == "plain text line").cloned()?;
        let structured = lines.iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "structured line").then_some(v)
        })?;
        Some((text, structured))
    })
    .await;
    assert_eq!(text, "plain text line");
    assert_eq!(structured["level"], "INFO", "{structured}");
    assert_eq!(structured["requestId"], rid.as_str(), "{structured}");
    assert!(structured["timestamp"].is_string(), "{structured}");

    // An exception is an unhandled function error with the exception's type.
    let failed = invoke(&env, r#"{"error":"boom"}"#).await.result;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    let body = json(&failed.payload);
    assert_eq!(body["errorType"], "ValueError", "{body}");
    assert_eq!(body["errorMessage"], "boom", "{body}");
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_bootstrap_answers_and_reports_function_errors() {
    let env = start(config(vec![example("functions/shell/bootstrap").to_string_lossy().into_owned()])).await;
    let event = r#"{"a":[1,2,3],"text":"unchanged bytes"}"#;
    let ok = invoke(&env, event).await.result;
    assert_eq!(ok.status, Status::Success, "{ok:?}");
    assert_eq!(ok.function_error, None);
    assert_eq!(&ok.payload[..], event.as_bytes());

    let failed = invoke(&env, r#"{"x":"fail"}"#).await.result;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(failed.error_type.as_deref(), Some("ShellError"));
    assert_eq!(failed.status, Status::Error);
    let body = json(&failed.payload);
    assert_eq!(body["errorMessage"], "asked to fail");

    // The error did not reset the environment: the same runtime answers again.
    let again = invoke(&env, r#"{"b":2}"#).await.result;
    assert_eq!(&again.payload[..], br#"{"b":2}"#);
    let inits = observed(&env, |o| matches!(o, Observation::InitStart { .. }));
    assert_eq!(inits.len(), 1, "a function error does not re-init");
    shutdown(&env).await;
}

// ----- the Runtime API's error answers, with the test in the runtime's place -----------

/// An environment whose runtime is the test: the sleeping runtime never calls the API,
/// the test's own `next` ends init, and one invocation is sent. Returns the harness,
/// the invocation's receiver and its request id.
async fn as_runtime() -> (
    OpenInit,
    tokio::sync::oneshot::Receiver<Result<tandem_emulator::InvokeOutcome, tandem_emulator::Rejection>>,
    String,
) {
    let mut h = OpenInit::new().await;
    let next = background(h.api, "GET", RUNTIME_NEXT, vec![]);
    let env = h.environment().await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success), "the test's next ended init");
    let rx = env.invoke_detached(InvokeRequest { payload: r#"{"n":1}"#.into(), ..Default::default() });
    let event = within(DEADLINE, "next returns the invocation", next).await.expect("next task");
    assert_eq!(event.status, 200, "{}", event.text());
    assert_eq!(&event.body[..], br#"{"n":1}"#);
    let rid = event.header("Lambda-Runtime-Aws-Request-Id").expect("request id header");
    assert!(event.header("Lambda-Runtime-Deadline-Ms").is_some());
    assert!(event.header("Lambda-Runtime-Invoked-Function-Arn").is_some());
    (h, rx, rid)
}

fn response_path(rid: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{rid}/response")
}

/// Lets the invocation end (the runtime's next) and shuts down.
async fn end_as_runtime(h: OpenInit) {
    let _parked = background(h.api, "GET", RUNTIME_NEXT, vec![]);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_for_an_unknown_request_id_is_400_invalid_request_id() {
    let (h, rx, rid) = as_runtime().await;
    let unknown = "7f1c3a52-1d2e-4a1b-9c3d-000000000000";
    request(h.api, "POST", &response_path(unknown), &[], "{}").await.assert_error(400, "InvalidRequestID");
    // The real invocation is still open and takes its response.
    let ok = request(h.api, "POST", &response_path(&rid), &[], r#"{"ok":true}"#).await;
    assert_eq!(ok.status, 202, "{}", ok.text());
    assert_eq!(ok.json(), json!({"status":"OK"}));
    let result = within(DEADLINE, "invoke result", rx).await.expect("answered").expect("not rejected");
    assert_eq!(&result.result.payload[..], br#"{"ok":true}"#);
    end_as_runtime(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_response_is_403_invalid_state_transition() {
    let (h, rx, rid) = as_runtime().await;
    let first = request(h.api, "POST", &response_path(&rid), &[], r#""first""#).await;
    assert_eq!(first.status, 202, "{}", first.text());
    request(h.api, "POST", &response_path(&rid), &[], r#""second""#).await.assert_error(403, "InvalidStateTransition");
    let error_path = format!("/2018-06-01/runtime/invocation/{rid}/error");
    request(h.api, "POST", &error_path, &[], "{}").await.assert_error(403, "InvalidStateTransition");
    let result = within(DEADLINE, "invoke result", rx).await.expect("answered").expect("not rejected");
    assert_eq!(&result.result.payload[..], br#""first""#);
    end_as_runtime(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_init_error_after_next_is_403() {
    let mut h = OpenInit::new().await;
    let _next = background(h.api, "GET", RUNTIME_NEXT, vec![]);
    h.environment().await;
    request(
        h.api,
        "POST",
        RUNTIME_INIT_ERROR,
        &[("Lambda-Runtime-Function-Error-Type", "Runtime.Late")],
        r#"{"errorMessage":"too late","errorType":"Runtime.Late"}"#,
    )
    .await
    .assert_error(403, "InvalidStateTransition");
    let env = h.environment().await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_response_mode_header_is_400_invalid_function_response_mode() {
    let (h, rx, rid) = as_runtime().await;
    request(h.api, "POST", &response_path(&rid), &[("Lambda-Runtime-Function-Response-Mode", "buffered")], r#""x""#)
        .await
        .assert_error(400, "InvalidFunctionResponseMode");
    // The rejected request did not answer the invocation.
    let ok = request(h.api, "POST", &response_path(&rid), &[], r#""y""#).await;
    assert_eq!(ok.status, 202, "{}", ok.text());
    let result = within(DEADLINE, "invoke result", rx).await.expect("answered").expect("not rejected");
    assert_eq!(&result.result.payload[..], br#""y""#);
    end_as_runtime(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_over_6_mib_is_413_and_fails_the_invoke_with_response_size_too_large() {
    let (h, rx, rid) = as_runtime().await;
    let big = vec![b'a'; 7 * 1024 * 1024];
    request(h.api, "POST", &response_path(&rid), &[], big).await.assert_error(413, "RequestEntityTooLarge");
    let result = within(DEADLINE, "invoke result", rx).await.expect("answered").expect("not rejected").result;
    assert_eq!(result.error_type.as_deref(), Some("Function.ResponseSizeTooLarge"));
    assert_eq!(result.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(json(&result.payload)["errorType"], "Function.ResponseSizeTooLarge");
    end_as_runtime(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_of_a_real_runtime_fails_the_invoke() {
    let env = start(echo_config()).await;
    let out = invoke(&env, r#"{"response_bytes":7340032}"#).await.result;
    assert_eq!(
        out.error_type.as_deref(),
        Some("Function.ResponseSizeTooLarge"),
        "{}",
        String::from_utf8_lossy(&out.payload[..out.payload.len().min(300)])
    );
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    // The runtime survives its rejected response and answers the next invoke.
    let ok = invoke(&env, r#"{"again":1}"#).await.result;
    assert_eq!(json(&ok.payload)["echo"], json!({"again":1}));
    shutdown(&env).await;
}

// ----- response streaming ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_of_stream_fn_arrives_in_chunks() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform")]);
    let mut cfg = config(vec![bin("stream-fn").to_string_lossy().into_owned()]);
    cfg.extensions.push(probe.path());
    let env = start(cfg).await;
    let out = invoke(&env, r#"{"chunks":4,"delay_ms":300}"#).await.result;
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert_eq!(out.function_error, None);
    let text = String::from_utf8_lossy(&out.payload).into_owned();
    let positions: Vec<usize> = (0..4)
        .map(|i| text.find(&format!("chunk {i}\n")).unwrap_or_else(|| panic!("chunk {i} is in the response: {text:?}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "chunks in order: {text:?}");
    shutdown(&env).await;
    // The chunks arrived over time: the last byte came 3 delays (900 ms) after the
    // event was dispatched, and well after the first byte.
    let done = probe
        .probe_output()
        .of_type("platform.runtimeDone")
        .into_iter()
        .find(|e| e["record"]["requestId"] == out.request_id.as_str())
        .expect("runtimeDone of the streamed invoke");
    let spans = done["record"]["spans"].as_array().expect("spans").clone();
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["durationMs"].as_f64())
            .unwrap_or_else(|| panic!("span {name} in {done}"))
    };
    let (latency, duration) = (span("responseLatency"), span("responseDuration"));
    assert!(latency + duration >= 890.0, "the last chunk came 900 ms after the first: {done}");
    assert!(duration >= 290.0, "bytes kept arriving after the first one: {done}");
    assert_eq!(done["record"]["status"], "success");
    assert!(done["record"]["metrics"]["producedBytes"].as_u64().is_some_and(|b| b >= 32), "{done}");
}

const TRAILER_RUNTIME: &str = r#"
while True:
    headers, body = next_event()
    rid = headers["lambda-runtime-aws-request-id"]
    s = connect()
    s.sendall(("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
               "Host: runtime\r\n"
               "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
               "Transfer-Encoding: chunked\r\n"
               "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
               "\r\n" % rid).encode())
    data = b"partial output"
    s.sendall(b"%x\r\n%s\r\n" % (len(data), data))
    err = base64.b64encode(b'{"errorMessage":"the stream broke","errorType":"Custom.StreamBroke"}')
    s.sendall(b"0\r\nLambda-Runtime-Function-Error-Type: Custom.StreamBroke\r\n"
              b"Lambda-Runtime-Function-Error-Body: " + err + b"\r\n\r\n")
    status, _, text = read_answer(s)
    s.close()
    print("streamed with trailers: %d %s" % (status, text.decode()), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_trailers_of_a_streamed_response_fail_the_invoke() {
    let dir = TempDir::new();
    let mut cfg = config(python_runtime(&dir, "trailer-runtime.py", TRAILER_RUNTIME));
    cfg.task_root = Some(dir.path().to_path_buf());
    let env = start(cfg).await;
    let out = invoke(&env, "{}").await.result;
    assert_eq!(out.error_type.as_deref(), Some("Custom.StreamBroke"), "{out:?}");
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.status, Status::Error);
    let text = String::from_utf8_lossy(&out.payload).into_owned();
    assert!(text.contains("partial output"), "{text:?}");
    assert!(text.contains("the stream broke"), "{text:?}");
    let line = poll(DEADLINE, "the runtime's report of the 202", || {
        env.console_lines().into_iter().find(|l| l.starts_with("streamed with trailers:"))
    })
    .await;
    assert!(line.starts_with("streamed with trailers: 202"), "{line}");
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_wrapper_starts_the_runtime() {
    let mut cfg = echo_config();
    let wrapper = example("functions/wrapper/wrap.sh");
    cfg.env.push(("AWS_LAMBDA_EXEC_WRAPPER".into(), wrapper.to_string_lossy().into_owned()));
    let env = start(cfg).await;
    let out = invoke(&env, "{}").await.result;
    assert_eq!(json(&out.payload)["env"]["TANDEM_WRAPPED"], "1", "{:?}", env.console_lines());
    let echo = bin("echo-fn").to_string_lossy().into_owned();
    assert!(
        env.console_lines().iter().any(|l| l == &format!("wrapper starting {echo}")),
        "the wrapper got the runtime's command line: {:?}",
        env.console_lines()
    );
    shutdown(&env).await;
}
