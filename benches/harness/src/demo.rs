//! demo: `cargo xtask demo`. Runs `demo-fn` (a lambda_runtime function logging text and
//! JSON) in tandem-emulator with the `tandem` extension attached, delivering to the
//! default `stdout` sink (CloudWatch EMF), a file sink and an OTLP receiver on
//! 127.0.0.1; invokes it a few hundred times, shuts down, and says what was delivered,
//! what was lost (nothing), and where it all is; shows a few EMF lines as CloudWatch
//! Logs would receive them, and ends with what to try next.

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
        ("TANDEM_SINKS", "stdout,file,otlp".to_owned()),
        ("TANDEM_FILE_PATH", records.to_string_lossy().into_owned()),
        ("TANDEM_SPOOL_DIR", spool.to_string_lossy().into_owned()),
        // The sink's own names: OTEL_EXPORTER_OTLP_* stay the function's SDK's.
        ("TANDEM_OTLP_ENDPOINT", format!("http://{}", receiver.addr)),
        ("TANDEM_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_SERVICE_NAME", "demo-fn".to_owned()),
    ];
    cfg.env.extend(env_vars.iter().map(|(k, v)| (k.to_string(), v.clone())));

    println!("demo: starting tandem-emulator with demo-fn and the tandem extension (sinks: stdout, file, otlp)");
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

    // What the stdout sink wrote: tandem's stdout, which Lambda sends to CloudWatch Logs.
    let emf: Vec<String> = env.console_lines().into_iter().filter(|l| l.starts_with("{\"_aws\"")).collect();
    let emf_requests: HashSet<String> = emf
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["requestId"].as_str().map(str::to_owned))
        .collect();
    let lost_stdout = invocations.saturating_sub(emf_requests.len() as u64);
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
    println!(
        "demo: stdout sink (the default): {} EMF documents, the metrics of {} invocations and tandem's health; \
         CloudWatch Logs receives these lines and extracts their metrics, for example:",
        emf.len(),
        emf_requests.len()
    );
    for line in emf_sample(&emf) {
        println!("  {line}");
    }
    println!("demo: records lost: stdout {lost_stdout}, file {lost_file}, otlp {lost_otlp}");
    println!("{NEXT}");
    Ok(lost_stdout == 0 && lost_file == 0 && lost_otlp == 0 && failed == 0 && got.errors.is_empty())
}

/// What to try after the demo.
const NEXT: &str = "\
demo: what to try next:
  - tandem on your function: `cargo xtask layer` builds target/layer/tandem-<arch>.zip, a Lambda layer with
    tandem as /opt/extensions/tandem; add it to a function, nothing else needed (the stdout sink is the default)
  - a configuration, checked offline: `TANDEM_SINKS=otlp TANDEM_OTLP_ENDPOINT=https://collector:4318 \
    target/release/tandem check-config` (`tandem --help` lists every setting)
  - your own function in the emulator with tandem beside it: `target/release/tandem-emulator invoke \
    --runtime ./bootstrap --extension target/release/tandem --event event.json -n 3`, or as deployed:
    `target/release/tandem-emulator invoke --layer target/layer/tandem-<arch>.zip --code fn.zip \
    --runtime /var/task/bootstrap`";

/// A few EMF lines: the first and last invocations' documents and the first health one.
fn emf_sample(emf: &[String]) -> Vec<&str> {
    let is_invocation = |l: &&String| l.contains("\"requestId\"");
    let mut sample: Vec<&str> = Vec::new();
    for line in
        [emf.iter().find(is_invocation), emf.iter().rev().find(is_invocation), emf.iter().find(|l| !is_invocation(l))]
            .into_iter()
            .flatten()
    {
        if !sample.contains(&line.as_str()) {
            sample.push(line);
        }
    }
    sample
}

fn display(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
