//! demo: `cargo xtask demo`. Runs `demo-fn` (a lambda_runtime function logging text and
//! JSON) in tandem-emulator with the `tandem` extension attached, delivering to a file
//! sink and to an OTLP receiver on 127.0.0.1; invokes it a few hundred times, shuts
//! down, and says what was delivered, what was lost (nothing), and where it all is.

use crate::otlp_receiver::Receiver;
use crate::stats::Samples;
use crate::Bins;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use tandem_emulator::{Config, Environment};
use tandem_wire::telemetry::Record;

/// The lines demo-fn writes for order `n` (see its documentation).
fn lines_for(n: u64) -> u64 {
    2 + u64::from(n % 10 == 0) + u64::from(n % 50 == 0)
}

pub async fn run(bins: &Bins, invocations: u64, out: &Path) -> Result<bool, String> {
    // The extension runs in the function's directory: give it absolute paths.
    let out = &std::env::current_dir().map_err(|e| e.to_string())?.join(out);
    let _ = std::fs::remove_dir_all(out);
    let otlp_dir = out.join("otlp");
    std::fs::create_dir_all(&otlp_dir).map_err(|e| format!("cannot create {}: {e}", otlp_dir.display()))?;
    let records = out.join("records.ndjson");
    let spool = out.join("spool");
    let receiver =
        Receiver::start(Some(otlp_dir.clone())).await.map_err(|e| format!("cannot start the OTLP receiver: {e}"))?;

    let mut cfg = Config::new(vec![bins.need("demo-fn")?.to_string_lossy().into_owned()]);
    cfg.function_name = "demo-fn".into();
    cfg.extensions.push(bins.need("tandem")?);
    cfg.timeout = Duration::from_secs(5);
    cfg.record_bodies = false;
    let env_vars = [
        ("TANDEM_SINKS", "file,otlp".to_owned()),
        ("TANDEM_FILE_PATH", records.to_string_lossy().into_owned()),
        ("TANDEM_SPOOL_DIR", spool.to_string_lossy().into_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.addr)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_SERVICE_NAME", "demo-fn".to_owned()),
    ];
    cfg.env.extend(env_vars.iter().map(|(k, v)| (k.to_string(), v.clone())));

    println!("demo: starting tandem-emulator with demo-fn and the tandem extension (sinks: file, otlp)");
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    if let Some((status, error)) = env.init_outcome() {
        if status != tandem_wire::Status::Success {
            return Err(format!("init failed: {status} {error:?}"));
        }
    }
    let bar = ProgressBar::new(invocations);
    if let Ok(style) = ProgressStyle::with_template("demo: invoking {bar:40} {pos}/{len} ({per_sec})") {
        bar.set_style(style);
    }
    let mut expected_lines = 0;
    let mut failed = 0;
    for n in 1..=invocations {
        let out = env.invoke(format!(r#"{{"order":{n}}}"#)).await.map_err(|e| e.to_string())?;
        if out.result.function_error.is_some() {
            failed += 1;
        }
        expected_lines += lines_for(n);
        bar.inc(1);
    }
    bar.finish();
    env.shutdown().await;

    // What the platform reported.
    let events = env.platform_events();
    let mut durations = Vec::new();
    let mut overheads = Vec::new();
    let mut cold = None;
    for e in &events {
        if let Record::Report(r) = &e.record {
            durations.push(r.metrics.duration_ms);
            if let Some(i) = r.metrics.init_duration_ms {
                cold = Some(i);
            }
            for s in r.spans.iter().flatten().filter(|s| s.name == "extensionOverhead") {
                overheads.push(s.duration_ms);
            }
        }
    }
    let (durations, overheads) = (Samples::new(durations), Samples::new(overheads));

    // What the file sink holds.
    let written = std::fs::read_to_string(&records).unwrap_or_default();
    let mut file_logs = 0u64;
    let mut file_invocations = HashSet::new();
    for line in written.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match v["type"].as_str() {
            Some("log") if v["source"] == "function" => file_logs += 1,
            Some("invocation") => {
                if let Some(id) = v["requestId"].as_str() {
                    file_invocations.insert(id.to_owned());
                }
            }
            _ => {}
        }
    }
    let got = receiver.received();
    let otlp_logs = got.log_bodies.len() as u64;
    let invocation_spans = got.span_names.iter().filter(|(n, _)| n.as_str() == "demo-fn").map(|(_, c)| *c).sum::<u64>();
    let metric_points: u64 = got.metric_points.values().sum();

    let lost_file =
        expected_lines.saturating_sub(file_logs) + invocations.saturating_sub(file_invocations.len() as u64);
    let lost_otlp = expected_lines.saturating_sub(otlp_logs);
    println!();
    println!(
        "demo: {invocations} invocations ({failed} failed), cold start (init) {}",
        cold.map_or("n/a".into(), |c| format!("{c:.2} ms"))
    );
    println!(
        "demo: duration p50 {:.3} ms, p99 {:.3} ms; extension overhead p50 {:.3} ms, p99 {:.3} ms",
        durations.median(),
        durations.p99(),
        overheads.median(),
        overheads.p99()
    );
    println!("demo: the function wrote {expected_lines} log lines");
    println!(
        "demo: file sink: {file_logs} log records, {} invocation records -> {}",
        file_invocations.len(),
        display(&records)
    );
    println!(
        "demo: otlp sink: {otlp_logs} log records, {invocation_spans} invocation spans ({} spans in all), {metric_points} metric points in {} requests -> {}",
        got.spans,
        got.requests,
        display(&otlp_dir)
    );
    if !got.errors.is_empty() {
        println!("demo: the OTLP receiver rejected {} request(s): {}", got.errors.len(), got.errors.join("; "));
    }
    println!("demo: records lost: file {lost_file}, otlp {lost_otlp}");
    Ok(lost_file == 0 && lost_otlp == 0 && failed == 0 && got.errors.is_empty())
}

fn display(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
