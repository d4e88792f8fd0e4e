//! telemetry::console: the lines Lambda writes to the function's log for platform
//! events (INIT_START, INIT_REPORT, START, END, REPORT, timeouts), in text, or as one
//! JSON object per event when the function logs in JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`).
//! Pure formatting; where the lines go is the hub's business.

use std::fmt::Write;
use tandem_wire::telemetry::{Phase, Record, Status};
use tandem_wire::Event;

/// The log lines Lambda writes for a platform event, in order (none for most events).
/// With `json`, the event itself as one JSON object instead of its text lines.
pub fn platform_lines(event: &Event, timeout_secs: f64, json: bool) -> Vec<String> {
    let lines = text_lines(event, timeout_secs);
    if json && !lines.is_empty() {
        return serde_json::to_string(event).map(|l| vec![l]).unwrap_or(lines);
    }
    lines
}

fn text_lines(event: &Event, timeout_secs: f64) -> Vec<String> {
    let mut out = Vec::new();
    match &event.record {
        Record::InitStart(s) => {
            let mut line = String::from("INIT_START");
            match (&s.runtime_version, &s.runtime_version_arn) {
                (Some(v), Some(arn)) => {
                    let _ = write!(line, " Runtime Version: {v}\tRuntime Version ARN: {arn}");
                }
                _ => {
                    let _ = write!(line, " Phase: {}", s.phase);
                }
            }
            out.push(line);
        }
        Record::InitReport(r) if r.status != Status::Success || r.phase == Some(Phase::Invoke) => {
            let mut line = String::from("INIT_REPORT");
            if let Some(m) = r.metrics {
                let _ = write!(line, " Init Duration: {:.2} ms", m.duration_ms);
            }
            if let Some(p) = &r.phase {
                let _ = write!(line, "\tPhase: {p}");
            }
            let _ = write!(line, "\tStatus: {}", r.status);
            if let Some(e) = &r.error_type {
                let _ = write!(line, "\tError Type: {e}");
            }
            out.push(line);
        }
        Record::Start(s) => out.push(format!(
            "START RequestId: {} Version: {}",
            s.request_id,
            s.version.as_deref().unwrap_or("$LATEST")
        )),
        Record::RuntimeDone(r) if r.status == Status::Timeout => {
            out.push(format!("{} {} Task timed out after {timeout_secs:.2} seconds", event.time, r.request_id))
        }
        Record::Report(r) => {
            out.push(format!("END RequestId: {}", r.request_id));
            let m = &r.metrics;
            let mut line = format!(
                "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
                r.request_id, m.duration_ms, m.billed_duration_ms, m.memory_size_mb, m.max_memory_used_mb
            );
            if let Some(i) = m.init_duration_ms {
                let _ = write!(line, "\tInit Duration: {i:.2} ms");
            }
            if let Some(s) = r.status.as_ref().filter(|s| **s != Status::Success) {
                let _ = write!(line, "\tStatus: {s}");
                if let Some(e) = &r.error_type {
                    let _ = write!(line, "\tError Type: {e}");
                }
            }
            out.push(line);
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_wire::telemetry::{Report, ReportMetrics};

    #[test]
    fn report_lines_read_like_cloudwatch() {
        let e = Event::new(
            "2024-01-01T00:00:00.000Z".into(),
            Record::Report(Report {
                request_id: "r1".into(),
                status: Some(Status::Timeout),
                error_type: Some("Sandbox.Timedout".into()),
                metrics: ReportMetrics {
                    duration_ms: 3000.456,
                    billed_duration_ms: 3001,
                    memory_size_mb: 128,
                    max_memory_used_mb: 31,
                    init_duration_ms: Some(12.3),
                    restore_duration_ms: None,
                    billed_restore_duration_ms: None,
                },
                spans: None,
                tracing: None,
            }),
        );
        let lines = platform_lines(&e, 3.0, false);
        assert_eq!(lines[0], "END RequestId: r1");
        assert_eq!(
            lines[1],
            "REPORT RequestId: r1\tDuration: 3000.46 ms\tBilled Duration: 3001 ms\tMemory Size: 128 MB\tMax Memory Used: 31 MB\tInit Duration: 12.30 ms\tStatus: timeout\tError Type: Sandbox.Timedout"
        );
        // In JSON mode the report is one object (END has no JSON form).
        let json = platform_lines(&e, 3.0, true);
        let [line] = &json[..] else { panic!("{json:?}") };
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["record"]["metrics"]["billedDurationMs"].as_u64()),
            (Some("platform.report"), Some(3001))
        );
        assert_eq!(v["time"], "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn init_start_names_the_runtime_version() {
        let e = Event::new(
            "t".into(),
            Record::InitStart(tandem_wire::telemetry::InitStart {
                initialization_type: tandem_wire::telemetry::InitializationType::OnDemand,
                phase: Phase::Init,
                function_name: None,
                function_version: None,
                instance_id: None,
                instance_max_memory: None,
                runtime_version: Some("provided:al2023.v1".into()),
                runtime_version_arn: Some("arn:aws:lambda:us-east-1::runtime:ab".into()),
                tracing: None,
            }),
        );
        assert_eq!(
            platform_lines(&e, 3.0, false),
            ["INIT_START Runtime Version: provided:al2023.v1\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:ab"]
        );
        assert!(platform_lines(&Event::new("t".into(), Record::Fault("x".into())), 3.0, true).is_empty());
    }
}
