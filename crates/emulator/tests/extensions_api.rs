//! Extensions API: real extensions (lambda-extension crate, bash and curl) and the
//! error matrix of the Extensions, Telemetry and Logs APIs, one test per row, driven
//! over real HTTP with the test acting as an (internal) extension.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use tandem_emulator::{InvokeRequest, Observation};
use tandem_wire::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lext_events_receives_invoke_and_shutdown_with_lambda_fields() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.function_name = "ext-check".into();
    cfg.timeout = Duration::from_secs(5);
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    let registered =
        observed(&env, |o| matches!(o, Observation::ExtensionRegistered { name, .. } if name == "lext-events"));
    match &registered[..] {
        [o] => match &o.what {
            Observation::ExtensionRegistered { external, events, .. } => {
                assert!(*external, "launched from the extensions list: external");
                assert_eq!(events, &["INVOKE", "SHUTDOWN"]);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("one registration: {other:?}"),
    }
    let trace = "Root=1-65a8b1c2-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1";
    let before = now_ms();
    let out = within(
        DEADLINE,
        "invoke",
        env.invoke_with(InvokeRequest { payload: "{}".into(), trace_id: Some(trace.into()), ..Default::default() }),
    )
    .await
    .expect("invoked")
    .result;
    let after = now_ms();
    assert_eq!(out.status, Status::Success);
    shutdown(&env).await;

    let lines: Vec<Value> = events.lines().into_iter().filter(|l| l.get("event").is_some()).collect();
    assert_eq!(lines.len(), 2, "INVOKE then SHUTDOWN: {lines:?}");
    let inv = &lines[0];
    assert_eq!(inv["event"], "INVOKE");
    assert_eq!(inv["request_id"], out.request_id.as_str());
    let deadline = inv["deadline_ms"].as_u64().expect("deadlineMs");
    assert!(
        deadline + 5 >= before + 5000 && deadline <= after + 5000 + 5,
        "deadlineMs {deadline} = invoke start ({before}..{after}) + 5 s"
    );
    assert_eq!(inv["invoked_function_arn"], "arn:aws:lambda:us-east-1:012345678912:function:ext-check");
    assert_eq!(inv["tracing_type"], "X-Amzn-Trace-Id");
    assert_eq!(inv["tracing_value"], trace);

    let sd = &lines[1];
    assert_eq!(sd["event"], "SHUTDOWN");
    assert_eq!(sd["shutdown_reason"], "spindown");
    let (start_ms, deadline_ms) = env
        .observations()
        .into_iter()
        .find_map(|o| match o.what {
            Observation::ShutdownStart { deadline_ms, .. } => Some((o.epoch_ms, deadline_ms)),
            _ => None,
        })
        .expect("ShutdownStart");
    assert_eq!(sd["deadline_ms"].as_u64(), Some(deadline_ms));
    assert!((1995..=2005).contains(&(deadline_ms - start_ms)), "2 s for external extensions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_extension_receives_invoke_and_shutdown() {
    let mut cfg = echo_config();
    cfg.extensions = vec![example("extensions/shell/shell-ext")];
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success));
    let out = invoke(&env, "{}").await.result;
    shutdown(&env).await;
    let lines = env.console_lines();
    assert!(lines.iter().any(|l| l.starts_with("shell-ext registered as ")), "{lines:?}");
    assert!(lines.iter().any(|l| *l == format!("shell-ext got INVOKE {}", out.request_id)), "{lines:?}");
    assert!(lines.iter().any(|l| l == "shell-ext got SHUTDOWN spindown"), "{lines:?}");
    let exits = observed(&env, |o| matches!(o, Observation::ProcessExited { process, .. } if process == "shell-ext"));
    match &exits[..] {
        [o] => match &o.what {
            Observation::ProcessExited { exit, .. } => {
                assert_eq!(exit.code, Some(0), "it exited by itself after SHUTDOWN")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

// ----- register ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_without_name_is_403_invalid_extension_name() {
    let h = OpenInit::new().await;
    request(h.api, "POST", REGISTER, &[], r#"{"events":["INVOKE"]}"#)
        .await
        .assert_error(403, "Extension.InvalidExtensionName");
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "")], r#"{"events":["INVOKE"]}"#)
        .await
        .assert_error(403, "Extension.InvalidExtensionName");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_bad_json_is_403_invalid_request_format() {
    let h = OpenInit::new().await;
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "bad-json")], r#"{"events":["INVOKE""#)
        .await
        .assert_error(403, "InvalidRequestFormat");
    // Nothing was registered: the same name registers fine afterwards.
    h.register("bad-json", r#"["INVOKE"]"#).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_configuration_keys_is_403_invalid_request_format() {
    let h = OpenInit::new().await;
    request(
        h.api,
        "POST",
        REGISTER,
        &[("Lambda-Extension-Name", "old-style")],
        r#"{"events":["INVOKE"],"configurationKeys":["KEY"]}"#,
    )
    .await
    .assert_error(403, "InvalidRequestFormat");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_for_an_unknown_event_is_403_invalid_event_type() {
    let h = OpenInit::new().await;
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "odd-events")], r#"{"events":["INVOKE","RESTORE"]}"#)
        .await
        .assert_error(403, "Extension.InvalidEventType");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_extension_asking_for_shutdown_is_403_invalid_event_type() {
    let h = OpenInit::new().await;
    // No launched file has this name: it is an internal extension.
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "in-process")], r#"{"events":["INVOKE","SHUTDOWN"]}"#)
        .await
        .assert_error(403, "Extension.InvalidEventType");
    h.register("in-process", r#"["INVOKE"]"#).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_registration_is_403_invalid_extension_state() {
    let h = OpenInit::new().await;
    h.register("twin", r#"["INVOKE"]"#).await;
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "twin")], r#"{"events":["INVOKE"]}"#)
        .await
        .assert_error(403, "Extension.InvalidExtensionState");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleventh_extension_is_403_too_many_extensions() {
    let h = OpenInit::new().await;
    for i in 0..10 {
        h.register(&format!("ext-{i}"), r#"["INVOKE"]"#).await;
    }
    request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "ext-10")], r#"{"events":["INVOKE"]}"#)
        .await
        .assert_error(403, "Extension.TooManyExtensions");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_after_init_is_403_registration_closed() {
    let mut cfg = echo_config();
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success));
    request(env.runtime_api(), "POST", REGISTER, &[("Lambda-Extension-Name", "latecomer")], r#"{"events":["INVOKE"]}"#)
        .await
        .assert_error(403, "Extension.RegistrationClosed");
    // The environment is unaffected.
    assert_eq!(invoke(&env, "{}").await.result.status, Status::Success);
    shutdown(&env).await;
}

// ----- identifiers and states ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_without_identifier_is_403_missing_extension_identifier() {
    let h = OpenInit::new().await;
    request(h.api, "GET", EXT_NEXT, &[], "").await.assert_error(403, "Extension.MissingExtensionIdentifier");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_with_a_malformed_identifier_is_403_invalid_extension_identifier() {
    let h = OpenInit::new().await;
    request(h.api, "GET", EXT_NEXT, &[("Lambda-Extension-Identifier", "not-a-uuid")], "")
        .await
        .assert_error(403, "Extension.InvalidExtensionIdentifier");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_with_an_unknown_identifier_is_403_unknown_extension_identifier() {
    let h = OpenInit::new().await;
    h.register("known", r#"["INVOKE"]"#).await;
    request(h.api, "GET", EXT_NEXT, &[("Lambda-Extension-Identifier", "3d0f5f3c-7a52-4d55-9d6e-2b7e1c0a9f11")], "")
        .await
        .assert_error(403, "Extension.UnknownExtensionIdentifier");
    h.finish().await;
}

/// Registers `name` (INVOKE only), parks its `next` and ends init by calling the
/// runtime's `next`: init can only end once the extension's `next` was handled, so
/// the returned harness has that extension waiting in `next` for sure. Returns the
/// harness, the identifier, and the parked extension and runtime requests.
async fn parked_extension(
    name: &str,
) -> (OpenInit, String, tokio::task::JoinHandle<Answer>, tokio::task::JoinHandle<Answer>) {
    let mut h = OpenInit::new().await;
    let id = h.register(name, r#"["INVOKE"]"#).await;
    let ext_next = background(h.api, "GET", EXT_NEXT, vec![("Lambda-Extension-Identifier", id.clone())]);
    let runtime_next = background(h.api, "GET", RUNTIME_NEXT, vec![]);
    let env = h.environment().await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success));
    (h, id, ext_next, runtime_next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_answers_the_function_and_the_account_id_only_on_request() {
    let h = OpenInit::with(|cfg| {
        cfg.function_name = "reg-fn".into();
        cfg.handler = "index.handler".into();
        cfg.account_id = "123456789012".into();
    })
    .await;
    let plain =
        request(h.api, "POST", REGISTER, &[("Lambda-Extension-Name", "plain")], r#"{"events":["INVOKE"]}"#).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(
        plain.json(),
        serde_json::json!({"functionName":"reg-fn","functionVersion":"$LATEST","handler":"index.handler"})
    );
    let id = plain.header("Lambda-Extension-Identifier").expect("identifier");
    assert!(id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4, "a UUID: {id}");
    let with_account = request(
        h.api,
        "POST",
        REGISTER,
        &[("Lambda-Extension-Name", "with-account"), ("Lambda-Extension-Accept-Feature", "accountId")],
        r#"{"events":["INVOKE"]}"#,
    )
    .await;
    assert_eq!(with_account.status, 200, "{}", with_account.text());
    assert_eq!(
        with_account.json(),
        serde_json::json!({"functionName":"reg-fn","functionVersion":"$LATEST","handler":"index.handler","accountId":"123456789012"})
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_next_answers_invoke_as_json_with_an_event_identifier() {
    let (mut h, id, ext_next, runtime_next) = parked_extension("watcher").await;
    let api = h.api;
    let env = h.environment().await;
    let rx = env.invoke_detached(InvokeRequest { payload: r#"{"x":1}"#.into(), ..Default::default() });
    let event = within(DEADLINE, "the INVOKE event", ext_next).await.expect("next task");
    assert_eq!(event.status, 200, "{}", event.text());
    assert_eq!(event.header("Content-Type").as_deref(), Some("application/json"));
    let event_id = event.header("Lambda-Extension-Event-Identifier").expect("event identifier");
    assert_eq!(event_id.len(), 36, "{event_id}");
    let runtime = within(DEADLINE, "the runtime's event", runtime_next).await.expect("next task");
    let rid = runtime.header("Lambda-Runtime-Aws-Request-Id").expect("request id");
    let v = event.json();
    assert_eq!(v["eventType"], "INVOKE");
    assert_eq!(v["requestId"], rid.as_str());
    assert_eq!(v["invokedFunctionArn"], "arn:aws:lambda:us-east-1:012345678912:function:function");
    assert_eq!(v["deadlineMs"].as_str(), None, "deadlineMs is a number: {v}");
    assert_eq!(runtime.header("Lambda-Runtime-Deadline-Ms"), v["deadlineMs"].as_u64().map(|d| d.to_string()));
    assert_eq!(v["tracing"]["type"], "X-Amzn-Trace-Id");
    assert_eq!(runtime.header("Lambda-Runtime-Trace-Id").as_deref(), v["tracing"]["value"].as_str());
    let answered =
        request(api, "POST", &format!("/2018-06-01/runtime/invocation/{rid}/response"), &[], r#""done""#).await;
    assert_eq!(answered.status, 202);
    let result = within(DEADLINE, "the invoke result", rx).await.expect("answered").expect("not rejected");
    assert_eq!(&result.result.payload[..], br#""done""#);
    // The invoke ends once the runtime and the extension are back in next.
    let _runtime_next = background(api, "GET", RUNTIME_NEXT, vec![]);
    let _ext_next = background(api, "GET", EXT_NEXT, vec![("Lambda-Extension-Identifier", id)]);
    let env = h.environment().await;
    let end = wait_for(env, "the invoke's end", |o| matches!(o, Observation::InvokeEnd { .. })).await;
    assert!(
        matches!(&end.what, Observation::InvokeEnd { status: Status::Success, .. }),
        "ended by the two next calls, not by the timeout: {end:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_next_while_one_is_parked_is_403_invalid_extension_state() {
    let (h, id, _ext, _runtime) = parked_extension("impatient").await;
    request(h.api, "GET", EXT_NEXT, &[("Lambda-Extension-Identifier", id.as_str())], "")
        .await
        .assert_error(403, "Extension.InvalidExtensionState");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_without_error_type_is_403_missing_header() {
    let h = OpenInit::new().await;
    let id = h.register("no-type", r#"["INVOKE"]"#).await;
    request(
        h.api,
        "POST",
        EXT_INIT_ERROR,
        &[("Lambda-Extension-Identifier", id.as_str())],
        r#"{"errorMessage":"bad config","errorType":"Extension.ConfigInvalid"}"#,
    )
    .await
    .assert_error(403, "Extension.MissingHeader");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_error_without_error_type_is_403_missing_header() {
    let h = OpenInit::new().await;
    let id = h.register("no-type", r#"["INVOKE"]"#).await;
    request(h.api, "POST", EXT_EXIT_ERROR, &[("Lambda-Extension-Identifier", id.as_str())], "")
        .await
        .assert_error(403, "Extension.MissingHeader");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_after_next_is_403_invalid_extension_state() {
    let (h, id, _ext, _runtime) = parked_extension("too-late").await;
    request(
        h.api,
        "POST",
        EXT_INIT_ERROR,
        &[("Lambda-Extension-Identifier", id.as_str()), ("Lambda-Extension-Function-Error-Type", "Extension.Late")],
        r#"{"errorMessage":"late","errorType":"Extension.Late"}"#,
    )
    .await
    .assert_error(403, "Extension.InvalidExtensionState");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_fails_init_and_no_later_call_of_that_extension_succeeds() {
    // An external extension that ignores SHUTDOWN keeps the reset after the failed
    // init going for its 2 s deadline: the later call below lands inside it.
    let ext_dir = TempDir::new();
    let slow = Ext::lext(&ext_dir, "lext-events", &[("LEXT_IGNORE_SHUTDOWN", "1")]);
    let mut h = OpenInit::with(|cfg| cfg.extensions = vec![slow.path()]).await;
    let id = h.register("gives-up", r#"["INVOKE"]"#).await;
    let a = request(
        h.api,
        "POST",
        EXT_INIT_ERROR,
        &[
            ("Lambda-Extension-Identifier", id.as_str()),
            ("Lambda-Extension-Function-Error-Type", "Extension.ConfigInvalid"),
        ],
        r#"{"errorMessage":"missing setting","errorType":"Extension.ConfigInvalid"}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text());
    assert_eq!(a.json(), serde_json::json!({"status":"OK"}));
    let api = h.api;
    let env = h.environment().await;
    assert_eq!(env.init_outcome(), Some((Status::Error, Some("Extension.InitError".into()))));
    wait_for(
        env,
        "the runtime stopped by the reset",
        |o| matches!(o, Observation::ProcessExited { process, .. } if process == "runtime"),
    )
    .await;
    // No further call of that extension succeeds, and every call is answered.
    let next = background(api, "GET", EXT_NEXT, vec![("Lambda-Extension-Identifier", id.clone())]);
    let next = within(Duration::from_secs(10), "the answer to next after init/error", next).await.expect("next task");
    assert_eq!(next.status, 403, "{}", next.text());
    h.finish().await;
}

// ----- Telemetry and Logs subscriptions ------------------------------------------------

/// A port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn subscribe(h: &OpenInit, path: &str, id: &str, body: &str) -> Answer {
    request(
        h.api,
        "PUT",
        path,
        &[("Lambda-Extension-Identifier", id), ("Content-Type", "application/json")],
        body.to_owned(),
    )
    .await
}

fn telemetry_body(types: &str, buffering: &str, uri: &str) -> String {
    format!(
        r#"{{"schemaVersion":"2022-12-13","types":{types},{buffering}"destination":{{"protocol":"HTTP","URI":"{uri}"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_with_bad_json_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    subscribe(&h, TELEMETRY, &id, r#"{"schemaVersion":"2022-12-13","types":["#)
        .await
        .assert_error(400, "ValidationError");
    // The failed request left the extension free to subscribe.
    let ok = subscribe(&h, TELEMETRY, &id, &subscription("2022-12-13", closed_port())).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_without_port_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let body = telemetry_body(r#"["platform"]"#, "", "http://sandbox.localdomain");
    subscribe(&h, TELEMETRY, &id, &body).await.assert_error(400, "ValidationError");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_with_empty_types_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let uri = format!("http://sandbox.localdomain:{}", closed_port());
    subscribe(&h, TELEMETRY, &id, &telemetry_body("[]", "", &uri)).await.assert_error(400, "ValidationError");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_with_buffering_out_of_range_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let uri = format!("http://sandbox.localdomain:{}", closed_port());
    for buffering in [
        r#"{"maxItems":999}"#,
        r#"{"maxItems":10001}"#,
        r#"{"maxBytes":262143}"#,
        r#"{"maxBytes":1048577}"#,
        r#"{"timeoutMs":24}"#,
        r#"{"timeoutMs":30001}"#,
    ] {
        let body = telemetry_body(r#"["platform"]"#, &format!(r#""buffering":{buffering},"#), &uri);
        let a = subscribe(&h, TELEMETRY, &id, &body).await;
        assert_eq!(a.status, 400, "{buffering}: {}", a.text());
        a.assert_error(400, "ValidationError");
    }
    // The bounds themselves are accepted.
    let body =
        telemetry_body(r#"["platform"]"#, r#""buffering":{"maxItems":1000,"maxBytes":1048576,"timeoutMs":25},"#, &uri);
    let ok = subscribe(&h, TELEMETRY, &id, &body).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_to_another_host_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let uri = format!("http://127.0.0.1:{}", closed_port());
    subscribe(&h, TELEMETRY, &id, &telemetry_body(r#"["platform"]"#, "", &uri))
        .await
        .assert_error(400, "ValidationError");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_to_port_9001_is_400_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let body = telemetry_body(r#"["platform"]"#, "", "http://sandbox.localdomain:9001");
    subscribe(&h, TELEMETRY, &id, &body).await.assert_error(400, "ValidationError");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_subscription_with_bad_input_is_400_logs_validation_error() {
    let h = OpenInit::new().await;
    let id = h.register("sub", r#"["INVOKE"]"#).await;
    let body = r#"{"schemaVersion":"2021-03-18","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#;
    subscribe(&h, LOGS, &id, body).await.assert_error(400, "Logs.ValidationError");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_subscription_after_telemetry_is_403_conflict() {
    let h = OpenInit::new().await;
    let id = h.register("both", r#"["INVOKE"]"#).await;
    let port = closed_port();
    let ok = subscribe(&h, TELEMETRY, &id, &subscription("2022-12-13", port)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "OK");
    subscribe(&h, LOGS, &id, &subscription("2021-03-18", port)).await.assert_error(403, "Logs.SubscriptionConflict");
    // The other way round, for another extension.
    let id2 = h.register("both-2", r#"["INVOKE"]"#).await;
    let ok = subscribe(&h, LOGS, &id2, &subscription("2021-03-18", port)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    subscribe(&h, TELEMETRY, &id2, &subscription("2022-12-13", port))
        .await
        .assert_error(403, "Telemetry.SubscriptionConflict");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_after_init_is_403() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    let id = env
        .observations()
        .into_iter()
        .find_map(|o| match o.what {
            Observation::ExtensionRegistered { name, id, .. } if name == "lext-events" => Some(id),
            _ => None,
        })
        .expect("lext-events registered");
    let port = closed_port();
    for (path, schema, closed) in
        [(TELEMETRY, "2022-12-13", "Telemetry.SubscriptionClosed"), (LOGS, "2021-03-18", "Logs.SubscriptionClosed")]
    {
        request(
            env.runtime_api(),
            "PUT",
            path,
            &[("Lambda-Extension-Identifier", id.as_str())],
            subscription(schema, port),
        )
        .await
        .assert_error(403, closed);
    }
    assert_eq!(invoke(&env, "{}").await.result.status, Status::Success);
    shutdown(&env).await;
}
