//! Telemetry delivery under load: the buffering limits a subscriber asks for, the
//! platform buffer's drops and their exact accounting, redelivery after a failed
//! batch, ordering over many invocations, and a flood of logs that must not block
//! the function.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use tandem_emulator::{Delivery, Environment, Outcome};
use tandem_wire::time::parse_rfc3339_millis;

/// The number of a `log_bytes` line (`line <i> xxx…`).
fn line_no(e: &Value) -> Option<u64> {
    if e["type"] != "function" {
        return None;
    }
    e["record"].as_str()?.strip_prefix("line ")?.split(' ').next()?.parse().ok()
}

fn deliveries_to(env: &Environment, name: &str) -> Vec<Delivery> {
    env.deliveries().into_iter().filter(|d| d.subscriber == name).collect()
}

/// The sum of the events' JSON sizes in an HTTP delivery (the body without `[`, `]`
/// and the commas between events).
fn batch_bytes(d: &Delivery) -> usize {
    d.body.len() - 2 - d.events.saturating_sub(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_items_makes_batches_of_exactly_max_items() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "function"), ("PROBE_MAX_ITEMS", "1000")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    // 2500 lines of 100 bytes: ~150 bytes of JSON each, far below maxBytes per 1000.
    invoke_ok(&env, r#"{"log_bytes":250000}"#).await;
    shutdown(&env).await;
    let p = probe.probe_output();
    let sizes: Vec<usize> = p.batches().iter().map(|b| b["events"].as_array().map_or(0, Vec::len)).collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert_eq!(&sizes[..2], [1000, 1000], "full batches hold exactly maxItems: {sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 1000), "{sizes:?}");
    let numbers: Vec<u64> = p.events().iter().filter_map(line_no).collect();
    assert_eq!(numbers, (0..2500).collect::<Vec<u64>>(), "every line once, in order");
    let sent: Vec<usize> = deliveries_to(&env, "probe-ext").iter().map(|d| d.events).collect();
    assert_eq!(sent, sizes, "the emulator's record of what it sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_bounds_batches_to_twice_max_bytes() {
    let dir = TempDir::new();
    let probe = Ext::probe(
        &dir,
        "probe-ext",
        &[("PROBE_TYPES", "function"), ("PROBE_MAX_BYTES", "262144"), ("PROBE_MAX_ITEMS", "10000")],
    );
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    // 20000 lines, about 3 MB of JSON: maxBytes (not maxItems) cuts the batches. The
    // invocation stays up a while so that they are delivered while it runs (the 2 s
    // shutdown phase is not meant to carry a 3 MB backlog through a slow subscriber).
    invoke_ok(&env, r#"{"log_bytes":2000000,"sleep_ms":3000}"#).await;
    shutdown(&env).await;
    let sent = deliveries_to(&env, "probe-ext");
    let sizes: Vec<usize> = sent.iter().map(batch_bytes).collect();
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 2 * 262_144), "a batch may reach at most 2 * maxBytes: {sizes:?}");
    assert!(sizes.iter().any(|s| *s >= 262_144), "batches reach maxBytes: {sizes:?}");
    assert!(sent.iter().all(|d| d.events < 10_000), "maxBytes came first");
    let numbers: Vec<u64> = probe.probe_output().events().iter().filter_map(line_no).collect();
    assert_eq!(numbers, (0..20000).collect::<Vec<u64>>(), "every line once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ms_delivers_a_lone_event_after_the_timeout() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "function"), ("PROBE_TIMEOUT_MS", "400")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    // The function stays busy (not frozen) long after its one line.
    invoke_ok(&env, r#"{"log":["a lone event"],"sleep_ms":3000}"#).await;
    shutdown(&env).await;
    let timed = probe.probe_output().timed_events();
    let (received, event) = timed.iter().find(|(_, e)| e["record"] == "a lone event").expect("the lone event arrived");
    let written = parse_rfc3339_millis(event["time"].as_str().expect("time")).expect("RFC 3339 time");
    let waited = received.saturating_sub(written);
    assert!(waited + 2 >= 400, "delivered {waited} ms after it was written: not before timeoutMs");
    assert!(waited < 400 + 2000, "delivered {waited} ms after it was written: about timeoutMs");
    let first = &deliveries_to(&env, "probe-ext")[0];
    assert_eq!(first.events, 1, "the lone event went alone");
    assert!(first.sent_ms + 2 >= written + 400, "sent at {} for an event of {written}", first.sent_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_gets_logs_dropped_with_exact_counts() {
    let dir = TempDir::new();
    let probe = Ext::probe(
        &dir,
        "probe-ext",
        &[("PROBE_TYPES", "function"), ("PROBE_DELAY_MS", "200"), ("PROBE_MAX_ITEMS", "1000")],
    );
    let mut cfg = echo_config();
    cfg.telemetry_buffer_items = 100;
    // Not frozen after the invoke, so that the slow subscriber catches up by itself.
    cfg.freeze = false;
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let out = invoke_ok(&env, r#"{"log_bytes":200000}"#).await;
    assert!(out.function_error.is_none(), "the function was not held up by its subscriber");
    let written = 2000u64;
    let (delivered, dropped) = poll(DEADLINE, "every line delivered or counted as dropped", || {
        let events = probe.probe_output().events();
        let delivered: Vec<u64> = events.iter().filter_map(line_no).collect();
        let dropped: u64 = events
            .iter()
            .filter(|e| e["type"] == "platform.logsDropped")
            .filter_map(|e| e["record"]["droppedRecords"].as_u64())
            .sum();
        (delivered.len() as u64 + dropped >= written).then_some((delivered, dropped))
    })
    .await;
    shutdown(&env).await;
    assert!(dropped > 0, "a 100-item buffer in front of a slow subscriber drops");
    assert_eq!(delivered.len() as u64 + dropped, written, "delivered + droppedRecords == written");
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "no duplicates, order kept");
    assert_eq!(delivered.last(), Some(&(written - 1)), "the newest lines are kept, the oldest dropped");
    let drops: Vec<Value> = probe.probe_output().of_type("platform.logsDropped");
    for d in &drops {
        let r = &d["record"];
        assert!(
            r["droppedBytes"].as_u64().is_some_and(|b| b >= 100 * r["droppedRecords"].as_u64().unwrap_or(0)),
            "{d}"
        );
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batch_is_delivered_again_once() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_FAIL_FIRST", "1"), ("PROBE_TIMEOUT_MS", "25")]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let out = invoke_ok(&env, r#"{"log":["first","second"]}"#).await;
    shutdown(&env).await;
    let p = probe.probe_output();
    let rejected = p.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let refused = rejected[0]["events"].as_array().expect("events").clone();
    let batches = p.batches();
    assert_eq!(batches[0]["events"].as_array().expect("events"), &refused, "the same batch came again");
    let events = p.events();
    let unique: HashSet<String> = events.iter().map(Value::to_string).collect();
    assert_eq!(unique.len(), events.len(), "no event arrived twice");
    for line in ["first", "second"] {
        assert_eq!(events.iter().filter(|e| e["type"] == "function" && e["record"] == line).count(), 1);
    }
    for kind in ["platform.start", "platform.runtimeDone", "platform.report"] {
        assert_eq!(
            events.iter().filter(|e| e["type"] == kind && e["record"]["requestId"] == out.request_id.as_str()).count(),
            1,
            "{kind}"
        );
    }
    let sent = deliveries_to(&env, "probe-ext");
    assert_eq!((sent[0].batch, sent[0].attempt, &sent[0].outcome), (1, 1, &Outcome::Rejected(500)));
    assert_eq!((sent[1].batch, sent[1].attempt, &sent[1].outcome), (1, 2, &Outcome::Delivered(200)));
    assert_eq!(sent[0].body, sent[1].body);
    assert!(sent[2..].iter().all(|d| d.attempt == 1 && d.batch > 1), "later batches went through at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_their_order_over_1000_invokes() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[]);
    let mut cfg = echo_config();
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let mut rids = Vec::with_capacity(1000);
    for i in 0..1000 {
        let out = invoke_ok(&env, &format!(r#"{{"log":["invoke {i}"]}}"#)).await;
        rids.push(out.request_id);
    }
    shutdown(&env).await;
    let events = probe.probe_output().events();
    let starts: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "platform.start")
        .filter_map(|e| e["record"]["requestId"].as_str())
        .collect();
    assert_eq!(starts, rids.iter().map(String::as_str).collect::<Vec<_>>(), "starts in invoke order");
    let mut pos: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if let (Some(t), Some(r)) = (e["type"].as_str(), e["record"]["requestId"].as_str()) {
            assert!(pos.insert((t, r), i).is_none(), "one {t} for {r}");
        }
    }
    for (i, rid) in rids.iter().enumerate() {
        let at = |t: &str| *pos.get(&(t, rid.as_str())).unwrap_or_else(|| panic!("{t} of invoke {i}"));
        let (start, done, report) = (at("platform.start"), at("platform.runtimeDone"), at("platform.report"));
        assert!(start < done && done < report, "invoke {i}: start {start}, runtimeDone {done}, report {report}");
        let line = events
            .iter()
            .position(|e| e["type"] == "function" && e["record"] == format!("invoke {i}"))
            .unwrap_or_else(|| panic!("line of invoke {i}"));
        assert!(start < line && line < done, "invoke {i}: its line between start and runtimeDone");
        if i + 1 < rids.len() {
            assert!(done < at_next_start(&pos, &rids[i + 1]), "invoke {i} ended before {} started", i + 1);
        }
    }
}

fn at_next_start(pos: &std::collections::HashMap<(&str, &str), usize>, rid: &str) -> usize {
    pos[&("platform.start", rid)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_of_logs_do_not_block_the_invoke() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe-ext", &[("PROBE_TYPES", "function")]);
    let mut cfg = echo_config();
    cfg.timeout = Duration::from_secs(30);
    cfg.freeze = false;
    cfg.extensions = vec![probe.path()];
    let env = start(cfg).await;
    let written = 200_000u64;
    let out = invoke_ok(&env, r#"{"log_bytes":20000000}"#).await;
    assert_eq!(out.status, tandem_wire::Status::Success, "completed within its timeout");
    let (delivered, dropped) = poll(Duration::from_secs(120), "every line delivered or counted as dropped", || {
        let events = probe.probe_output().events();
        let delivered: Vec<u64> = events.iter().filter_map(line_no).collect();
        let dropped: u64 = events
            .iter()
            .filter(|e| e["type"] == "platform.logsDropped")
            .filter_map(|e| e["record"]["droppedRecords"].as_u64())
            .sum();
        (delivered.len() as u64 + dropped >= written).then_some((delivered, dropped))
    })
    .await;
    shutdown(&env).await;
    assert_eq!(delivered.len() as u64 + dropped, written, "complete, or exactly accounted for");
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates");
    eprintln!("20 MB of logs: {} lines delivered, {dropped} dropped", delivered.len());
}
