//! guard_bench: the guard's rows of `cargo xtask bench`. What a scan interval cannot
//! see (the share of short-lived processes of 1, 10 and 100 ms that no scan catches at
//! the default interval, in the emulator with the Python guard function running them
//! one after the other) and what scanning costs (CPU per second of scanning at the
//! default interval with 1, 10 and 50 processes in scope: the scan as the guard runs
//! it, in steady state, on this process's own children, one of them holding a TCP
//! connection as the runtime does, so the socket tables are read; on a build host they
//! list the whole namespace's sockets, so these are upper bounds for a sandbox). Rows
//! for `bench` to report.

use crate::throughput::PlainRow;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tandem::guard::config::DEFAULT_INTERVAL_MS;
use tandem::guard::{engine::Engine, policy::Policy, scan, Mode};
use tandem_emulator::{Config, Environment};

/// The clock ticks per second of `/proc`'s CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// This process's CPU time so far (user + system), in ticks.
fn cpu_ticks() -> Result<u64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).ok_or("no comm in /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("a short /proc/self/stat");
    Ok(field(11)? + field(12)?)
}

/// Children that sleep until killed (dropped: killed and reaped); the first holds a
/// TCP connection to `peer` (as the runtime holds the Runtime API's), so a scan reads
/// the socket tables as it does in Lambda.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(n: usize, python: &Path, peer: std::net::SocketAddr) -> Result<Sleepers, String> {
        let mut s = Sleepers(Vec::with_capacity(n));
        let holder = format!(
            "import socket, time\ns = socket.create_connection(('{}', {}))\ntime.sleep(600)",
            peer.ip(),
            peer.port()
        );
        let spawned = Command::new(python).args(["-c", &holder]).spawn();
        s.0.push(spawned.map_err(|e| format!("cannot spawn {}: {e}", python.display()))?);
        for _ in 1..n {
            s.0.push(Command::new("/bin/sleep").arg("600").spawn().map_err(|e| format!("cannot spawn sleep: {e}"))?);
        }
        Ok(s)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One scan's cost with `n` processes in scope (this process's sleeping children),
/// over `scans` scans: (CPU ms, wall ms) per scan.
pub fn scan_cost(n: usize, scans: usize, python: &Path) -> Result<(f64, f64), String> {
    // Held until the measurement ends (the backlog keeps the connection established).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen: {e}"))?;
    let peer = listener.local_addr().map_err(|e| e.to_string())?;
    let _children = Sleepers::spawn(n, python, peer)?;
    let mut engine = Engine::new(Mode::Detect, Policy::default(), false, std::process::id(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The first scans read every process's details; the steady state does not.
        let (scope, reading) = scan::read(&engine);
        engine.judge(&scope, &reading);
        if scope.len() >= n && !reading.sockets.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{} processes in scope ({n} expected), or no socket held after 10 s", scope.len()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (cpu0, wall0) = (cpu_ticks()?, Instant::now());
    for _ in 0..scans {
        let (scope, reading) = scan::read(&engine);
        std::hint::black_box(engine.judge(&scope, &reading));
    }
    let cpu_ms = (cpu_ticks()? - cpu0) as f64 * 1000.0 / TICKS_PER_S / scans as f64;
    let wall_ms = wall0.elapsed().as_secs_f64() * 1000.0 / scans as f64;
    Ok((cpu_ms, wall_ms))
}

/// Runs `count` processes of `ms` each, one after the other, in one invocation of the
/// Python guard function under tandem (guard `detect`, default interval) and returns
/// how many the guard reported.
async fn seen_of(tandem: &Path, root: &Path, dir: &Path, ms: u64, count: u64) -> Result<u64, String> {
    let python = root.join("target/venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing (run `cargo xtask setup`)", python.display()));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let records = dir.join("records.ndjson");
    let mut cfg = Config::new(vec![root.join("examples/functions/python/bootstrap").to_string_lossy().into_owned()]);
    cfg.function_name = "guard-bench".into();
    cfg.handler = "guard_fn.handle".into();
    cfg.extensions.push(tandem.to_owned());
    cfg.timeout = Duration::from_secs(120);
    let env_vars = [
        ("TANDEM_PYTHON", python.display().to_string()),
        ("PYTHONPATH", root.join("crates/tandem/tests/py").display().to_string()),
        ("TMPDIR", dir.join("tmp").display().to_string()),
        ("TANDEM_SINKS", "file".to_owned()),
        ("TANDEM_FILE_PATH", records.display().to_string()),
        ("TANDEM_SPOOL_DIR", dir.join("spool").display().to_string()),
        ("TANDEM_GUARD", "detect".to_owned()),
        ("TANDEM_OTLP_RECEIVER", "off".to_owned()),
    ];
    cfg.env.extend(env_vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    let event = json!({"short": {"ms": ms, "count": count}, "start_delay_ms": 300});
    let out = env.invoke(event.to_string()).await.map_err(|e| e.to_string())?.result;
    env.shutdown().await;
    if out.status != tandem_wire::Status::Success {
        return Err(format!("the guard function failed: {out:?}"));
    }
    let text = std::fs::read_to_string(&records).unwrap_or_default();
    let prefix = format!("/bin/sleep {}", ms as f64 / 1000.0);
    let seen = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["attributes"]["security.rule"] == "exec.not_allowed")
        .filter(|r| r["attributes"]["process.command_line"].as_str().is_some_and(|c| c == prefix))
        .count();
    Ok(seen as u64)
}

/// The guard's rows: miss rates, then scan cost.
pub async fn rows(tandem: &Path, scratch: &Path, quick: bool) -> Result<Vec<PlainRow>, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let runs: [(u64, u64); 3] = if quick { [(1, 30), (10, 30), (100, 10)] } else { [(1, 200), (10, 200), (100, 60)] };
    for (ms, count) in runs {
        eprintln!("bench: guard miss rate, {count} processes of {ms} ms at the default interval");
        let dir: PathBuf = scratch.join(format!("guard-miss-{ms}"));
        let seen = seen_of(tandem, &root, &dir, ms, count).await?;
        let missed = 100.0 * (count - seen.min(count)) as f64 / count as f64;
        rows.push(PlainRow {
            metric: format!(
                "guard: short-lived processes missed, {ms} ms each, scans every {DEFAULT_INTERVAL_MS} ms (default) ({seen} of {count} seen)"
            ),
            unit: "%",
            tandem: missed,
            baseline: None,
            target: None,
            json: json!({"process_ms": ms, "count": count, "seen": seen, "interval_ms": DEFAULT_INTERVAL_MS}),
        });
    }
    let python = root.join("target/venv/bin/python");
    let scans = if quick { 100 } else { 500 };
    let per_second = 1000.0 / DEFAULT_INTERVAL_MS as f64;
    for n in [1usize, 10, 50] {
        eprintln!("bench: guard scan cost with {n} processes in scope ({scans} scans)");
        let (cpu_ms, wall_ms) = scan_cost(n, scans, &python)?;
        rows.push(PlainRow {
            metric: format!(
                "guard: CPU per second of scanning at the default interval ({DEFAULT_INTERVAL_MS} ms), {n} processes in scope (one holding a TCP connection: the socket tables read for a new socket and every tenth scan)"
            ),
            unit: "ms/s",
            tandem: cpu_ms * per_second,
            baseline: None,
            target: None,
            json: json!({"processes": n, "scans": scans, "cpu_ms_per_scan": cpu_ms, "wall_ms_per_scan": wall_ms}),
        });
    }
    Ok(rows)
}
