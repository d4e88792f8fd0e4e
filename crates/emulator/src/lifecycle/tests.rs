//! The lifecycle driven by hand: no sockets, no processes, a synthetic clock.

use super::*;
use tandem_wire::subscription::Api;
use tandem_wire::telemetry::types as ty;
use tandem_wire::{ErrorResponse, RegisterResponse};

struct H {
    lc: Lifecycle,
    now: Instant,
    next_token: Token,
}

fn cfg(exts: &[&str]) -> LifecycleConfig {
    LifecycleConfig {
        function_name: "fn".into(),
        function_version: "$LATEST".into(),
        handler: "h.handler".into(),
        account_id: "012345678912".into(),
        region: "us-east-1".into(),
        memory_mb: 128,
        timeout: Duration::from_secs(3),
        init_timeout: INIT_TIMEOUT,
        freeze: true,
        extensions: exts.iter().map(|s| s.to_string()).collect(),
        queue_limit: 2,
    }
}

impl H {
    fn new(exts: &[&str]) -> Self {
        H::at(exts, Clock::new(), Instant::now(), 1)
    }

    /// A lifecycle whose time base, start time and identifier seed are given.
    fn at(exts: &[&str], clock: Clock, now: Instant, id_seed: u64) -> Self {
        H { lc: Lifecycle::new(cfg(exts), clock, id_seed), now, next_token: 1 }
    }

    fn ctx(&self) -> Ctx {
        Ctx { now: self.now }
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        let ctx = self.ctx();
        self.lc.handle(ctx, input)
    }

    fn api(&mut self, call: ApiCall) -> (Token, Vec<Action>) {
        let token = self.next_token;
        self.next_token += 1;
        (token, self.input(Input::Api { token, call }))
    }

    fn register(&mut self, name: &str, events: &str) -> (Reply, String) {
        let (t, a) = self.api(ApiCall::ExtRegister {
            name: Some(name.into()),
            body: Bytes::from(format!(r#"{{"events":{events}}}"#)),
            accept_account_id: false,
        });
        let r = reply(&a, t).expect("register answered");
        let id = r
            .headers
            .iter()
            .find(|(k, _)| *k == headers::EXTENSION_IDENTIFIER)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (r, id)
    }

    fn next(&mut self, id: &str) -> (Token, Vec<Action>) {
        self.api(ApiCall::ExtNext { id: Some(id.into()) })
    }

    fn invoke(&mut self, rid: &str) -> (Token, Vec<Action>) {
        let token = self.next_token;
        self.next_token += 1;
        let a = self.input(Input::Invoke {
            token,
            request_id: rid.into(),
            request: InvokeRequest { payload: Bytes::from_static(b"{\"k\":1}"), ..Default::default() },
        });
        (token, a)
    }

    fn respond(&mut self, rid: &str, body: &'static [u8]) -> (Token, Vec<Action>) {
        let now = self.now;
        self.api(ApiCall::RuntimeResponse {
            request_id: rid.into(),
            body: Bytes::from_static(body),
            first_byte: now,
            last_byte: now,
            error_trailer: None,
        })
    }

    /// A ready environment with one external extension `ext` (INVOKE+SHUTDOWN).
    fn ready_with_ext() -> (H, String, Token) {
        let mut h = H::new(&["ext"]);
        h.input(Input::Start);
        let (_, id) = h.register("ext", r#"["INVOKE","SHUTDOWN"]"#);
        let (ext_next, _) = h.next(&id);
        let (_, a) = h.api(ApiCall::RuntimeNext);
        assert!(records(&a).contains(&ty::INIT_REPORT.to_string()), "{a:?}");
        assert_eq!(h.lc.phase(), PhaseState::Ready);
        (h, id, ext_next)
    }
}

fn reply(actions: &[Action], token: Token) -> Option<Reply> {
    actions.iter().find_map(|a| match a {
        Action::Reply { token: t, reply } if *t == token => Some(reply.clone()),
        _ => None,
    })
}

fn error_type(r: &Reply) -> String {
    serde_json::from_slice::<ErrorResponse>(&r.body).map(|e| e.error_type).unwrap_or_default()
}

fn records(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.record.type_name().to_owned()),
            _ => None,
        })
        .collect()
}

fn record<'a>(actions: &'a [Action], kind: &str) -> &'a Record {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Emit(e) if e.record.type_name() == kind => Some(&e.record),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} in {actions:?}"))
}

fn has(actions: &[Action], pred: impl Fn(&Action) -> bool) -> bool {
    actions.iter().any(pred)
}

/// The invocation timeout timer the actions set.
fn invoke_timer(actions: &[Action]) -> TimerId {
    actions
        .iter()
        .find_map(|x| match x {
            Action::Timer { id: id @ TimerId::Invoke(_), .. } => Some(*id),
            _ => None,
        })
        .expect("an invoke timer")
}

#[test]
fn cold_init_starts_extensions_then_runtime_and_freezes_when_all_wait() {
    let mut h = H::new(&["a", "b"]);
    let a = h.input(Input::Start);
    assert_eq!(records(&a), vec![ty::INIT_START]);
    let spawns: Vec<_> = a
        .iter()
        .filter_map(|x| match x {
            Action::Spawn { proc } => Some(proc.kind),
            _ => None,
        })
        .collect();
    assert_eq!(spawns, vec![ProcKind::Extension(0), ProcKind::Extension(1)]);

    let (r, a_id) = h.register("a", r#"["INVOKE"]"#);
    assert_eq!(r.status, 200);
    // The runtime waits until every launched extension has registered.
    assert!(!has(&h.input(Input::Timer(TimerId::Reap(99))), |x| matches!(x, Action::Spawn { .. })));
    let (t, acts) = h.api(ApiCall::ExtRegister { name: Some("b".into()), body: Bytes::new(), accept_account_id: true });
    let body: RegisterResponse = serde_json::from_slice(&reply(&acts, t).unwrap().body).unwrap();
    assert_eq!(body.account_id.as_deref(), Some("012345678912"));
    assert_eq!(body.handler, "h.handler");
    assert!(has(&acts, |x| matches!(x, Action::Spawn { proc } if proc.kind == ProcKind::Runtime)));
    let b_id = h.lc.extensions()[1].id.clone();

    let (t, acts) = h.next(&a_id);
    assert!(reply(&acts, t).is_none(), "next blocks");
    assert_eq!(records(&acts), vec![ty::EXTENSION]);
    let (_, acts) = h.api(ApiCall::RuntimeNext);
    assert_eq!(records(&acts), vec![ty::INIT_RUNTIME_DONE]);
    assert_eq!(h.lc.phase(), PhaseState::Initializing, "b has not called next");
    // Registration closes at the runtime's first next.
    let (r, _) = h.register("late", "[]");
    assert_eq!(error_type(&r), et::EXTENSION_REGISTRATION_CLOSED);
    h.tick(5);
    let (_, acts) = h.next(&b_id);
    assert_eq!(records(&acts), vec![ty::EXTENSION, ty::INIT_REPORT]);
    assert!(has(&acts, |x| matches!(x, Action::Freeze)));
    assert_eq!(h.lc.phase(), PhaseState::Ready);
}

#[test]
fn invoke_delivers_events_and_reports_after_the_last_extension_next() {
    let (mut h, id, ext_next) = H::ready_with_ext();
    h.tick(100);
    let (caller, a) = h.invoke("r1");
    assert!(has(&a, |x| matches!(x, Action::Thaw)));
    assert_eq!(records(&a), vec![ty::START]);
    let ev = reply(&a, ext_next).expect("INVOKE delivered");
    let ev: NextEvent = serde_json::from_slice(&ev.body).unwrap();
    match ev {
        NextEvent::Invoke(i) => {
            assert_eq!(i.request_id, "r1");
            assert_eq!(i.invoked_function_arn, "arn:aws:lambda:us-east-1:012345678912:function:fn");
            assert!(i.tracing.unwrap().value.starts_with("Root=1-"));
        }
        other => panic!("{other:?}"),
    }
    let runtime_reply = a
        .iter()
        .find_map(|x| match x {
            Action::Reply { reply, .. } if reply.body == Bytes::from_static(b"{\"k\":1}") => Some(reply.clone()),
            _ => None,
        })
        .expect("event to runtime");
    let hdr = |k: &str| runtime_reply.headers.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(hdr(headers::RUNTIME_REQUEST_ID).as_deref(), Some("r1"));
    assert!(hdr(headers::RUNTIME_DEADLINE_MS).is_some() && hdr(headers::RUNTIME_TRACE_ID).is_some());

    h.tick(10);
    let (t, a) = h.respond("r1", b"\"ok\"");
    assert_eq!(reply(&a, t).unwrap().status, 202);
    let result = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((result.payload.as_ref(), result.function_error.clone()), (&b"\"ok\""[..], None));
    // A second answer for the same invocation is a state error.
    let (t, a) = h.respond("r1", b"x");
    assert_eq!(
        (reply(&a, t).unwrap().status, error_type(&reply(&a, t).unwrap())),
        (403, et::INVALID_STATE_TRANSITION.to_string())
    );
    h.tick(2);
    let (_, a) = h.api(ApiCall::RuntimeNext);
    match record(&a, ty::RUNTIME_DONE) {
        Record::RuntimeDone(r) => {
            assert_eq!(r.status, Status::Success);
            assert_eq!(r.metrics.unwrap().produced_bytes, Some(4));
            let names: Vec<_> = r.spans.as_ref().unwrap().iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, vec!["responseLatency", "responseDuration", "runtimeOverhead"]);
        }
        _ => unreachable!(),
    }
    assert!(!records(&a).contains(&ty::REPORT.to_string()), "the extension has not called next");
    h.tick(7);
    let (_, a) = h.next(&id);
    match record(&a, ty::REPORT) {
        Record::Report(r) => {
            assert_eq!(r.metrics.duration_ms, 19.0);
            assert_eq!(r.metrics.billed_duration_ms, 19);
            assert!(r.metrics.init_duration_ms.is_some(), "cold start");
            let span = &r.spans.as_ref().unwrap()[0];
            assert_eq!((span.name.as_str(), span.duration_ms), ("extensionOverhead", 7.0));
        }
        _ => unreachable!(),
    }
    assert!(has(&a, |x| matches!(x, Action::Freeze)));
    // The second invocation is warm.
    let (_, a) = h.invoke("r2");
    let ext_next2 = h.next_token - 2; // the extension's parked next from above
    assert!(reply(&a, ext_next2).is_some());
    h.respond("r2", b"1");
    h.api(ApiCall::RuntimeNext);
    let (_, a) = h.next(&id);
    match record(&a, ty::REPORT) {
        Record::Report(r) => assert_eq!(r.metrics.init_duration_ms, None),
        _ => unreachable!(),
    }
}

#[test]
fn a_cold_start_bills_its_init_and_its_invoke_rounded_up_once() {
    let mut h = H::new(&[]);
    h.input(Input::Start);
    h.now += Duration::from_micros(12_400);
    h.api(ApiCall::RuntimeNext);
    let report = |h: &mut H, rid: &str, micros: u64| {
        h.invoke(rid);
        h.now += Duration::from_micros(micros);
        h.respond(rid, b"1");
        match record(&h.api(ApiCall::RuntimeNext).1, ty::REPORT) {
            Record::Report(r) => r.metrics,
            _ => unreachable!(),
        }
    };
    let cold = report(&mut h, "r1", 5_300);
    assert_eq!((cold.duration_ms, cold.init_duration_ms), (5.3, Some(12.4)));
    assert_eq!(cold.billed_duration_ms, 18, "ceil(5.3 + 12.4), not ceil(5.3) nor ceil(5.3) + ceil(12.4)");
    let warm = report(&mut h, "r2", 2_100);
    assert_eq!((warm.init_duration_ms, warm.billed_duration_ms), (None, 3));
}

#[test]
fn register_error_matrix() {
    let mut h = H::new(&["ext"]);
    h.input(Input::Start);
    let cases: Vec<(Option<&str>, &str, &str)> = vec![
        (None, "{}", et::EXTENSION_INVALID_NAME),
        (Some(""), "{}", et::EXTENSION_INVALID_NAME),
        (Some("x"), "{bad json", et::INVALID_REQUEST_FORMAT),
        (Some("x"), r#"{"events":["INVOKE"],"configurationKeys":["a"]}"#, et::INVALID_REQUEST_FORMAT),
        (Some("x"), r#"{"events":["BOOT"]}"#, et::EXTENSION_INVALID_EVENT_TYPE),
        (Some("internal"), r#"{"events":["SHUTDOWN"]}"#, et::EXTENSION_INVALID_EVENT_TYPE),
    ];
    for (name, body, want) in cases {
        let (t, a) = h.api(ApiCall::ExtRegister {
            name: name.map(Into::into),
            body: Bytes::from(body),
            accept_account_id: false,
        });
        let r = reply(&a, t).unwrap();
        assert_eq!((r.status, error_type(&r)), (403, want.to_string()), "{name:?} {body}");
    }
    let (r, _) = h.register("ext", r#"["INVOKE"]"#);
    assert_eq!(r.status, 200);
    let (r, _) = h.register("ext", r#"["INVOKE"]"#);
    assert_eq!(error_type(&r), et::EXTENSION_INVALID_STATE, "duplicate name");
    for i in 0..9 {
        let (r, _) = h.register(&format!("internal-{i}"), r#"["INVOKE"]"#);
        assert_eq!(r.status, 200);
    }
    let (r, _) = h.register("eleventh", "[]");
    assert_eq!(error_type(&r), et::EXTENSION_TOO_MANY);
}

#[test]
fn identifier_and_state_errors() {
    let mut h = H::new(&["ext"]);
    h.input(Input::Start);
    let (_, id) = h.register("ext", r#"["INVOKE","SHUTDOWN"]"#);
    for (hdr, want) in [
        (None, et::EXTENSION_MISSING_ID),
        (Some("not-a-uuid"), et::EXTENSION_INVALID_ID),
        (Some("6f1f7a3c-8b7e-4c1e-9d0a-4b5a2c3d4e5f"), et::EXTENSION_UNKNOWN_ID),
    ] {
        let (t, a) = h.api(ApiCall::ExtNext { id: hdr.map(Into::into) });
        assert_eq!(error_type(&reply(&a, t).unwrap()), want);
        let (t, a) = h.api(ApiCall::Subscribe { api: Api::Telemetry, id: hdr.map(Into::into), body: Bytes::new() });
        assert_eq!(error_type(&reply(&a, t).unwrap()), want);
    }
    let (t, a) = h.api(ApiCall::ExtInitError { id: Some(id.clone()), error_type: None, body: Bytes::new() });
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::EXTENSION_MISSING_HEADER);
    let (t, a) = h.api(ApiCall::ExtExitError { id: Some(id.clone()), error_type: None, body: Bytes::new() });
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::EXTENSION_MISSING_HEADER);
    h.next(&id);
    let (t, a) = h.next(&id);
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::EXTENSION_INVALID_STATE, "next twice");
    let (t, a) = h.api(ApiCall::ExtInitError {
        id: Some(id.clone()),
        error_type: Some("Extension.X".into()),
        body: Bytes::new(),
    });
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::EXTENSION_INVALID_STATE, "init/error after ready");
}

#[test]
fn subscription_rules() {
    let mut h = H::new(&["ext"]);
    h.input(Input::Start);
    let (_, id) = h.register("ext", r#"["INVOKE"]"#);
    let sub = |port: u32| {
        Bytes::from(format!(
            r#"{{"schemaVersion":"2022-12-13","types":["platform","function"],"destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:{port}"}}}}"#
        ))
    };
    let (t, a) = h.api(ApiCall::Subscribe { api: Api::Telemetry, id: Some(id.clone()), body: sub(9001) });
    let r = reply(&a, t).unwrap();
    assert_eq!((r.status, error_type(&r)), (400, et::TELEMETRY_VALIDATION.to_string()));
    let (t, a) =
        h.api(ApiCall::Subscribe { api: Api::Telemetry, id: Some(id.clone()), body: Bytes::from_static(b"[") });
    assert_eq!(reply(&a, t).unwrap().status, 400);
    let (t, a) = h.api(ApiCall::Subscribe { api: Api::Telemetry, id: Some(id.clone()), body: sub(4243) });
    assert_eq!(reply(&a, t).unwrap().status, 200);
    assert!(has(
        &a,
        |x| matches!(x, Action::Subscribe { extension, subscription } if extension == "ext" && subscription.port == 4243)
    ));
    assert_eq!(records(&a), vec![ty::TELEMETRY_SUBSCRIPTION]);
    let (t, a) = h.api(ApiCall::Subscribe { api: Api::Logs, id: Some(id.clone()), body: sub(4244) });
    let r = reply(&a, t).unwrap();
    assert_eq!((r.status, error_type(&r)), (403, et::LOGS_CONFLICT.to_string()));
    h.next(&id);
    h.api(ApiCall::RuntimeNext);
    assert_eq!(h.lc.phase(), PhaseState::Ready);
    let (t, a) = h.api(ApiCall::Subscribe { api: Api::Telemetry, id: Some(id), body: sub(4243) });
    let r = reply(&a, t).unwrap();
    assert_eq!((r.status, error_type(&r)), (403, et::TELEMETRY_SUBSCRIPTION_CLOSED.to_string()));
}

#[test]
fn runtime_api_errors() {
    let (mut h, _id, _) = H::ready_with_ext();
    let (t, a) = h.respond("nope", b"1");
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::INVALID_REQUEST_ID);
    let (t, a) = h.api(ApiCall::RuntimeInitError { error_type: Some("X".into()), body: Bytes::new() });
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::INVALID_STATE_TRANSITION);
    let (caller, _) = h.invoke("r1");
    let (t, a) = h.respond("other", b"1");
    assert_eq!(reply(&a, t).unwrap().status, 400);
    let (t, a) = h.api(ApiCall::RuntimeNext);
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::INVALID_STATE_TRANSITION, "next before answering");
    let (t, a) = h.api(ApiCall::RuntimeResponseTooLarge { request_id: "r1".into(), size: 7 << 20, limit: 6 << 20 });
    let r = reply(&a, t).unwrap();
    assert_eq!((r.status, error_type(&r)), (413, et::REQUEST_ENTITY_TOO_LARGE.to_string()));
    let res = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(res.error_type.as_deref(), Some(et::FUNCTION_RESPONSE_TOO_LARGE));
    assert_eq!(res.function_error.as_deref(), Some("Unhandled"));
    let (_, a) = h.api(ApiCall::RuntimeNext);
    match record(&a, ty::RUNTIME_DONE) {
        Record::RuntimeDone(r) => assert_eq!(
            (r.status.clone(), r.error_type.as_deref()),
            (Status::Error, Some(et::FUNCTION_RESPONSE_TOO_LARGE))
        ),
        _ => unreachable!(),
    }
}

#[test]
fn function_error_is_unhandled_with_the_posted_type() {
    let (mut h, id, _) = H::ready_with_ext();
    let (caller, _) = h.invoke("r1");
    let now = h.now;
    let (t, a) = h.api(ApiCall::RuntimeError {
        request_id: "r1".into(),
        error_type: Some("MyError".into()),
        body: Bytes::from_static(br#"{"errorMessage":"boom","errorType":"MyError","stackTrace":[]}"#),
        received: now,
    });
    assert_eq!(reply(&a, t).unwrap().status, 202);
    let res = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(res.function_error.as_deref(), Some("Unhandled"));
    assert!(String::from_utf8_lossy(&res.payload).contains("boom"));
    h.api(ApiCall::RuntimeNext);
    let (_, a) = h.next(&id);
    match record(&a, ty::REPORT) {
        Record::Report(r) => {
            assert_eq!((r.status.clone(), r.error_type.as_deref()), (Some(Status::Error), Some("MyError")))
        }
        _ => unreachable!(),
    }
    assert_eq!(h.lc.phase(), PhaseState::Ready, "a handled function error does not reset");
}

#[test]
fn timeout_answers_the_caller_reports_and_resets_with_reason_timeout() {
    let (mut h, id, _) = H::ready_with_ext();
    let (caller, a) = h.invoke("r1");
    let timer = invoke_timer(&a);
    h.next(&id); // the extension is done early and waits
    h.tick(3000);
    let a = h.input(Input::Timer(timer));
    let res = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(res.status, Status::Timeout);
    assert!(String::from_utf8_lossy(&res.payload).contains("Task timed out after 3.00 seconds"));
    assert_eq!(records(&a), vec![ty::RUNTIME_DONE, ty::REPORT]);
    match record(&a, ty::REPORT) {
        Record::Report(r) => {
            assert_eq!((r.status.clone(), r.error_type.as_deref()), (Some(Status::Timeout), Some(et::SANDBOX_TIMEOUT)))
        }
        _ => unreachable!(),
    }
    // The runtime is killed (no SIGTERM on a reset); SHUTDOWN follows as soon as it is gone.
    assert!(has(&a, |x| matches!(x, Action::Signal { proc, signal: Signal::Kill } if proc.kind == ProcKind::Runtime)));
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: None, signal: Some(9), oom: false },
    });
    let shutdown = a
        .iter()
        .find_map(|x| match x {
            Action::Reply { reply, .. } => serde_json::from_slice::<NextEvent>(&reply.body).ok(),
            _ => None,
        })
        .unwrap();
    match shutdown {
        NextEvent::Shutdown(s) => assert_eq!(s.shutdown_reason, ShutdownReason::Timeout),
        other => panic!("{other:?}"),
    }
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Extension(0) },
        exit: ExitInfo { code: Some(0), ..Default::default() },
    });
    assert!(!has(&a, |x| matches!(x, Action::ShutdownComplete)));
    assert_eq!(h.lc.phase(), PhaseState::NeedsInit);
    // The next invocation re-initialises, as a suppressed init (phase invoke).
    let (_, a) = h.invoke("r2");
    match record(&a, ty::INIT_START) {
        Record::InitStart(s) => assert_eq!(s.phase, tm::Phase::Invoke),
        _ => unreachable!(),
    }
}

#[test]
fn runtime_exit_and_extension_crash_fail_the_invoke() {
    for (kind, want) in [(ProcKind::Runtime, et::RUNTIME_EXIT_ERROR), (ProcKind::Extension(0), et::EXTENSION_CRASH)] {
        let (mut h, _id, _) = H::ready_with_ext();
        let (caller, _) = h.invoke("r1");
        let a = h.input(Input::Exited {
            proc: ProcId { generation: 1, kind },
            exit: ExitInfo { code: Some(1), ..Default::default() },
        });
        let res = a
            .iter()
            .find_map(|x| match x {
                Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(res.error_type.as_deref(), Some(want));
        match record(&a, ty::REPORT) {
            Record::Report(r) => assert_eq!(r.error_type.as_deref(), Some(want)),
            _ => unreachable!(),
        }
        assert_eq!(h.lc.phase(), PhaseState::TearingDown);
    }
    // Out of memory wins over the exit's own meaning.
    let (mut h, _id, _) = H::ready_with_ext();
    let (caller, _) = h.invoke("r1");
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: None, signal: Some(9), oom: true },
    });
    let res = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(res.error_type.as_deref(), Some(et::RUNTIME_OUT_OF_MEMORY));
}

#[test]
fn init_failure_is_reported_then_retried_at_the_first_invoke() {
    let mut h = H::new(&[]);
    h.input(Input::Start);
    let (t, a) = h.api(ApiCall::RuntimeInitError {
        error_type: Some("Runtime.ImportModuleError".into()),
        body: Bytes::from_static(br#"{"errorMessage":"no module"}"#),
    });
    assert_eq!(reply(&a, t).unwrap().status, 202);
    assert_eq!(records(&a), vec![ty::INIT_RUNTIME_DONE, ty::INIT_REPORT]);
    match record(&a, ty::INIT_REPORT) {
        Record::InitReport(r) => {
            assert_eq!((r.status.clone(), r.error_type.as_deref()), (Status::Error, Some("Runtime.ImportModuleError")))
        }
        _ => unreachable!(),
    }
    // No extension: no SIGTERM, the runtime is killed.
    assert!(has(&a, |x| matches!(x, Action::Signal { signal: Signal::Kill, .. })));
    h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: Some(1), ..Default::default() },
    });
    assert_eq!(h.lc.phase(), PhaseState::NeedsInit);
    // First invoke: init again, phase invoke, then the invocation itself.
    let (caller, a) = h.invoke("r1");
    assert_eq!(records(&a), vec![ty::INIT_START]);
    assert!(has(&a, |x| matches!(x, Action::Spawn { proc } if proc.generation == 2 && proc.kind == ProcKind::Runtime)));
    h.tick(50);
    let (_, a) = h.api(ApiCall::RuntimeNext);
    assert_eq!(records(&a), vec![ty::INIT_RUNTIME_DONE, ty::INIT_REPORT, ty::START]);
    let (_, a) = h.respond("r1", b"1");
    let answered = a.iter().any(
        |x| matches!(x, Action::InvokeResult { token, result } if *token == caller && result.function_error.is_none()),
    );
    assert!(answered, "the invocation that waited for the init succeeds: {a:?}");
    let (_, a) = h.api(ApiCall::RuntimeNext);
    match record(&a, ty::REPORT) {
        Record::Report(r) => {
            assert_eq!(r.metrics.init_duration_ms, None, "a suppressed init is part of the duration");
            assert_eq!(r.metrics.duration_ms, 50.0);
        }
        _ => unreachable!(),
    }
}

#[test]
fn suppressed_init_failure_fails_the_waiting_invoke() {
    let mut h = H::new(&[]);
    h.input(Input::Start);
    h.api(ApiCall::RuntimeInitError { error_type: Some("Runtime.Boom".into()), body: Bytes::new() });
    h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: Some(1), ..Default::default() },
    });
    let (caller, _) = h.invoke("r1");
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 2, kind: ProcKind::Runtime },
        exit: ExitInfo { code: Some(2), ..Default::default() },
    });
    let res = a
        .iter()
        .find_map(|x| match x {
            Action::InvokeResult { token, result } if *token == caller => Some(result.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(res.error_type.as_deref(), Some(et::RUNTIME_EXIT_ERROR));
    assert_eq!(records(&a), vec![ty::INIT_RUNTIME_DONE, ty::INIT_REPORT, ty::START, ty::RUNTIME_DONE, ty::REPORT]);
}

#[test]
fn init_timeout_and_extension_failures_during_init() {
    let mut h = H::new(&["ext"]);
    let a = h.input(Input::Start);
    let timer = a
        .iter()
        .find_map(|x| match x {
            Action::Timer { id: id @ TimerId::Init(_), at } => Some((*id, *at)),
            _ => None,
        })
        .unwrap();
    assert_eq!(timer.1 - h.now, INIT_TIMEOUT);
    let a = h.input(Input::Timer(timer.0));
    match record(&a, ty::INIT_REPORT) {
        Record::InitReport(r) => assert_eq!(r.status, Status::Timeout),
        _ => unreachable!(),
    }
    let mut h = H::new(&["ext"]);
    h.input(Input::Start);
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Extension(0) },
        exit: ExitInfo { code: Some(0), ..Default::default() },
    });
    match record(&a, ty::INIT_REPORT) {
        Record::InitReport(r) => assert_eq!(r.error_type.as_deref(), Some(et::EXTENSION_CRASH)),
        _ => unreachable!(),
    }
    let mut h = H::new(&["ext"]);
    h.input(Input::Start);
    let (_, id) = h.register("ext", r#"["INVOKE"]"#);
    let (t, a) = h.api(ApiCall::ExtInitError {
        id: Some(id.clone()),
        error_type: Some("Extension.ConfigInvalid".into()),
        body: Bytes::new(),
    });
    assert_eq!(reply(&a, t).unwrap().status, 202);
    match record(&a, ty::INIT_REPORT) {
        Record::InitReport(r) => {
            assert_eq!(r.error_type.as_deref(), Some(et::EXTENSION_INIT_ERROR))
        }
        _ => unreachable!(),
    }
    let (t, a) = h.next(&id);
    assert_eq!(error_type(&reply(&a, t).unwrap()), et::EXTENSION_INVALID_STATE, "no call succeeds after init/error");
}

#[test]
fn spindown_terms_the_runtime_then_sends_shutdown_and_kills_at_the_deadline() {
    let (mut h, _id, ext_next) = H::ready_with_ext();
    let a = h.input(Input::Shutdown);
    assert!(has(&a, |x| matches!(x, Action::Thaw)));
    assert!(has(&a, |x| matches!(x, Action::Signal { proc, signal: Signal::Term } if proc.kind == ProcKind::Runtime)));
    let deadline = a
        .iter()
        .find_map(|x| match x {
            Action::Timer { id: TimerId::TeardownDeadline(_), at } => Some(*at),
            _ => None,
        })
        .unwrap();
    assert_eq!(deadline - h.now, Duration::from_millis(2000));
    // The runtime ignores SIGTERM: killed after its grace.
    h.tick(300);
    let a = h.input(Input::Timer(TimerId::RuntimeGrace(1)));
    assert!(has(&a, |x| matches!(x, Action::Signal { proc, signal: Signal::Kill } if proc.kind == ProcKind::Runtime)));
    // SHUTDOWN at once, whatever telemetry is pending (no flush first).
    let ev: NextEvent = serde_json::from_slice(&reply(&a, ext_next).unwrap().body).unwrap();
    match ev {
        NextEvent::Shutdown(s) => {
            assert_eq!(s.shutdown_reason, ShutdownReason::Spindown);
            assert_eq!(s.deadline_ms, h.lc.clock.epoch_ms(deadline));
        }
        other => panic!("{other:?}"),
    }
    h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: None, signal: Some(9), oom: false },
    });
    // The extension ignores SHUTDOWN: killed at the deadline.
    h.tick(1700);
    let a = h.input(Input::Timer(TimerId::TeardownDeadline(1)));
    assert!(has(
        &a,
        |x| matches!(x, Action::Signal { proc, signal: Signal::Kill } if proc.kind == ProcKind::Extension(0))
    ));
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Extension(0) },
        exit: ExitInfo { code: None, signal: Some(9), oom: false },
    });
    assert!(has(&a, |x| matches!(x, Action::ShutdownComplete)));
    assert_eq!(h.lc.phase(), PhaseState::Done);
}

#[test]
fn shutdown_goes_out_as_soon_as_the_runtime_is_gone_and_telemetry_stops_at_the_deadline() {
    let (mut h, id, _) = H::ready_with_ext();
    // Telemetry is pending (the report of an invocation nobody received yet).
    h.invoke("r1");
    h.respond("r1", b"1");
    h.api(ApiCall::RuntimeNext);
    let (ext_next, a) = h.next(&id);
    assert!(records(&a).contains(&ty::REPORT.to_string()));
    let a = h.input(Input::Shutdown);
    assert!(reply(&a, ext_next).is_none(), "the runtime gets its SIGTERM grace first");
    h.tick(20);
    let a = h.input(Input::Exited {
        proc: ProcId { generation: 1, kind: ProcKind::Runtime },
        exit: ExitInfo { code: Some(0), ..Default::default() },
    });
    let ev: NextEvent = serde_json::from_slice(&reply(&a, ext_next).expect("SHUTDOWN sent").body).unwrap();
    assert!(matches!(ev, NextEvent::Shutdown(_)), "{ev:?}");
    assert!(!has(&a, |x| matches!(x, Action::StopTelemetry)), "telemetry keeps flowing after SHUTDOWN");
    h.tick(1980);
    let a = h.input(Input::Timer(TimerId::TeardownDeadline(1)));
    assert!(has(&a, |x| matches!(x, Action::StopTelemetry)), "deliveries end at the deadline");
    // A reset's deadline does not stop telemetry: the next instance's subscribers get it.
    let (mut h, id, _) = H::ready_with_ext();
    let (_, a) = h.invoke("r1");
    let timer = invoke_timer(&a);
    h.next(&id);
    h.tick(3000);
    h.input(Input::Timer(timer));
    h.tick(2000);
    let a = h.input(Input::Timer(TimerId::TeardownDeadline(1)));
    assert!(has(&a, |x| matches!(x, Action::Signal { signal: Signal::Kill, .. })));
    assert!(!has(&a, |x| matches!(x, Action::StopTelemetry)));
}

#[test]
fn shutdown_budget_is_zero_without_extensions_and_500_ms_with_internal_ones() {
    let mut h = H::new(&[]);
    h.input(Input::Start);
    h.api(ApiCall::RuntimeNext);
    let a = h.input(Input::Shutdown);
    assert!(has(&a, |x| matches!(x, Action::Signal { signal: Signal::Kill, .. })), "no SIGTERM without extensions");
    let mut h = H::new(&[]);
    h.input(Input::Start);
    let (_, id) = h.register("in-proc", r#"["INVOKE"]"#);
    assert!(!h.lc.extensions()[0].external);
    h.next(&id);
    h.api(ApiCall::RuntimeNext);
    let a = h.input(Input::Shutdown);
    let deadline = a
        .iter()
        .find_map(|x| match x {
            Action::Timer { id: TimerId::TeardownDeadline(_), at } => Some(*at),
            _ => None,
        })
        .unwrap();
    assert_eq!(deadline - h.now, Duration::from_millis(500));
    assert!(has(&a, |x| matches!(x, Action::Signal { signal: Signal::Term, .. })));
}

#[test]
fn queue_is_bounded_and_drained_in_order() {
    let (mut h, id, _) = H::ready_with_ext();
    let (_c1, _) = h.invoke("r1");
    let (_c2, a2) = h.invoke("r2");
    let (_c3, a3) = h.invoke("r3");
    assert!(a2.is_empty());
    assert!(a3.is_empty());
    let (c4, a4) = h.invoke("r4");
    assert!(has(
        &a4,
        |x| matches!(x, Action::Rejected { token, rejection: Rejection::TooManyRequests } if *token == c4)
    ));
    h.respond("r1", b"1");
    h.api(ApiCall::RuntimeNext);
    let (_, a) = h.next(&id);
    assert_eq!(records(&a), vec![ty::REPORT, ty::START]);
    match record(&a, ty::START) {
        Record::Start(s) => assert_eq!(s.request_id, "r2"),
        _ => unreachable!(),
    }
    assert!(!has(&a, |x| matches!(x, Action::Freeze)), "no freeze while work is queued");
}

#[test]
fn extension_not_subscribed_to_invoke_does_not_hold_the_invoke() {
    let mut h = H::new(&["quiet"]);
    h.input(Input::Start);
    let (_, id) = h.register("quiet", r#"["SHUTDOWN"]"#);
    let (parked, _) = h.next(&id);
    h.api(ApiCall::RuntimeNext);
    let (_, a) = h.invoke("r1");
    assert!(reply(&a, parked).is_none());
    h.respond("r1", b"1");
    let (_, a) = h.api(ApiCall::RuntimeNext);
    assert!(records(&a).contains(&ty::REPORT.to_string()));
    match record(&a, ty::REPORT) {
        Record::Report(r) => assert!(r.spans.is_none(), "no INVOKE subscriber, no extensionOverhead"),
        _ => unreachable!(),
    }
}

#[test]
fn stale_exits_of_an_old_generation_are_ignored() {
    let (mut h, _id, _) = H::ready_with_ext();
    let a =
        h.input(Input::Exited { proc: ProcId { generation: 0, kind: ProcKind::Runtime }, exit: ExitInfo::default() });
    assert!(a.is_empty());
    assert_eq!(h.lc.phase(), PhaseState::Ready);
}

#[test]
fn status_mapping_follows_lambda() {
    assert_eq!(status_for(et::SANDBOX_TIMEOUT), Status::Timeout);
    assert_eq!(status_for("Sandbox.Failure"), Status::Failure);
    assert_eq!(status_for(et::RUNTIME_EXIT_ERROR), Status::Error);
    assert_eq!(billed_ms(0.2), 1);
    assert_eq!(billed_ms(12.0), 12);
}

/// One scripted run: init with an extension, an invocation without a trace header (one
/// is minted), one with the caller's, a timeout and its reset, a suppressed init, and a
/// shutdown; every action of every step, as Debug text.
fn scripted_run(clock: Clock, start: Instant, id_seed: u64) -> Vec<String> {
    let mut h = H::at(&["ext"], clock, start, id_seed);
    let mut log = Vec::new();
    let mut keep = |a: Vec<Action>| log.extend(a.iter().map(|x| format!("{x:?}")));
    keep(h.input(Input::Start));
    let (t, a) = h.api(ApiCall::ExtRegister {
        name: Some("ext".into()),
        body: Bytes::from_static(br#"{"events":["INVOKE","SHUTDOWN"]}"#),
        accept_account_id: false,
    });
    let id = reply(&a, t)
        .and_then(|r| r.headers.iter().find(|(k, _)| *k == headers::EXTENSION_IDENTIFIER).map(|(_, v)| v.clone()))
        .unwrap_or_default();
    keep(a);
    keep(h.next(&id).1);
    h.tick(3);
    keep(h.api(ApiCall::RuntimeNext).1);
    h.tick(50);
    keep(h.invoke("r1").1);
    h.tick(7);
    keep(h.respond("r1", b"\"ok\"").1);
    keep(h.api(ApiCall::RuntimeNext).1);
    h.tick(1);
    keep(h.next(&id).1);
    h.tick(20);
    let token = h.next_token;
    h.next_token += 1;
    keep(h.input(Input::Invoke {
        token,
        request_id: "r2".into(),
        request: InvokeRequest { trace_id: Some("Root=1-1-2;Sampled=1".into()), ..Default::default() },
    }));
    h.tick(3000);
    keep(h.input(Input::Timer(TimerId::Invoke(2))));
    let g = h.lc.generation();
    for kind in [ProcKind::Runtime, ProcKind::Extension(0)] {
        keep(h.input(Input::Exited { proc: ProcId { generation: g, kind }, exit: ExitInfo::default() }));
    }
    keep(h.invoke("r3").1);
    keep(h.input(Input::Shutdown));
    // The suppressed init serving r3 runs out of time; the shutdown then completes.
    h.tick(3000);
    let g = h.lc.generation();
    keep(h.input(Input::Timer(TimerId::Init(g))));
    keep(h.input(Input::Exited {
        proc: ProcId { generation: g, kind: ProcKind::Extension(0) },
        exit: ExitInfo::default(),
    }));
    log
}

#[test]
fn the_same_inputs_with_the_same_ids_give_byte_identical_actions() {
    let (clock, start) = (Clock::new(), Instant::now());
    let first = scripted_run(clock, start, 7);
    assert_eq!(first, scripted_run(clock, start, 7));
    // The run exercised every minted identifier: extension, event and trace ids.
    let text = first.join("\n");
    for minted in [headers::EXTENSION_IDENTIFIER, headers::EXTENSION_EVENT_IDENTIFIER, "Sampled=0", "Sampled=1"] {
        assert!(text.contains(minted), "{minted} missing from the run");
    }
    assert!(first.iter().any(|a| a.contains("ShutdownComplete")), "the run ended");
    // They all come from the seed: another seed, other ids, the same decisions.
    let other = scripted_run(clock, start, 8);
    assert_ne!(first, other);
    assert_eq!(first.len(), other.len());
}
