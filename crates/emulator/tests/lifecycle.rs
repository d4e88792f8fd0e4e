//! Lifecycle: timeouts, crashes, init failures and the suppressed init, freezing
//! between invocations, and the shutdown deadlines, with real processes.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tandem_emulator::Observation;
use tandem_emulator::Signal;
use tandem_wire::extensions::ShutdownReason;
use tandem_wire::telemetry::Phase;
use tandem_wire::Status;

fn events_of(ext: &Ext) -> Vec<Value> {
    ext.lines().into_iter().filter(|l| l.get("event").is_some()).collect()
}

fn shutdown_reasons(env: &tandem_emulator::Environment) -> Vec<ShutdownReason> {
    env.observations()
        .into_iter()
        .filter_map(|o| match o.what {
            Observation::ShutdownStart { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

fn init_phases(env: &tandem_emulator::Environment) -> Vec<Phase> {
    env.observations()
        .into_iter()
        .filter_map(|o| match o.what {
            Observation::InitStart { phase } => Some(phase),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_timeout_fails_the_invoke_resets_and_the_next_invoke_reinits() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "platform")]);
    let mut cfg = echo_config();
    cfg.timeout = Duration::from_secs(1);
    cfg.extensions = vec![events.path(), probe.path()];
    let env = start(cfg).await;
    let t0 = Instant::now();
    let out = invoke(&env, r#"{"sleep_ms":8000}"#).await.result;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(990) && took < Duration::from_secs(6),
        "the caller is answered at the 1 s timeout, not when the function ends: {took:?}"
    );
    assert_eq!(out.status, Status::Timeout, "{out:?}");
    assert_eq!(out.error_type.as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let message = json(&out.payload)["errorMessage"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(&out.request_id) && message.contains("Task timed out after 1.00 seconds"), "{message}");
    wait_for(&env, "the reset", |o| matches!(o, Observation::ShutdownStart { .. })).await;
    assert_eq!(shutdown_reasons(&env), vec![ShutdownReason::Timeout]);

    // The next invoke re-initialises (a suppressed init) and succeeds.
    let again = invoke(&env, r#"{"n":2}"#).await.result;
    assert_eq!(again.status, Status::Success, "{again:?}");
    assert_eq!(json(&again.payload)["echo"]["n"], 2);
    let phases = init_phases(&env);
    assert!(
        phases.len() == 2 && phases[0] == Phase::Init,
        "the reset made the next invoke initialise again: {phases:?}"
    );
    shutdown(&env).await;

    let seen = events_of(&events);
    let kinds: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["request_id"].as_str().or(e["shutdown_reason"].as_str()).unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("INVOKE".into(), out.request_id.clone()),
            ("SHUTDOWN".into(), "timeout".into()),
            ("INVOKE".into(), again.request_id.clone()),
            ("SHUTDOWN".into(), "spindown".into()),
        ]
    );

    let p = probe.probe_output();
    let done = p
        .of_type("platform.runtimeDone")
        .into_iter()
        .find(|e| e["record"]["requestId"] == out.request_id.as_str())
        .expect("runtimeDone of the timed-out invoke");
    assert_eq!(done["record"]["status"], "timeout", "{done}");
    assert_eq!(done["record"]["errorType"], "Sandbox.Timedout", "{done}");
    let report = p
        .of_type("platform.report")
        .into_iter()
        .find(|e| e["record"]["requestId"] == out.request_id.as_str())
        .expect("report of the timed-out invoke");
    assert_eq!(report["record"]["status"], "timeout", "{report}");
    assert_eq!(report["record"]["errorType"], "Sandbox.Timedout", "{report}");
    let d = report["record"]["metrics"]["durationMs"].as_f64().unwrap_or_default();
    assert!((995.0..6000.0).contains(&d), "timed out at ~1000 ms: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_exit_during_an_invoke_is_runtime_exit_error_and_resets() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    let out = invoke(&env, r#"{"exit":3}"#).await.result;
    assert_eq!(out.error_type.as_deref(), Some("Runtime.ExitError"), "{out:?}");
    assert_eq!(out.status, Status::Error);
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(json(&out.payload)["errorType"], "Runtime.ExitError");
    let exited = wait_for(
        &env,
        "the runtime's exit",
        |o| matches!(o, Observation::ProcessExited { process, .. } if process == "runtime"),
    )
    .await;
    match exited.what {
        Observation::ProcessExited { exit, .. } => assert_eq!(exit.code, Some(3)),
        other => panic!("{other:?}"),
    }
    wait_for(&env, "the reset", |o| matches!(o, Observation::ShutdownStart { .. })).await;
    assert_eq!(shutdown_reasons(&env), vec![ShutdownReason::Failure]);
    let again = invoke(&env, "{}").await.result;
    assert_eq!(again.status, Status::Success, "{again:?}");
    let phases = init_phases(&env);
    assert!(
        phases.len() == 2 && phases[0] == Phase::Init,
        "the reset made the next invoke initialise again: {phases:?}"
    );
    shutdown(&env).await;
    let reasons: Vec<Value> = events_of(&events)
        .into_iter()
        .filter(|e| e["event"] == "SHUTDOWN")
        .map(|e| e["shutdown_reason"].clone())
        .collect();
    assert_eq!(reasons, vec!["failure", "spindown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_crash_during_an_invoke_is_extension_crash() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    let rx = env.invoke_detached(tandem_emulator::InvokeRequest {
        payload: r#"{"sleep_ms":3000}"#.into(),
        ..Default::default()
    });
    wait_for(
        &env,
        "the INVOKE reached lext-events",
        |o| matches!(o, Observation::EventDelivered { extension, .. } if extension == "lext-events"),
    )
    .await;
    let pid = pid_of(&env, "lext-events");
    // SAFETY: kill has no memory-safety preconditions; pid is the extension's own group.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let out = within(DEADLINE, "the invoke result", rx).await.expect("answered").expect("not rejected").result;
    assert_eq!(out.error_type.as_deref(), Some("Extension.Crash"), "{out:?}");
    assert_eq!(out.status, Status::Error);
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let crashed = observed(
        &env,
        |o| matches!(o, Observation::ProcessExited { process, exit } if process == "lext-events" && exit.signal == Some(9)),
    );
    assert_eq!(crashed.len(), 1, "{:?}", env.observations());
    wait_for(&env, "the reset", |o| matches!(o, Observation::ShutdownStart { .. })).await;
    assert_eq!(shutdown_reasons(&env), vec![ShutdownReason::Failure]);
    let again = invoke(&env, "{}").await.result;
    assert_eq!(again.status, Status::Success, "{again:?}");
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_failure_is_reported_and_retried_as_a_suppressed_init() {
    let mut cfg = echo_config();
    cfg.env.push(("ECHO_INIT_FAIL".into(), "init exploded on purpose".into()));
    let env = start(cfg).await;
    assert_eq!(env.init_outcome(), Some((Status::Error, Some("Runtime.ExitError".to_owned()))));
    let report_line = |phase: &'static str| {
        let env = &env;
        move || {
            env.console_lines().into_iter().find(|l| {
                l.starts_with("INIT_REPORT Init Duration: ")
                    && l.ends_with(&format!("\tPhase: {phase}\tStatus: error\tError Type: Runtime.ExitError"))
            })
        }
    };
    poll(DEADLINE, "INIT_REPORT of the failed init", report_line("init")).await;
    assert!(env.console_lines().iter().any(|l| l == "init exploded on purpose"));
    let out = invoke(&env, "{}").await.result;
    assert_eq!(out.error_type.as_deref(), Some("Runtime.ExitError"), "{out:?}");
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(init_phases(&env), vec![Phase::Init, Phase::Invoke]);
    poll(DEADLINE, "INIT_REPORT of the suppressed init", report_line("invoke")).await;
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_runtime_init_error_is_reported_with_its_error_type() {
    let mut cfg = config(vec![example("functions/shell/bootstrap").to_string_lossy().into_owned()]);
    cfg.handler = "init-error".into();
    let env = start(cfg).await;
    assert_eq!(env.init_outcome(), Some((Status::Error, Some("Runtime.ShellInitError".to_owned()))));
    let out = invoke(&env, "{}").await.result;
    assert_eq!(out.error_type.as_deref(), Some("Runtime.ShellInitError"), "{out:?}");
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    let body = json(&out.payload);
    assert_eq!(body["errorType"], "Runtime.ShellInitError");
    assert!(body["errorMessage"].as_str().is_some_and(|m| m.contains("init failed on purpose")), "{body}");
    assert_eq!(init_phases(&env), vec![Phase::Init, Phase::Invoke]);
    shutdown(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_timeout_is_retried_at_the_first_invoke_under_the_function_timeout() {
    let mut cfg = echo_config();
    cfg.init_timeout = Duration::from_secs(1);
    cfg.timeout = Duration::from_secs(20);
    cfg.env.push(("ECHO_INIT_SLEEP_MS".into(), "2500".into()));
    let env = start(cfg).await;
    assert_eq!(env.init_outcome(), Some((Status::Timeout, Some("Sandbox.Timedout".to_owned()))));
    let init_end = observed(&env, |o| matches!(o, Observation::InitEnd { .. }));
    match &init_end[0].what {
        Observation::InitEnd { duration_ms, .. } => {
            assert!((990.0..2400.0).contains(duration_ms), "init was cut at its 1 s limit: {duration_ms}")
        }
        other => panic!("{other:?}"),
    }
    let out = invoke(&env, r#"{"after":"suppressed init"}"#).await.result;
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert_eq!(init_phases(&env), vec![Phase::Init, Phase::Invoke]);
    let end = wait_for(&env, "the invoke's end", |o| matches!(o, Observation::InvokeEnd { .. })).await;
    match &end.what {
        Observation::InvokeEnd { duration_ms, .. } => {
            assert!(*duration_ms >= 2490.0, "the suppressed init's time is part of the invoke: {duration_ms}")
        }
        other => panic!("{other:?}"),
    }
    let report = poll(DEADLINE, "the REPORT line", || {
        env.console_lines().into_iter().find(|l| l.starts_with(&format!("REPORT RequestId: {}", out.request_id)))
    })
    .await;
    assert!(!report.contains("Init Duration"), "{report}");
    shutdown(&env).await;
}

fn ticks(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_environment_runs_no_extension_code_between_invokes() {
    let dir = TempDir::new();
    let tick_file = dir.join("ticks");
    let tick_s = tick_file.to_string_lossy().into_owned();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1"), ("LEXT_TICK_FILE", &tick_s)]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    // Each invoke keeps the extension thawed for a while, so that it ticks then.
    invoke_ok(&env, r#"{"sleep_ms":200}"#).await;
    poll(DEADLINE, "frozen after the first invoke", || {
        let obs = env.observations();
        let end = obs.iter().position(|o| matches!(o.what, Observation::InvokeEnd { .. }))?;
        obs[end..].iter().any(|o| matches!(o.what, Observation::Frozen)).then_some(())
    })
    .await;
    // An idle period: the extension's ticker must not run during it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    invoke_ok(&env, r#"{"sleep_ms":200}"#).await;
    shutdown(&env).await;

    let ticks = ticks(&tick_file);
    let windows: Vec<(u64, u64)> =
        frozen_windows(&env).into_iter().filter(|(f, t)| *t != u64::MAX && t - f >= 300).collect();
    assert!(!windows.is_empty(), "the idle period was spent frozen: {:?}", frozen_windows(&env));
    for (frozen, thawed) in &windows {
        let inside: Vec<u64> = ticks.iter().copied().filter(|t| *t > frozen + 5 && *t + 5 < *thawed).collect();
        assert!(inside.is_empty(), "ticks while frozen ({frozen}..{thawed}): {inside:?}");
        assert!(ticks.iter().any(|t| t <= frozen), "ticks before {frozen}");
        assert!(ticks.iter().any(|t| t >= thawed), "ticks after {thawed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_freeze_extension_code_keeps_running_between_invokes() {
    let dir = TempDir::new();
    let tick_file = dir.join("ticks");
    let tick_s = tick_file.to_string_lossy().into_owned();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1"), ("LEXT_TICK_FILE", &tick_s)]);
    let mut cfg = echo_config();
    cfg.freeze = false;
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    invoke(&env, "{}").await;
    let first_end =
        wait_for(&env, "the first invoke's end", |o| matches!(o, Observation::InvokeEnd { .. })).await.epoch_ms;
    tokio::time::sleep(Duration::from_millis(700)).await;
    invoke(&env, "{}").await;
    shutdown(&env).await;
    assert!(observed(&env, |o| matches!(o, Observation::Frozen)).is_empty(), "no freeze");
    let second_start = observed(&env, |o| matches!(o, Observation::InvokeStart { .. }))[1].epoch_ms;
    let idle: Vec<u64> = ticks(&tick_file).into_iter().filter(|t| *t > first_end && *t < second_start).collect();
    assert!(idle.len() >= 5, "the ticker ran between {first_end} and {second_start} (every 20 ms): {idle:?}");
}

fn signals(env: &tandem_emulator::Environment) -> Vec<(String, Signal)> {
    env.observations()
        .into_iter()
        .filter_map(|o| match o.what {
            Observation::Signalled { process, signal } => Some((process, signal)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_ignoring_shutdown_is_killed_at_the_deadline() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_IGNORE_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    invoke(&env, "{}").await;
    let t0 = Instant::now();
    shutdown(&env).await;
    let took = t0.elapsed();
    let start_obs = observed(&env, |o| matches!(o, Observation::ShutdownStart { .. }));
    let (reason, deadline_ms, started_ms) = match &start_obs[0].what {
        Observation::ShutdownStart { reason, deadline_ms } => (reason.clone(), *deadline_ms, start_obs[0].epoch_ms),
        other => panic!("{other:?}"),
    };
    assert_eq!(reason, ShutdownReason::Spindown);
    let budget = deadline_ms - started_ms;
    assert!((1995..=2005).contains(&budget), "2 s budget with an external extension: {budget}");
    assert!(
        took >= Duration::from_millis(1990) && took < Duration::from_secs(10),
        "the shutdown waited for the deadline, then killed: {took:?}"
    );
    let complete = observed(&env, |o| matches!(o, Observation::ShutdownComplete));
    assert!(complete[0].epoch_ms + 2 >= deadline_ms);
    let sig = signals(&env);
    assert_eq!(sig.first(), Some(&("runtime".to_owned(), Signal::Term)), "the runtime gets SIGTERM first: {sig:?}");
    assert!(sig.contains(&("lext-events".to_owned(), Signal::Kill)), "{sig:?}");
    let killed = observed(
        &env,
        |o| matches!(o, Observation::ProcessExited { process, exit } if process == "lext-events" && exit.signal == Some(9)),
    );
    assert_eq!(killed.len(), 1, "{:?}", env.observations());
    let shutdown_event =
        events_of(&events).into_iter().find(|e| e["event"] == "SHUTDOWN").expect("the extension received SHUTDOWN");
    assert_eq!(shutdown_event["shutdown_reason"], "spindown");
    assert_eq!(shutdown_event["deadline_ms"].as_u64(), Some(deadline_ms));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_exiting_at_shutdown_is_not_waited_for() {
    let dir = TempDir::new();
    let events = Ext::lext(&dir, "lext-events", &[("LEXT_EXIT_ON_SHUTDOWN", "1")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![events.path()];
    let env = start(cfg).await;
    invoke(&env, "{}").await;
    let t0 = Instant::now();
    shutdown(&env).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "nothing to wait for once the extension exited: {took:?}");
    let sig = signals(&env);
    assert_eq!(sig.first(), Some(&("runtime".to_owned(), Signal::Term)), "{sig:?}");
    assert!(!sig.iter().any(|(p, _)| p == "lext-events"), "the extension was not signalled: {sig:?}");
    let exit = observed(&env, |o| matches!(o, Observation::ProcessExited { process, .. } if process == "lext-events"));
    match &exit[..] {
        [o] => match &o.what {
            Observation::ProcessExited { exit, .. } => assert_eq!(exit.code, Some(0)),
            other => panic!("{other:?}"),
        },
        other => panic!("one exit of lext-events: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_without_extensions_kills_the_runtime_at_once() {
    let env = start(echo_config()).await;
    invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    let start_obs = observed(&env, |o| matches!(o, Observation::ShutdownStart { .. }));
    match &start_obs[..] {
        [o] => match &o.what {
            Observation::ShutdownStart { reason, deadline_ms } => {
                assert_eq!(*reason, ShutdownReason::Spindown);
                assert!(deadline_ms.abs_diff(o.epoch_ms) <= 1, "a budget of 0 ms without extensions");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(signals(&env), vec![("runtime".to_owned(), Signal::Kill)], "no SIGTERM without extensions");
}

/// An external extension in bash and curl that registers for INVOKE only.
const INVOKE_ONLY_EXT: &str = r#"#!/usr/bin/env bash
set -euo pipefail
api="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
id="$(curl -sS --noproxy '*' -D - -o /dev/null -X POST "$api/register" \
    -H "Lambda-Extension-Name: $(basename "$0")" --data-binary '{"events":["INVOKE"]}' |
    awk -F': *' 'tolower($1) == "lambda-extension-identifier" { print $2 }' | tr -d '\r')"
[[ -n "$id" ]] || { echo "invoke-only: no identifier" >&2; exit 1; }
while true; do
    curl -sS --noproxy '*' -o /dev/null -H "Lambda-Extension-Identifier: $id" "$api/event/next"
    echo "invoke-only got an event"
done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_not_subscribed_to_shutdown_is_killed_at_once() {
    let dir = TempDir::new();
    let ext = dir.script("invoke-only", INVOKE_ONLY_EXT);
    let mut cfg = echo_config();
    cfg.extensions = vec![ext];
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(Status::Success), "{:?}", env.console_lines());
    invoke_ok(&env, "{}").await;
    let t0 = Instant::now();
    shutdown(&env).await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "no SHUTDOWN to wait for: killed at once, not at the deadline: {took:?}"
    );
    let sig = signals(&env);
    assert!(sig.contains(&("invoke-only".to_owned(), Signal::Kill)), "{sig:?}");
    let killed = observed(
        &env,
        |o| matches!(o, Observation::ProcessExited { process, exit } if process == "invoke-only" && exit.signal == Some(9)),
    );
    assert_eq!(killed.len(), 1, "{:?}", env.observations());
}

/// Two environments side by side (as `cargo nextest` runs tests, or a user runs two
/// emulators): one resetting must keep its resources while the other starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_side_by_side_keep_their_own_cgroups() {
    let a = start(echo_config()).await;
    let crashed = invoke(&a, r#"{"exit":1}"#).await.result;
    assert_eq!(crashed.error_type.as_deref(), Some("Runtime.ExitError"));
    wait_for(&a, "the reset of A", |o| matches!(o, Observation::ShutdownStart { .. })).await;
    // A is between instances (no process alive) while B starts.
    poll(DEADLINE, "A's processes gone", || {
        observed(&a, |o| matches!(o, Observation::ProcessExited { .. })).first().map(|_| ())
    })
    .await;
    let b = start(echo_config()).await;
    assert_eq!(b.init_outcome().map(|o| o.0), Some(Status::Success));
    let again = invoke(&a, "{}").await.result;
    assert_eq!(
        again.status,
        Status::Success,
        "A re-initialises after B started: {}",
        String::from_utf8_lossy(&again.payload)
    );
    shutdown(&a).await;
    shutdown(&b).await;
}
