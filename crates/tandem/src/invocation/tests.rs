//! Tests of the correlator: ordering, cold starts, partial invocations, cost, OOM.

use super::cost::Arch;
use super::*;
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn ev(offset_ms: u64, kind: &str, record: serde_json::Value) -> Event {
    let time = tandem_wire::time::format_epoch_millis(T0 + offset_ms);
    serde_json::from_value(json!({"time": time, "type": kind, "record": record})).unwrap()
}

fn start(off: u64, id: &str) -> Event {
    ev(
        off,
        "platform.start",
        json!({"requestId": id, "version": "$LATEST",
        "tracing": {"spanId": "54565fb41ac79632", "type": "X-Amzn-Trace-Id",
                    "value": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}),
    )
}

fn runtime_done(off: u64, id: &str, status: &str, error: Option<&str>) -> Event {
    let mut r = json!({"requestId": id, "status": status,
        "metrics": {"durationMs": 95.5, "producedBytes": 42},
        "spans": [{"name": "responseLatency", "start": "2023-11-14T22:13:20.000Z", "durationMs": 90.0},
                  {"name": "responseDuration", "start": "2023-11-14T22:13:20.090Z", "durationMs": 2.5},
                  {"name": "runtimeOverhead", "start": "2023-11-14T22:13:20.093Z", "durationMs": 1.5}]});
    if let Some(e) = error {
        r["errorType"] = json!(e);
    }
    ev(off, "platform.runtimeDone", r)
}

fn report(off: u64, id: &str, status: &str, used: u64, init: Option<f64>) -> Event {
    let mut m = json!({"durationMs": 100.25, "billedDurationMs": 101, "memorySizeMB": 128, "maxMemoryUsedMB": used});
    if let Some(i) = init {
        m["initDurationMs"] = json!(i);
    }
    ev(
        off,
        "platform.report",
        json!({"requestId": id, "status": status, "metrics": m,
        "spans": [{"name": "extensionOverhead", "start": "2023-11-14T22:13:20.100Z", "durationMs": 4.75}]}),
    )
}

fn init_events(kind: &str) -> Vec<Event> {
    vec![
        ev(
            0,
            "platform.initStart",
            json!({"initializationType": kind, "phase": "init",
            "runtimeVersion": "nodejs:20.v13", "functionName": "f", "functionVersion": "$LATEST", "instanceMaxMemory": 128}),
        ),
        ev(150, "platform.initRuntimeDone", json!({"initializationType": kind, "phase": "init", "status": "success"})),
        ev(
            151,
            "platform.initReport",
            json!({"initializationType": kind, "phase": "init", "status": "success",
            "metrics": {"durationMs": 150.5}}),
        ),
    ]
}

fn feed(c: &mut Correlator, events: &[Event]) -> Vec<Invocation> {
    events.iter().flat_map(|e| c.observe(e)).collect()
}

fn x86() -> Correlator {
    Correlator::new(CorrelatorOptions { pricing: Pricing::for_arch(Arch::X86_64), ..CorrelatorOptions::default() })
}

#[test]
fn cold_start_then_warm_with_late_reports() {
    let mut c = x86();
    let mut events = init_events("on-demand");
    events.extend([
        start(200, "a"),
        runtime_done(300, "a", "success", None),
        start(5000, "b"),
        // a's report arrives during b.
        report(5001, "a", "success", 60, Some(150.5)),
    ]);
    let out = feed(&mut c, &events);
    assert_eq!(c.in_flight(), Some("b"), "a's late report does not end b");
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!(a.request_id, "a");
    assert!(a.complete && a.cold_start);
    assert_eq!(a.start_ms, T0 + 200);
    assert_eq!(a.duration_ms, 100.25);
    assert_eq!(a.billed_duration_ms, 101);
    assert_eq!(a.init_duration_ms, Some(150.5));
    assert_eq!(a.runtime_duration_ms, Some(95.5));
    assert_eq!(a.produced_bytes, Some(42));
    assert_eq!(a.response_latency_ms, Some(90.0));
    assert_eq!(a.response_duration_ms, Some(2.5));
    assert_eq!(a.runtime_overhead_ms, Some(1.5));
    assert_eq!(a.post_runtime_extension_ms, Some(4.75));
    assert_eq!((a.max_memory_used_mb, a.memory_size_mb), (60, 128));
    assert_eq!(a.status, "success");
    assert!(!a.out_of_memory);
    assert_eq!(a.version.as_deref(), Some("$LATEST"));
    assert_eq!(a.trace_id.as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
    assert_eq!(a.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(a.span_id.as_deref(), Some("54565fb41ac79632"));
    assert_eq!(a.sampled, Some(true));
    let init = a.init.as_ref().expect("init attached to the cold start");
    assert_eq!(init.start_ms, Some(T0));
    assert_eq!(init.duration_ms, Some(150.5));
    assert_eq!(init.status.as_deref(), Some("success"));
    assert_eq!(init.initialization_type.as_deref(), Some("on-demand"));
    assert_eq!(init.runtime_version.as_deref(), Some("nodejs:20.v13"));
    let want = 128.0 / 1024.0 * 0.101 * 0.000_016_666_7 + 0.000_000_2;
    assert!((a.estimated_cost_usd - want).abs() < 1e-15, "{}", a.estimated_cost_usd);

    // b: runtimeDone of b arrives after start of c, then both reports.
    let out = feed(
        &mut c,
        &[
            start(9000, "c"),
            runtime_done(9001, "b", "error", Some("Handler.Error")),
            report(9002, "b", "error", 70, None),
            runtime_done(9100, "c", "success", None),
            report(12000, "c", "success", 70, None),
        ],
    );
    assert_eq!(out.iter().map(|i| i.request_id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    assert!(!out[0].cold_start && out[0].init.is_none() && out[0].init_duration_ms.is_none());
    assert_eq!(out[0].status, "error");
    assert_eq!(out[0].error_type.as_deref(), Some("Handler.Error"));
    assert!(out[0].is_error());
    assert_eq!(c.in_flight(), None);
    assert_eq!(c.pending_len(), 0);
    assert!(c.drain().is_empty());
}

#[test]
fn report_without_start_still_counts() {
    let mut c = x86();
    let out = c.observe(&report(1000, "lost-start", "timeout", 10, None));
    assert_eq!(out.len(), 1);
    let i = &out[0];
    assert!(i.complete && !i.cold_start);
    assert_eq!(i.status, "timeout");
    assert!(i.is_timeout() && i.is_error());
    // Start estimated from report time minus duration (100.25 → 101 ms).
    assert_eq!(i.start_ms, T0 + 1000 - 101);
    assert_eq!(i.trace_id, None);
}

#[test]
fn logs_api_report_without_status_takes_runtime_done_status() {
    let mut c = x86();
    c.observe(&start(0, "r"));
    c.observe(&runtime_done(10, "r", "error", Some("Runtime.ExitError")));
    let out = c.observe(&ev(
        20,
        "platform.report",
        json!({"requestId": "r",
        "metrics": {"durationMs": 10.0, "billedDurationMs": 10, "memorySizeMB": 256, "maxMemoryUsedMB": 30}}),
    ));
    assert_eq!(out[0].status, "error");
    assert_eq!(out[0].error_type.as_deref(), Some("Runtime.ExitError"));
    let mut c = x86();
    let out = c.observe(&ev(
        20,
        "platform.report",
        json!({"requestId": "r",
        "metrics": {"durationMs": 10.0, "billedDurationMs": 10, "memorySizeMB": 256, "maxMemoryUsedMB": 30}}),
    ));
    assert_eq!(out[0].status, "success");
}

#[test]
fn out_of_memory_from_every_signal() {
    let lines = [
        "[ERROR] MemoryError\nTraceback (most recent call last):",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
        "fatal error: runtime: out of memory",
        "Unhandled exception. System.OutOfMemoryException: Insufficient memory",
    ];
    for line in lines {
        let mut c = x86();
        c.observe(&start(0, "r"));
        c.observe(&ev(5, "function", json!(line)));
        let out = c.observe(&report(10, "r", "error", 50, None));
        assert!(out[0].out_of_memory, "{line}");
    }
    // JSON log format.
    let mut c = x86();
    c.observe(&start(0, "r"));
    c.observe(&ev(5, "function", json!({"level": "ERROR", "errorType": "Runtime.OutOfMemory", "message": "x"})));
    assert!(c.observe(&report(10, "r", "error", 50, None))[0].out_of_memory);
    // errorType on the report.
    let mut c = x86();
    let out = c.observe(&ev(
        0,
        "platform.report",
        json!({"requestId": "r", "status": "error",
        "errorType": "Runtime.OutOfMemory",
        "metrics": {"durationMs": 1.0, "billedDurationMs": 1, "memorySizeMB": 128, "maxMemoryUsedMB": 100}}),
    ));
    assert!(out[0].out_of_memory);
    // Memory at the limit.
    let mut c = x86();
    assert!(c.observe(&report(0, "r", "error", 128, None))[0].out_of_memory);
    // A harmless mention of memory is not OOM.
    let mut c = x86();
    c.observe(&start(0, "r"));
    c.observe(&ev(5, "function", json!("memory usage is fine: 50 MB")));
    assert!(!c.observe(&report(10, "r", "success", 50, None))[0].out_of_memory);
    assert!(!is_oom_line("out of memory budget? no: MemoryErr"));
}

#[test]
fn drain_returns_partials_marked_incomplete() {
    let mut c = Correlator::new(CorrelatorOptions {
        memory_size_mb: Some(512),
        pricing: Pricing::for_arch(Arch::Arm64),
        ..CorrelatorOptions::default()
    });
    let mut events = init_events("on-demand");
    events.extend([
        start(200, "crashed"),
        ev(250, "function", json!("JavaScript heap out of memory")),
        runtime_done(300, "crashed", "failure", Some("Runtime.ExitError")),
        start(400, "never-done"),
    ]);
    assert!(feed(&mut c, &events).is_empty());
    let out = c.drain();
    assert_eq!(out.len(), 2);
    let a = &out[0];
    assert_eq!(a.request_id, "crashed");
    assert!(!a.complete);
    assert!(a.cold_start, "the init went to the first started request");
    assert_eq!(a.init_duration_ms, Some(150.5));
    assert_eq!(a.status, "failure");
    assert!(a.out_of_memory && a.is_error());
    assert_eq!(a.duration_ms, 95.5);
    assert_eq!(a.billed_duration_ms, 96);
    assert_eq!(a.memory_size_mb, 512);
    let want = 0.5 * 0.096 * 0.000_013_333_4 + 0.000_000_2;
    assert!((a.estimated_cost_usd - want).abs() < 1e-15);
    let b = &out[1];
    assert_eq!((b.request_id.as_str(), b.status.as_str(), b.complete), ("never-done", "unknown", false));
    assert!(!b.cold_start && !b.is_error());
    assert_eq!(b.start_ms, T0 + 400);
    assert_eq!(c.in_flight(), None);
    assert!(c.drain().is_empty());
}

#[test]
fn table_is_bounded_and_evicts_oldest_as_partial() {
    let mut c = Correlator::new(CorrelatorOptions { max_in_flight: 3, ..CorrelatorOptions::default() });
    let mut evicted = Vec::new();
    for i in 0..10u64 {
        evicted.extend(c.observe(&start(i * 10, &format!("r{i}"))));
        assert!(c.pending_len() <= 3);
    }
    assert_eq!(
        evicted.iter().map(|i| i.request_id.as_str()).collect::<Vec<_>>(),
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    );
    assert!(evicted.iter().all(|i| !i.complete));
    assert_eq!(c.in_flight(), Some("r9"));
    // A late report for an evicted request is still reported from its own data.
    let out = c.observe(&report(200, "r1", "success", 1, None));
    assert_eq!(out.len(), 1);
    assert!(out[0].complete);
    assert_eq!(c.drain().len(), 3);
}

#[test]
fn partial_without_start_is_dated_from_what_was_seen() {
    let mut c = x86();
    c.observe(&runtime_done(10_000, "orphan", "success", None));
    let out = c.drain();
    assert_eq!(out[0].start_ms, T0 + 10_000 - 96, "runtimeDone time minus the runtime duration");
    assert!(!out[0].complete);
}

#[test]
fn provisioned_concurrency_init_is_not_a_cold_start() {
    let mut c = x86();
    let mut events = init_events("provisioned-concurrency");
    events.extend([start(60_000, "a"), report(60_100, "a", "success", 1, None)]);
    let out = feed(&mut c, &events);
    assert!(!out[0].cold_start);
    assert_eq!(out[0].init_duration_ms, None);
    assert_eq!(out[0].init.as_ref().and_then(|i| i.initialization_type.as_deref()), Some("provisioned-concurrency"));
}

#[test]
fn suppressed_init_attaches_to_the_running_invocation() {
    let mut c = x86();
    let out = feed(
        &mut c,
        &[
            start(0, "first"),
            ev(1, "platform.initStart", json!({"initializationType": "on-demand", "phase": "invoke"})),
            ev(
                2,
                "platform.initReport",
                json!({"initializationType": "on-demand", "phase": "invoke",
                "status": "error", "errorType": "Runtime.ExitError", "metrics": {"durationMs": 9000.0}}),
            ),
            report(10, "first", "error", 1, Some(9000.0)),
        ],
    );
    let init = out[0].init.as_ref().expect("init attached");
    assert_eq!(init.phase.as_deref(), Some("invoke"));
    assert_eq!(init.status.as_deref(), Some("error"));
    assert_eq!(init.error_type.as_deref(), Some("Runtime.ExitError"));
    assert!(out[0].cold_start);
}

#[test]
fn snapstart_restore_is_a_cold_start_with_restore_duration() {
    let mut c = x86();
    let out = feed(
        &mut c,
        &[
            ev(0, "platform.restoreStart", json!({"functionName": "f", "runtimeVersion": "java21.v4"})),
            ev(5, "platform.restoreReport", json!({"status": "success", "metrics": {"durationMs": 300.0}})),
            start(10, "a"),
            ev(
                20,
                "platform.report",
                json!({"requestId": "a", "status": "success",
                "metrics": {"durationMs": 5.0, "billedDurationMs": 300, "memorySizeMB": 128, "maxMemoryUsedMB": 90,
                            "restoreDurationMs": 300.0, "billedRestoreDurationMs": 295}}),
            ),
        ],
    );
    let a = &out[0];
    assert!(a.cold_start);
    assert_eq!(a.restore_duration_ms, Some(300.0));
    assert_eq!(a.init_duration_ms, None);
    assert!(a.init.as_ref().is_some_and(|i| i.restore && i.duration_ms == Some(300.0)));
}

#[test]
fn logs_are_stamped_with_their_invocations_trace() {
    let mut c = x86();
    c.observe(&start(0, "a"));
    let mut rec =
        crate::logs::to_log_record(T0, crate::model::Source::Function, &WireLog::Text("hi".into()), c.in_flight());
    c.annotate_log(&mut rec);
    assert_eq!(rec.request_id.as_deref(), Some("a"));
    assert_eq!(rec.trace_id.as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
    let mut other = rec.clone();
    other.trace_id = None;
    other.request_id = Some("unknown".into());
    c.annotate_log(&mut other);
    assert_eq!(other.trace_id, None);
}

#[test]
fn xray_header_parsing() {
    let x = XRay::parse("Root=1-62e900b2-710d76f009d6e7785905449a; Parent=0efbd19962d95b05; Sampled=0;Lineage=a:1");
    assert_eq!(x.root.as_deref(), Some("1-62e900b2-710d76f009d6e7785905449a"));
    assert_eq!(x.parent.as_deref(), Some("0efbd19962d95b05"));
    assert_eq!(x.sampled, Some(false));
    assert_eq!(XRay::parse("garbage"), XRay::default());
    assert_eq!(Arch::parse("AARCH64"), Some(Arch::Arm64));
    assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
    assert_eq!(Arch::parse("mips"), None);
}
