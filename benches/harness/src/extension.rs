//! extension: measurements of an extension process inside tandem-emulator: its init
//! overhead (exec to first `next`), the post-runtime time it adds per invocation (the
//! emulator's `extensionOverhead` span), and its memory (RSS idle and peak while
//! shipping logs). The same code measures `tandem` and the baseline.

use crate::stats::Samples;
use crate::Bins;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_emulator::{Config, Environment, Observation};
use tandem_wire::telemetry::Record;

/// An extension under test: its binary and its settings.
#[derive(Clone)]
pub struct Subject {
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Subject {
    pub fn name(&self) -> String {
        self.binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

fn config(runtime: &Path, subject: &Subject) -> Config {
    let mut cfg = Config::new(vec![runtime.to_string_lossy().into_owned()]);
    cfg.extensions.push(subject.binary.clone());
    cfg.env.extend(subject.env.iter().cloned());
    cfg.timeout = Duration::from_secs(10);
    cfg.record_bodies = false;
    cfg
}

/// Milliseconds from the extension's exec to its first `next`, over `runs` cold starts.
pub async fn init_overhead(bins: &Bins, subject: &Subject, runs: usize) -> Result<Samples, String> {
    let name = subject.name();
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let env = Environment::start(config(&bins.noop_runtime, subject)).await.map_err(|e| e.to_string())?;
        let obs = env.observations();
        let spawned = obs.iter().find(|o| matches!(&o.what, Observation::Spawned { process, .. } if *process == name));
        let ready = obs.iter().find(|o| matches!(&o.what, Observation::ExtensionReady { name: n } if *n == name));
        match (spawned, ready) {
            (Some(s), Some(r)) => v.push(r.at.saturating_duration_since(s.at).as_secs_f64() * 1000.0),
            _ => return Err(format!("{name} did not become ready: {obs:?}")),
        }
        env.shutdown().await;
    }
    Ok(Samples::new(v))
}

/// The `extensionOverhead` span of each invocation (ms) for `invocations` invokes of
/// `function` with `event`, after a short warm-up.
pub async fn post_runtime(
    function: &Path,
    subject: &Subject,
    invocations: usize,
    event: &str,
) -> Result<Samples, String> {
    post_runtime_paced(function, subject, 20, invocations, Duration::ZERO, event).await.map(Samples::new)
}

/// The `extensionOverhead` span (ms) of each of `invocations` invokes of `function`
/// with `event`, in order, after `warm_up` unmeasured ones, `gap` apart (the
/// environment frozen in between, as Lambda freezes it). The span runs from the
/// runtime's `next` to the extension's: the post-runtime time Lambda adds to the
/// invocation's billed duration.
pub async fn post_runtime_paced(
    function: &Path,
    subject: &Subject,
    warm_up: usize,
    invocations: usize,
    gap: Duration,
    event: &str,
) -> Result<Vec<f64>, String> {
    let env = Environment::start(config(function, subject)).await.map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(invocations);
    for i in 0..invocations + warm_up {
        if i > warm_up && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let out = env.invoke(event.to_owned()).await.map_err(|e| e.to_string())?;
        if i >= warm_up {
            ids.push(out.result.request_id);
        }
    }
    env.shutdown().await;
    let events = env.platform_events();
    let mut v = Vec::with_capacity(invocations);
    for id in &ids {
        let span = events.iter().find_map(|e| match &e.record {
            Record::Report(r) if r.request_id == *id => {
                r.spans.iter().flatten().find(|s| s.name == "extensionOverhead")
            }
            _ => None,
        });
        if let Some(s) = span {
            v.push(s.duration_ms);
        }
    }
    if v.len() != invocations {
        return Err(format!("expected {invocations} reports with an extensionOverhead span, found {}", v.len()));
    }
    Ok(v)
}

/// Memory and CPU of an extension under load.
pub struct Load {
    /// Resident set after init and a few invocations, MiB.
    pub idle_mib: f64,
    /// Peak resident set (VmHWM) after the loaded period, MiB.
    pub peak_mib: f64,
    /// CPU time (user + system) the extension spent per 1,000 log lines, ms.
    pub cpu_ms_per_1k_lines: f64,
}

/// Resident set idle, then peak and CPU after `seconds` of `lines_per_second` log lines.
pub async fn load(bins: &Bins, subject: &Subject, lines_per_second: u64, seconds: u64) -> Result<Load, String> {
    let echo = bins.need("echo-fn")?;
    let mut cfg = config(&echo, subject);
    // The platform buffer is not what is measured: let the extension see every line.
    cfg.telemetry_buffer_items = 1_000_000;
    cfg.telemetry_buffer_bytes = 512 * 1024 * 1024;
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    let name = subject.name();
    let pid = env
        .observations()
        .iter()
        .find_map(|o| match &o.what {
            Observation::Spawned { process, pid } if *process == name => Some(*pid),
            _ => None,
        })
        .ok_or_else(|| format!("{name} was not started"))?;
    for _ in 0..5 {
        env.invoke(r#"{"log":["warm-up"]}"#).await.map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = status_kib(pid, "VmRSS").ok_or("cannot read the extension's VmRSS")? as f64 / 1024.0;
    let cpu_before = cpu_ticks(pid).ok_or("cannot read the extension's CPU time")?;
    let mut lines = 0u64;
    // 100 lines of 100 bytes per invocation, paced to the wanted rate.
    let per_invoke = 100;
    let invokes_per_second = (lines_per_second / per_invoke).max(1);
    let period = Duration::from_secs_f64(1.0 / invokes_per_second as f64);
    let event = format!(r#"{{"log_bytes":{}}}"#, per_invoke * 100);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut next = Instant::now();
    while Instant::now() < until {
        env.invoke(event.clone()).await.map_err(|e| e.to_string())?;
        lines += per_invoke;
        next += period;
        tokio::time::sleep_until(next.into()).await;
    }
    // Let the last batches reach the extension and be shipped before reading the clocks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let peak = status_kib(pid, "VmHWM").ok_or("cannot read the extension's VmHWM")? as f64 / 1024.0;
    let cpu_after = cpu_ticks(pid).ok_or("cannot read the extension's CPU time")?;
    env.shutdown().await;
    let ms = (cpu_after - cpu_before) as f64 / 1e6;
    Ok(Load { idle_mib: idle, peak_mib: peak, cpu_ms_per_1k_lines: ms * 1000.0 / lines.max(1) as f64 })
}

/// CPU time of `pid` in nanoseconds, summed over its threads (the scheduler's own
/// account in /proc/<pid>/task/*/schedstat: finer than utime/stime's 10 ms ticks).
fn cpu_ticks(pid: i32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
}
