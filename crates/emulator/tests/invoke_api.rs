//! The Invoke API front door (`invoke_api::serve`): paths, function names, the log
//! tail, function errors, client context and the queue limit, over real HTTP.

mod common;

use base64::Engine;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_emulator::{Config, Environment};

struct FrontDoor {
    env: Arc<Environment>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl FrontDoor {
    async fn start(cfg: Config) -> Self {
        let env = Arc::new(start(cfg).await);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Invoke API");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(tandem_emulator::serve_invoke_api(listener, env.clone()));
        FrontDoor { env, addr, server }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        request(self.addr, "POST", path, headers, body.to_owned()).await
    }

    async fn stop(self) {
        self.server.abort();
        shutdown(&self.env).await;
    }
}

const RIE: &str = "/2015-03-31/functions/function/invocations";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_serves_the_rie_path_and_the_function_name_and_404s_other_names() {
    let mut cfg = echo_config();
    cfg.function_name = "my-fn".into();
    let door = FrontDoor::start(cfg).await;
    for path in [
        RIE,
        "/2015-03-31/functions/my-fn/invocations",
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:012345678912:function:my-fn/invocations",
    ] {
        let a = door.post(path, &[], r#"{"via":"front door"}"#).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        let v = a.json();
        assert_eq!(v["echo"], json!({"via":"front door"}), "{path}");
        assert_eq!(a.header("X-Amzn-RequestId").as_deref(), v["request_id"].as_str(), "{path}");
        assert_eq!(a.header("X-Amz-Executed-Version").as_deref(), Some("$LATEST"));
        assert_eq!(a.header("X-Amz-Function-Error"), None);
    }
    let missing = door.post("/2015-03-31/functions/other-fn/invocations", &[], "{}").await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(missing.header("X-Amzn-ErrorType").as_deref(), Some("ResourceNotFoundException"));
    let elsewhere = door.post("/2015-03-31/functions", &[], "{}").await;
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.text());
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_log_tail_holds_the_last_4_kb_with_start_end_and_report() {
    let door = FrontDoor::start(echo_config()).await;
    let a = door.post(RIE, &[("X-Amz-Log-Type", "Tail")], r#"{"log":["a line for the tail"]}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let rid = a.header("X-Amzn-RequestId").expect("request id");
    let tail = a.header("X-Amz-Log-Result").expect("X-Amz-Log-Result with Tail");
    let tail =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(tail).expect("base64")).expect("UTF-8 log");
    let lines: Vec<&str> = tail.lines().collect();
    let pos = |prefix: &str| {
        lines.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix:?} in the tail: {tail}"))
    };
    let start = pos(&format!("START RequestId: {rid}"));
    let line = pos("a line for the tail");
    let end = pos(&format!("END RequestId: {rid}"));
    let report = pos(&format!("REPORT RequestId: {rid}"));
    assert!(start < line && line < end && end < report, "{tail}");
    assert!(lines[report].contains("Max Memory Used: "), "{tail}");

    // A long log: only its last 4 KB come back, still ending with the REPORT.
    let a = door.post(RIE, &[("X-Amz-Log-Type", "Tail")], r#"{"log_bytes":20000}"#).await;
    let rid = a.header("X-Amzn-RequestId").expect("request id");
    let tail = base64::engine::general_purpose::STANDARD
        .decode(a.header("X-Amz-Log-Result").expect("log result"))
        .expect("base64");
    assert!(tail.len() <= 4096 && tail.len() > 3000, "{} bytes", tail.len());
    let tail = String::from_utf8_lossy(&tail).into_owned();
    assert!(tail.lines().last().is_some_and(|l| l.starts_with(&format!("REPORT RequestId: {rid}"))), "{tail}");
    assert!(!tail.contains("START RequestId"), "the START line is more than 4 KB back");

    // Without the header there is no tail.
    let a = door.post(RIE, &[], "{}").await;
    assert_eq!(a.header("X-Amz-Log-Result"), None);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_marks_function_errors_unhandled() {
    let door = FrontDoor::start(echo_config()).await;
    let a = door.post(RIE, &[], r#"{"error":"boom"}"#).await;
    assert_eq!(a.status, 200, "a function error is not an API error: {}", a.text());
    assert_eq!(a.header("X-Amz-Function-Error").as_deref(), Some("Unhandled"));
    let body = a.json();
    assert_eq!(body["errorType"], "EchoError", "{body}");
    assert_eq!(body["errorMessage"], "boom", "{body}");
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_passes_client_context_and_trace_header_to_the_runtime() {
    let dir = TempDir::new();
    let mut cfg = config(python_runtime(&dir, "header-dump.py", HEADER_DUMP_RUNTIME));
    cfg.task_root = Some(dir.path().to_path_buf());
    let door = FrontDoor::start(cfg).await;
    let context = r#"{"client":{"installation_id":"i-1"},"custom":{"k":"v"},"env":{"platform":"test"}}"#;
    let encoded = base64::engine::general_purpose::STANDARD.encode(context);
    let trace = "Root=1-65a8b1c2-aaaaaaaaaaaaaaaaaaaaaaaa;Parent=bbbbbbbbbbbbbbbb;Sampled=1";
    let a =
        door.post(RIE, &[("X-Amz-Client-Context", encoded.as_str()), ("X-Amzn-Trace-Id", trace)], r#"{"e":1}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    let h = &v["headers"];
    assert_eq!(h["lambda-runtime-client-context"], context, "decoded before it reaches the runtime: {v}");
    assert_eq!(h["lambda-runtime-trace-id"], trace, "{v}");
    assert_eq!(h["lambda-runtime-aws-request-id"].as_str(), a.header("X-Amzn-RequestId").as_deref(), "{v}");
    assert_eq!(h["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:us-east-1:012345678912:function:function");
    assert!(h["lambda-runtime-deadline-ms"].as_str().is_some_and(|d| d.parse::<u64>().is_ok()), "{v}");
    assert_eq!(v["event"], r#"{"e":1}"#);

    // Without a client context the header is omitted, not empty.
    let a = door.post(RIE, &[], "{}").await;
    assert!(a.json()["headers"].get("lambda-runtime-client-context").is_none(), "{}", a.text());

    let bad = door.post(RIE, &[("X-Amz-Client-Context", "%%% not base64")], "{}").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.header("X-Amzn-ErrorType").as_deref(), Some("InvalidRequestContentException"));
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_answers_429_when_the_queue_is_full() {
    let mut cfg = echo_config();
    cfg.queue_limit = 1;
    let door = FrontDoor::start(cfg).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let addr = door.addr;
            tokio::spawn(async move { request(addr, "POST", RIE, &[], r#"{"sleep_ms":2000}"#).await })
        })
        .collect();
    let mut ok = 0;
    let mut throttled = 0;
    for c in calls {
        let a = within(Duration::from_secs(60), "a queued invocation", c).await.expect("request task");
        match a.status {
            200 => {
                assert_eq!(a.header("X-Amz-Function-Error"), None, "{}", a.text());
                ok += 1;
            }
            429 => {
                assert_eq!(a.header("X-Amzn-ErrorType").as_deref(), Some("TooManyRequestsException"));
                throttled += 1;
            }
            other => panic!("unexpected {other}: {}", a.text()),
        }
    }
    assert!(ok >= 2, "one running and one queued invocation succeed: {ok} ok, {throttled} throttled");
    assert!(throttled >= 1, "the rest is throttled: {ok} ok, {throttled} throttled");
    door.stop().await;
}
