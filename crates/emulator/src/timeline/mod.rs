//! timeline: the lifecycle of environments as one self-contained HTML page (`invoke
//! --timeline FILE.html`, `serve`'s `/_tandem/`). [`data`] turns what an environment
//! recorded (observations, API calls, telemetry deliveries, platform records) into the
//! page's JSON; [`page`] embeds it in `page.html`, whose script draws it (no network:
//! no CDN, no fetch). Times are epoch milliseconds.

use crate::environment::Environment;
use crate::lifecycle::Observation;
use crate::telemetry::delivery::Outcome;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("page.html");
/// Where the template takes the data.
const SLOT: &str = "/*TANDEM_TIMELINE_DATA*/null";

/// Log lines kept per page (the most recent): a page must stay small enough to open.
const MAX_LOG_LINES: usize = 20_000;

/// The page for `envs` (each from [`data`]); `live` adds the auto-refresh control.
pub fn page(title: &str, envs: &[Value], live: bool) -> String {
    let doc = json!({ "title": title, "live": live, "environments": envs });
    // `</` inside a <script> would end it early.
    let embedded = doc.to_string().replace("</", "<\\/");
    TEMPLATE.replace(SLOT, &embedded)
}

/// One environment's timeline: rows (the processes), phases, invocations with their
/// extension overhead and log lines, API calls, telemetry deliveries, process events.
pub fn data(env: &Environment, id: &str) -> Value {
    let observations = env.observations();
    let mut rows: Vec<String> = vec!["runtime".to_owned()];
    for name in env.config().extension_names() {
        add_row(&name, &mut rows);
    }
    // Extension identifiers to names (API calls carry the identifier).
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut phases = Vec::new();
    let mut marks = Vec::new();
    let mut invocations: Vec<Value> = Vec::new();
    let mut open: BTreeMap<&'static str, (u64, String)> = BTreeMap::new();
    let mut last_ms = 0;
    for o in &observations {
        let at = o.epoch_ms;
        last_ms = last_ms.max(at);
        match &o.what {
            Observation::Spawned { process, pid } => {
                add_row(process, &mut rows);
                marks.push(json!({"row": process, "at": at, "label": format!("started (pid {pid})")}));
            }
            Observation::InitStart { phase } => {
                close(&mut open, "shutdown", at, &mut phases);
                open.insert("init", (at, format!("init ({})", phase.as_str())));
            }
            Observation::InitEnd { status, error_type, duration_ms } => {
                let label = match error_type {
                    Some(e) => format!("init {} {e} ({duration_ms:.1} ms)", status.as_str()),
                    None => format!("init {} ({duration_ms:.1} ms)", status.as_str()),
                };
                if let Some((start, _)) = open.remove("init") {
                    phases.push(json!({"kind": "init", "start": start, "end": at, "label": label}));
                }
            }
            Observation::ExtensionRegistered { name, id, external, events } => {
                names.insert(id.clone(), name.clone());
                add_row(name, &mut rows);
                let how = if *external { "external" } else { "internal" };
                marks.push(
                    json!({"row": name, "at": at, "label": format!("registered ({how}; {})", events.join(", "))}),
                );
            }
            Observation::InvokeStart { request_id } => {
                invocations.push(json!({"requestId": request_id, "start": at}));
            }
            Observation::RuntimeResponded { request_id } => {
                if let Some(inv) = invocation(&mut invocations, request_id) {
                    inv["runtimeDone"] = json!(at);
                }
            }
            Observation::InvokeEnd { request_id, status, error_type, duration_ms } => {
                if let Some(inv) = invocation(&mut invocations, request_id) {
                    inv["end"] = json!(at);
                    inv["status"] = json!(status.as_str());
                    inv["errorType"] = json!(error_type);
                    inv["durationMs"] = json!(duration_ms);
                }
            }
            Observation::Frozen => {
                open.insert("frozen", (at, "frozen".to_owned()));
            }
            Observation::Thawed => close(&mut open, "frozen", at, &mut phases),
            Observation::ShutdownStart { reason, .. } => {
                close(&mut open, "frozen", at, &mut phases);
                let label = match reason.as_str() {
                    "spindown" => "shutdown (spindown)".to_owned(),
                    other => format!("reset ({other})"),
                };
                open.insert("shutdown", (at, label));
            }
            Observation::ShutdownComplete => close(&mut open, "shutdown", at, &mut phases),
            Observation::Signalled { process, signal } => {
                marks.push(json!({"row": process, "at": at, "label": format!("signalled {signal:?}")}));
            }
            Observation::ProcessExited { process, exit } => {
                let how = match (exit.code, exit.signal, exit.oom) {
                    (_, _, true) => "killed: out of memory".to_owned(),
                    (Some(c), _, _) => format!("exited {c}"),
                    (_, Some(s), _) => format!("killed by signal {s}"),
                    _ => "exited".to_owned(),
                };
                marks.push(json!({"row": process, "at": at, "label": how}));
            }
            _ => {}
        }
    }
    // What is still open ends now (a live page).
    for (kind, (start, label)) in std::mem::take(&mut open) {
        phases.push(json!({"kind": kind, "start": start, "end": Value::Null, "label": label}));
    }
    overheads(env, &mut invocations);
    let api: Vec<Value> = env
        .api_calls()
        .into_iter()
        .map(|m| {
            let row = if m.caller == "runtime" {
                "runtime".to_owned()
            } else {
                names.get(&m.caller).cloned().unwrap_or(m.caller)
            };
            json!({
                "row": row,
                "call": m.call,
                "requestId": m.request_id,
                "start": m.start_us as f64 / 1000.0,
                "end": m.end_us.map(|e| e as f64 / 1000.0),
                "status": m.status,
            })
        })
        .collect();
    let mut logs = Vec::new();
    let deliveries: Vec<Value> = env
        .deliveries()
        .into_iter()
        .map(|d| {
            for e in d.parsed() {
                if matches!(e["type"].as_str(), Some("function" | "extension")) {
                    logs.push(json!({"time": e["time"], "source": e["type"], "record": e["record"]}));
                }
            }
            let status = match &d.outcome {
                Outcome::Delivered(s) => s.to_string(),
                Outcome::Rejected(s) => format!("rejected {s}"),
                Outcome::Failed(why) => format!("failed: {why}"),
            };
            json!({
                "subscriber": d.subscriber,
                "batch": d.batch,
                "attempt": d.attempt,
                "sent": d.sent_ms,
                "events": d.events,
                "delivered": d.delivered(),
                "status": status,
            })
        })
        .collect();
    // A line goes to every subscriber of its kind: show it once, in time order.
    logs.sort_by_cached_key(|l| (l["time"].as_str().unwrap_or_default().to_owned(), l.to_string()));
    logs.dedup();
    let skip = logs.len().saturating_sub(MAX_LOG_LINES);
    let console: Vec<String> = env.console_lines().into_iter().rev().take(MAX_LOG_LINES).rev().collect();
    json!({
        "id": id,
        "function": env.config().function_name,
        "rows": rows,
        "phases": phases,
        "invocations": invocations,
        "marks": marks,
        "api": api,
        "deliveries": deliveries,
        "logs": logs.into_iter().skip(skip).collect::<Vec<_>>(),
        "console": console,
        "until": last_ms,
    })
}

fn add_row(name: &str, rows: &mut Vec<String>) {
    if !name.is_empty() && !rows.iter().any(|r| r == name) {
        rows.push(name.to_owned());
    }
}

fn close(open: &mut BTreeMap<&'static str, (u64, String)>, kind: &'static str, at: u64, phases: &mut Vec<Value>) {
    if let Some((start, label)) = open.remove(kind) {
        phases.push(json!({"kind": kind, "start": start, "end": at, "label": label}));
    }
}

fn invocation<'a>(invocations: &'a mut [Value], request_id: &str) -> Option<&'a mut Value> {
    invocations.iter_mut().rev().find(|i| i["requestId"] == request_id)
}

/// Each invocation's `extensionOverhead` (from its `platform.report` spans).
fn overheads(env: &Environment, invocations: &mut [Value]) {
    for event in env.platform_events() {
        let Ok(v) = serde_json::to_value(&event) else {
            continue;
        };
        if v["type"] != "platform.report" {
            continue;
        }
        let Some(request_id) = v["record"]["requestId"].as_str() else {
            continue;
        };
        let overhead = v["record"]["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "extensionOverhead"))
            .and_then(|s| s["durationMs"].as_f64());
        if let (Some(ms), Some(inv)) = (overhead, invocation(invocations, request_id)) {
            inv["extensionOverheadMs"] = json!(ms);
        }
    }
}
