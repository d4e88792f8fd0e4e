//! soak: `cargo xtask soak [--minutes N]`. One long-running environment in the
//! emulator: the Python function (awslambdaric, examples/functions/python) with the
//! `tandem` extension delivering to a file, to an HTTP receiver and to an OTLP
//! receiver; the two receivers inject faults on a seeded schedule (`faults.rs`), and
//! the run adds process faults: kill -9 of `tandem` between and during invocations,
//! function timeouts, crashes and, when the emulator enforces a memory limit, OOM kills.
//!
//! Every log line the function writes carries a unique id (`sk<invocation>x<line>`).
//! At the end, per sink: lines produced, unique lines delivered, duplicates, lines
//! found only in the stdout last resort, and lines lost with their cause, which comes
//! from what the emulator saw: whether `tandem` acknowledged the line (its telemetry
//! deliveries) and whether the instance that held it ended by our kill -9. tandem
//! promises every line it acknowledged, kill -9 or not (its write-ahead copies a batch
//! to the spool before the acknowledgement); a line the platform had not yet handed to
//! an instance we killed is lost as on Lambda, and is listed but not a failure. The
//! run fails when a promised line is lost. Also tandem's peak RSS and the p50/p99
//! `extensionOverhead` per invocation. `lost.ndjson` and `kills.ndjson` in the output
//! directory list every lost line (with the acknowledgements and the refused attempts
//! to send it) and every kill.

use crate::faults::{Receiver, Rng};
use crate::stats::Samples;
use crate::Bins;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem::pipeline::UNDELIVERED_KEY;
use tandem_emulator::{Config, Environment, Observation};
use tandem_wire::telemetry::Record;

/// The extension's name in the environment (its file name).
const TANDEM: &str = "tandem";
const SINKS: [&str; 3] = ["file", "http", "otlp"];
/// The function's timeout: short, so that timeouts are cheap.
const TIMEOUT: Duration = Duration::from_secs(2);
const MEMORY_MB: u64 = 256;
/// How long after its invocation a line may still be acknowledged by tandem (the
/// platform's batching and a reset's re-delivery), to tie a kill -9 to it.
const ACK_WINDOW_MS: u64 = 3_000;

pub struct Options {
    pub minutes: f64,
    pub seed: u64,
    pub out: PathBuf,
}

/// What one invocation of the schedule does besides logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Normal,
    Timeout,
    Crash,
    Oom,
    KillBetween,
    KillDuring,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        match rng.range(0, 99) {
            0..=2 => Plan::Timeout,
            3..=5 => Plan::Crash,
            6..=7 => Plan::Oom,
            8..=10 => Plan::KillBetween,
            11..=13 => Plan::KillDuring,
            _ => Plan::Normal,
        }
    }
}

/// Where one line went.
#[derive(Default)]
struct Fate {
    /// The start and end (epoch ms) of the invocation that wrote it.
    window: (u64, u64),
    /// When tandem acknowledged it (each delivery of it to tandem).
    acked: Vec<u64>,
    /// Copies per sink.
    delivered: [u32; 3],
    /// In the last resort, per sink.
    last_resort: [bool; 3],
}

/// A kill -9 we sent: the pid and when.
struct Kill {
    pid: i32,
    at_ms: u64,
}

pub async fn run(bins: &Bins, opts: &Options) -> Result<bool, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let out = root.join(&opts.out);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let records = out.join("records.ndjson");
    let python = root.join("target/venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing (run `cargo xtask setup`)", python.display()));
    }
    let http = Receiver::start(opts.seed ^ 0x4854_5450, ndjson_ids).await.map_err(|e| e.to_string())?;
    let otlp = Receiver::start(opts.seed ^ 0x4F54_4C50, otlp_ids).await.map_err(|e| e.to_string())?;

    let mut cfg = Config::new(vec![root.join("examples/functions/python/bootstrap").to_string_lossy().into_owned()]);
    cfg.function_name = "soak-fn".into();
    cfg.handler = "handlers.handle".into();
    cfg.extensions.push(bins.need("tandem")?);
    cfg.timeout = TIMEOUT;
    cfg.memory_mb = MEMORY_MB;
    cfg.enforce_memory = true;
    cfg.record_bodies = true;
    let env_vars = [
        ("TANDEM_PYTHON", python.to_string_lossy().into_owned()),
        ("TANDEM_SINKS", "file,http,otlp".to_owned()),
        ("TANDEM_FILE_PATH", records.to_string_lossy().into_owned()),
        ("TANDEM_HTTP_URL", format!("http://{}/ingest", http.addr)),
        ("TANDEM_SPOOL_DIR", out.join("spool").to_string_lossy().into_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", otlp.addr)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_SERVICE_NAME", "soak-fn".to_owned()),
        // The soak's receivers are its own; tandem's OTLP receiver would take 4317/4318.
        ("TANDEM_OTLP_RECEIVER", "off".to_owned()),
    ];
    cfg.env.extend(env_vars.iter().map(|(k, v)| (k.to_string(), v.clone())));

    println!("soak: seed {}, {} minute(s); output in {}", opts.seed, opts.minutes, out.display());
    let env = Arc::new(Environment::start(cfg).await.map_err(|e| e.to_string())?);
    if let Some((status, error)) = env.init_outcome() {
        if status != tandem_wire::Status::Success {
            return Err(format!("init failed: {status} {error:?}; console: {:?}", env.console_lines()));
        }
    }
    // Either way of measuring enforces the limit (the kernel's, or a kill of the
    // largest process past it), so OOM kills are always part of the schedule.
    println!("soak: memory limit {MEMORY_MB} MB enforced by {}", env.memory_method());

    let watcher = Watcher::start(env.clone());
    let mut rng = Rng::new(opts.seed);
    let mut fates: HashMap<String, Fate> = HashMap::new();
    let mut kills: Vec<Kill> = Vec::new();
    let mut plans: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs_f64(opts.minutes * 60.0);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let plan = Plan::draw(&mut rng);
        *plans.entry(plan_name(plan)).or_insert(0) += 1;
        let lines: Vec<String> = (0..rng.range(1, 8))
            .map(|i| format!("soak line sk{n:07}x{i:02} {}", "y".repeat(rng.range(0, 120) as usize)))
            .collect();
        let mut payload = serde_json::json!({ "log": lines, "sleep_ms": rng.range(0, 30) });
        match plan {
            Plan::Timeout => payload["sleep_ms"] = serde_json::json!(TIMEOUT.as_millis() as u64 + 500),
            Plan::Crash => payload["exit"] = serde_json::json!(3),
            Plan::Oom => payload["alloc_mb"] = serde_json::json!(MEMORY_MB * 2),
            Plan::KillDuring => payload["sleep_ms"] = serde_json::json!(rng.range(50, 400)),
            Plan::Normal | Plan::KillBetween => {}
        }
        if plan == Plan::KillBetween {
            kill_tandem(&env, &watcher, &mut kills);
        }
        let start = epoch_ms();
        let rx = env.invoke_detached(tandem_emulator::InvokeRequest {
            payload: payload.to_string().into(),
            ..Default::default()
        });
        if plan == Plan::KillDuring {
            tokio::time::sleep(Duration::from_millis(rng.range(10, 200))).await;
            kill_tandem(&env, &watcher, &mut kills);
        }
        let outcome = match rx.await {
            Ok(Ok(o)) => o.result.error_type.unwrap_or_else(|| "success".into()),
            Ok(Err(rejection)) => format!("rejected: {rejection:?}"),
            Err(_) => "the environment is gone".into(),
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        let end = epoch_ms();
        for line in &lines {
            if let Some(id) = find_id(line) {
                fates.insert(id, Fate { window: (start, end), ..Fate::default() });
            }
        }
        if n % 100 == 0 {
            println!("soak: {n} invocations, {} kill -9", kills.len());
        }
    }
    // The end of the environment: a spindown, as Lambda's. Faults go on: what tandem
    // cannot deliver by the deadline goes to the last resort.
    println!("soak: {n} invocations; shutting down");
    env.shutdown().await;
    let seen = watcher.stop().await;

    // Where every line went.
    let produced: HashSet<&String> = seen.console_ids.iter().collect();
    for (id, at) in &seen.acks {
        if let Some(f) = fates.get_mut(id) {
            f.acked.push(*at);
        }
    }
    let file_text = std::fs::read_to_string(&records).unwrap_or_default();
    let file_ids = ndjson_ids("/", file_text.as_bytes());
    for (sink, ids) in [(0usize, file_ids), (1, http.ids()), (2, otlp.ids())] {
        for id in ids {
            if let Some(f) = fates.get_mut(&id) {
                f.delivered[sink] += 1;
            }
        }
    }
    for (id, sinks) in &seen.last_resort {
        if let Some(f) = fates.get_mut(id) {
            for s in sinks {
                if let Some(i) = SINKS.iter().position(|k| k == s) {
                    f.last_resort[i] = true;
                }
            }
        }
    }

    println!();
    println!("soak: {n} invocations by plan: {plans:?}");
    println!("soak: outcomes: {outcomes:?}");
    println!("soak: kill -9 of tandem: {}", kills.len());
    println!("soak: http receiver: {}", http.counts());
    println!("soak: otlp receiver: {}", otlp.counts());
    let mut promised_lost = 0u64;
    // Every lost line, one JSON object a line, for a closer look.
    let mut lost_lines = String::new();
    let mut refused: [HashMap<String, Vec<&'static str>>; 3] = Default::default();
    for (i, r) in [(1, &http), (2, &otlp)] {
        for (id, why) in r.refused() {
            refused[i].entry(id).or_default().push(why);
        }
    }
    for (i, sink) in SINKS.iter().enumerate() {
        let mut delivered = 0u64;
        let mut duplicates = 0u64;
        let mut only_last_resort = 0u64;
        let mut lost: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut examples: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
        let mut count = 0u64;
        for (id, f) in &fates {
            if !produced.contains(id) {
                continue;
            }
            count += 1;
            if f.delivered[i] > 0 {
                delivered += 1;
                duplicates += u64::from(f.delivered[i] - 1);
            } else if f.last_resort[i] {
                only_last_resort += 1;
            } else {
                let cause = cause(f, &kills, &seen.tandem_pids);
                let line = serde_json::json!({
                    "id": id, "sink": sink, "cause": cause.text(), "invocation": f.window, "acked": f.acked,
                    "attempts_refused": refused[i].get(id.as_str()),
                });
                lost_lines.push_str(&line.to_string());
                lost_lines.push('\n');
                *lost.entry(cause.text()).or_insert(0) += 1;
                let ex = examples.entry(cause.text()).or_default();
                if ex.len() < 3 {
                    ex.push(id);
                }
                if cause.promised() {
                    promised_lost += 1;
                }
            }
        }
        let lost_total: u64 = lost.values().sum();
        println!(
            "soak: {sink}: produced {count}, delivered {delivered} unique, {duplicates} duplicates, {only_last_resort} only in the stdout last resort, lost {lost_total}"
        );
        for (cause, k) in &lost {
            println!("soak:   lost {k}: {cause} (e.g. {:?})", examples.get(cause).cloned().unwrap_or_default());
        }
    }
    let lost_path = out.join("lost.ndjson");
    std::fs::write(&lost_path, lost_lines).map_err(|e| format!("cannot write {}: {e}", lost_path.display()))?;
    let kills_text: String = kills.iter().map(|k| format!("{{\"pid\":{},\"at_ms\":{}}}\n", k.pid, k.at_ms)).collect();
    let kills_path = out.join("kills.ndjson");
    std::fs::write(&kills_path, kills_text).map_err(|e| format!("cannot write {}: {e}", kills_path.display()))?;
    let unproduced = fates.keys().filter(|id| !produced.contains(id)).count();
    if unproduced > 0 {
        println!("soak: {unproduced} line(s) never written (the invocation did not reach the handler: a reset or a refused invoke)");
    }
    let mut overheads = Vec::new();
    for e in env.platform_events() {
        if let Record::Report(r) = &e.record {
            for s in r.spans.iter().flatten().filter(|s| s.name == "extensionOverhead") {
                overheads.push(s.duration_ms);
            }
        }
    }
    let overheads = Samples::new(overheads);
    println!(
        "soak: tandem peak RSS {:.1} MiB (largest of {} instance(s)); added duration per invocation p50 {:.3} ms, p99 {:.3} ms",
        seen.peak_rss_kib as f64 / 1024.0,
        seen.tandem_pids.len(),
        overheads.median(),
        overheads.p99()
    );
    if promised_lost > 0 {
        println!("soak: FAILED: {promised_lost} line(s) lost where the design promises delivery");
    } else {
        println!("soak: no line lost where the design promises delivery");
    }
    Ok(promised_lost == 0)
}

/// Why a line did not reach a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// tandem acknowledged it, then the instance holding it was killed with -9: the
    /// write-ahead should have kept it in the spool for the next instance.
    KilledAfterAck,
    /// It never reached tandem: the instance it was meant for was killed with -9, and
    /// the platform's buffer for that subscription ended with it (as Lambda's does).
    KilledBeforeAck,
    /// tandem acknowledged it and was not killed: the promise is broken.
    AckedAndLost,
    /// It never reached tandem and no kill explains it.
    NeverAcked,
}

impl Cause {
    fn text(self) -> &'static str {
        match self {
            Cause::KilledAfterAck => "acknowledged by tandem, then kill -9: LOST (the write-ahead should have kept it)",
            Cause::KilledBeforeAck => "kill -9 before the platform delivered it to tandem",
            Cause::AckedAndLost => "acknowledged by tandem, no kill: LOST",
            Cause::NeverAcked => "never delivered to tandem, no kill: LOST",
        }
    }

    fn promised(self) -> bool {
        !matches!(self, Cause::KilledBeforeAck)
    }
}

fn cause(f: &Fate, kills: &[Kill], instances: &[(i32, u64)]) -> Cause {
    let killed = |pid: i32| kills.iter().any(|k| k.pid == pid);
    if f.acked.is_empty() {
        let (start, end) = f.window;
        return if kills.iter().any(|k| k.at_ms + 50 >= start && k.at_ms <= end + ACK_WINDOW_MS) {
            Cause::KilledBeforeAck
        } else {
            Cause::NeverAcked
        };
    }
    // Every instance that acknowledged it (the one alive at each acknowledgement) was
    // killed: kill -9; else one of them ended normally and still lost it.
    let holder = |at: u64| instances.iter().filter(|(_, started)| *started <= at).map(|(pid, _)| *pid).next_back();
    if f.acked.iter().all(|at| holder(*at).is_some_and(killed)) {
        Cause::KilledAfterAck
    } else {
        Cause::AckedAndLost
    }
}

fn plan_name(p: Plan) -> &'static str {
    match p {
        Plan::Normal => "normal",
        Plan::Timeout => "timeout",
        Plan::Crash => "crash",
        Plan::Oom => "oom",
        Plan::KillBetween => "kill -9 between",
        Plan::KillDuring => "kill -9 during",
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The soak id in a text (`sk` + 7 digits + `x` + 2 digits).
fn find_id(text: &str) -> Option<String> {
    find_ids(text).into_iter().next()
}

fn find_ids(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("sk").map(|i| i + from) {
        let id = bytes.get(i..i + 12);
        if let Some(id) = id {
            let ok =
                id[2..9].iter().all(u8::is_ascii_digit) && id[9] == b'x' && id[10..].iter().all(u8::is_ascii_digit);
            if ok {
                out.push(String::from_utf8_lossy(id).into_owned());
                from = i + 12;
                continue;
            }
        }
        from = i + 2;
    }
    out
}

/// The ids of the log records in NDJSON (the file sink's and the http sink's format).
fn ndjson_ids(_path: &str, body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        if v["type"] == "log" {
            if let Some(m) = v["message"].as_str() {
                out.extend(find_ids(m));
            }
        }
    }
    out
}

/// The ids in an OTLP/HTTP protobuf logs export, wherever a record carries them (its
/// body, or an attribute if a record were encoded otherwise): protobuf keeps strings
/// as they are, so the bytes are scanned once a decode proved them a logs export; one
/// per id and request.
fn otlp_ids(path: &str, body: &[u8]) -> Vec<String> {
    if path != "/v1/logs" || ExportLogsServiceRequest::decode(body).is_err() {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    find_ids(&String::from_utf8_lossy(body)).into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// Sends SIGKILL to the running tandem instance, if there is one.
fn kill_tandem(env: &Environment, watcher: &Watcher, kills: &mut Vec<Kill>) {
    let Some(pid) = current_tandem(env) else { return };
    watcher.sample(pid);
    // kill(1), not libc: the harness needs no unsafe code for one signal.
    // It may have exited since: that kill fails (quietly) and is not counted.
    let killed =
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).stderr(std::process::Stdio::null()).status();
    if killed.is_ok_and(|s| s.success()) {
        kills.push(Kill { pid, at_ms: epoch_ms() });
    }
}

/// The pid of the tandem process started last, unless it has exited.
fn current_tandem(env: &Environment) -> Option<i32> {
    let mut pid = None;
    for o in env.observations() {
        match o.what {
            Observation::Spawned { process, pid: p } if process == TANDEM => pid = Some(p),
            Observation::ProcessExited { process, .. } if process == TANDEM => pid = None,
            _ => {}
        }
    }
    pid
}

/// What the watcher gathered while the soak ran.
#[derive(Default)]
struct Seen {
    /// Ids written by the function (its console lines).
    console_ids: HashSet<String>,
    /// Ids in the stdout last resort, with the sinks that failed them.
    last_resort: HashMap<String, Vec<String>>,
    /// Every acknowledgement by tandem of a line: (id, epoch ms of the delivery).
    acks: Vec<(String, u64)>,
    /// tandem instances: (pid, epoch ms of the start), in order.
    tandem_pids: Vec<(i32, u64)>,
    peak_rss_kib: u64,
}

/// Polls the environment's bounded logs (console lines, telemetry deliveries) often
/// enough that nothing scrolls out, and samples tandem's peak RSS.
struct Watcher {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
    env: Arc<Environment>,
}

impl Watcher {
    fn start(env: Arc<Environment>) -> Watcher {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let (s, st, e) = (seen.clone(), stop.clone(), env.clone());
        let task = tokio::spawn(async move {
            let mut deliveries_seen: HashSet<(u64, u64, u32)> = HashSet::new();
            loop {
                poll(&e, &s, &mut deliveries_seen);
                tokio::select! {
                    () = st.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            poll(&e, &s, &mut deliveries_seen);
        });
        Watcher { seen, stop, task, env }
    }

    /// Reads the peak RSS of `pid` now (before it is killed).
    fn sample(&self, pid: i32) {
        if let Some(kib) = peak_rss_kib(pid) {
            if let Ok(mut s) = self.seen.lock() {
                s.peak_rss_kib = s.peak_rss_kib.max(kib);
            }
        }
    }

    async fn stop(self) -> Seen {
        self.env.flush_console().await;
        self.stop.notify_one();
        let _ = self.task.await;
        self.seen.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }
}

fn poll(env: &Environment, seen: &Mutex<Seen>, deliveries_seen: &mut HashSet<(u64, u64, u32)>) {
    let lines = env.console_lines();
    let deliveries = env.deliveries();
    let observations = env.observations();
    let Ok(mut s) = seen.lock() else { return };
    for line in &lines {
        if line.contains(UNDELIVERED_KEY) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let entry = &v[UNDELIVERED_KEY];
            let sinks: Vec<String> =
                entry["sinks"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect();
            if let Some(m) = entry["record"]["message"].as_str() {
                for id in find_ids(m) {
                    s.last_resort.entry(id).or_default().extend(sinks.iter().cloned());
                }
            }
        } else if let Some(id) = find_id(line) {
            s.console_ids.insert(id);
        }
    }
    for d in deliveries.iter().filter(|d| d.subscriber == TANDEM && d.delivered()) {
        if !deliveries_seen.insert((d.sent_ms, d.batch, d.attempt)) {
            continue;
        }
        for event in d.parsed() {
            if event["type"] == "function" {
                if let Some(text) = event["record"].as_str() {
                    for id in find_ids(text) {
                        s.acks.push((id, d.sent_ms));
                    }
                }
            }
        }
    }
    let mut pids = Vec::new();
    for o in &observations {
        if let Observation::Spawned { process, pid } = &o.what {
            if process == TANDEM {
                pids.push((*pid, o.epoch_ms));
            }
        }
    }
    if pids.len() >= s.tandem_pids.len() {
        s.tandem_pids = pids;
    }
    if let Some(&(pid, _)) = s.tandem_pids.last() {
        if let Some(kib) = peak_rss_kib(pid) {
            s.peak_rss_kib = s.peak_rss_kib.max(kib);
        }
    }
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_wherever_they_are() {
        assert_eq!(find_ids("soak line sk0000012x03 yyy"), vec!["sk0000012x03".to_owned()]);
        assert_eq!(
            find_ids(r#"{"m":"sk0000001x00","n":"skip sk12 sk0000002x01"}"#),
            vec!["sk0000001x00", "sk0000002x01"]
        );
        assert!(find_ids("sk000001x0 sky").is_empty());
    }

    #[test]
    fn otlp_logs_exports_give_each_id_once() {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let text = |s: &str| Some(AnyValue { value: Some(any_value::Value::StringValue(s.into())) });
        let record = LogRecord {
            body: text("soak line sk0000003x01"),
            attributes: vec![KeyValue { key: "line".into(), value: text("sk0000003x01 again"), ..KeyValue::default() }],
            ..LogRecord::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: vec![record], ..ScopeLogs::default() }],
                ..ResourceLogs::default()
            }],
        };
        let body = request.encode_to_vec();
        assert_eq!(otlp_ids("/v1/logs", &body), vec!["sk0000003x01".to_owned()]);
        assert!(otlp_ids("/v1/traces", &body).is_empty());
        assert!(otlp_ids("/v1/logs", b"\xff\xff sk0000003x01").is_empty());
    }

    #[test]
    fn ndjson_log_records_give_their_ids() {
        let body = b"{\"type\":\"log\",\"message\":\"soak line sk0000001x00\"}\n{\"type\":\"invocation\",\"requestId\":\"sk0000001x01\"}\nnot json\n";
        assert_eq!(ndjson_ids("/", body), vec!["sk0000001x00".to_owned()]);
    }

    #[test]
    fn a_loss_is_blamed_on_a_kill_only_when_one_explains_it() {
        let kills = [Kill { pid: 7, at_ms: 1_000 }];
        let instances = [(7, 0), (8, 1_100)];
        let acked_by_killed = Fate { window: (900, 950), acked: vec![960], ..Fate::default() };
        assert_eq!(cause(&acked_by_killed, &kills, &instances), Cause::KilledAfterAck);
        let acked_by_survivor = Fate { window: (1_200, 1_250), acked: vec![1_260], ..Fate::default() };
        assert_eq!(cause(&acked_by_survivor, &kills, &instances), Cause::AckedAndLost);
        let never_near_kill = Fate { window: (900, 980), ..Fate::default() };
        assert_eq!(cause(&never_near_kill, &kills, &instances), Cause::KilledBeforeAck);
        let never_far_from_kill = Fate { window: (9_000, 9_100), ..Fate::default() };
        assert_eq!(cause(&never_far_from_kill, &kills, &instances), Cause::NeverAcked);
        assert!(Cause::NeverAcked.promised() && Cause::KilledAfterAck.promised());
        assert!(!Cause::KilledBeforeAck.promised());
    }
}
