//! bench: `cargo xtask bench`. Measures tandem next to the baseline extension (on the
//! `lambda-extension` crate) in the same run and the same emulator, and the emulator
//! next to a minimal Runtime API server; writes `target/bench/results.md` (a table with
//! medians, p99s and ratios) and `target/bench/results.json`, stating the machine.

use crate::extension::{self, Subject};
use crate::stats::Samples;
use crate::throughput::{self, PlainRow};
use crate::{roundtrip, Bins};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;

/// One line of the results.
struct Row {
    metric: String,
    unit: &'static str,
    tandem: String,
    baseline: String,
    /// tandem / baseline (of the medians), when both exist.
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
    json: serde_json::Value,
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn dist(s: &Samples) -> String {
    format!("{} (p99 {})", fmt(s.median()), fmt(s.p99()))
}

pub struct Options {
    pub quick: bool,
    /// Run only this group of rows (`billed`: the added billed time at 1 s and 15 s).
    pub only: Option<String>,
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
    let date = tandem_wire::time::format_rfc3339_millis(std::time::SystemTime::now());
    json!({ "cpu": cpu, "cores": cores, "memory_gib": (mem_gib * 10.0).round() / 10.0, "kernel": kernel, "date": date })
}

fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Extension init (exec to the first `next`) of tandem as it ships (secrets cache,
/// receiver and guard compiled in, with their defaults) next to the baseline.
/// Returns the row and the baseline's samples (other rows compare with them).
async fn init_row(
    bins: &Bins,
    tandem: &Subject,
    baseline: &Subject,
    runs: usize,
) -> Result<(Row, crate::stats::Samples), String> {
    eprintln!("bench: extension init overhead ({runs} cold starts each)");
    let t_init = extension::init_overhead(bins, tandem, runs).await?;
    let b_init = extension::init_overhead(bins, baseline, runs).await?;
    let row = Row {
        metric: "extension init: exec to first `next`".into(),
        unit: "ms",
        tandem: dist(&t_init),
        baseline: dist(&b_init),
        ratio: Some(t_init.median() / b_init.median()),
        target: "≤ 2 ms p50 and below the baseline".into(),
        met: Some(t_init.median() <= 2.0 && t_init.median() < b_init.median()),
        json: json!({"tandem": samples_json(&t_init), "baseline": samples_json(&b_init)}),
    };
    Ok((row, b_init))
}

pub async fn run(bins: &Bins, out_dir: &Path, opts: Options) -> Result<bool, String> {
    // Extensions run in the function's directory: every path they get is absolute.
    let out_dir = &std::env::current_dir().map_err(|e| e.to_string())?.join(out_dir);
    std::fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let scratch = out_dir.join("scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let (sink_addr, _) = crate::sink_server::start().await.map_err(|e| format!("cannot start the HTTP sink: {e}"))?;
    // What is measured is what ships: the x86_64 layer's binary when `cargo xtask layer`
    // built it (cargo-lambda, glibc), else the host's release build of the same code.
    let layer_bin = bins.dir.parent().map(|t| t.join("lambda/x86_64/extensions/tandem")).unwrap_or_default();
    let tandem_bin = if layer_bin.exists() { layer_bin } else { bins.need("tandem")? };
    let tandem_with = |flush: &str| Subject {
        binary: tandem_bin.clone(),
        env: vec![
            ("TANDEM_SINKS".into(), "http".into()),
            ("TANDEM_HTTP_URL".into(), format!("http://{sink_addr}/logs")),
            ("TANDEM_FLUSH".into(), flush.into()),
            ("TANDEM_SPOOL_DIR".into(), scratch.join("spool").to_string_lossy().into_owned()),
        ],
    };
    bins.need("tandem")?;
    let baseline = Subject {
        binary: bins.need("baseline-extension")?,
        env: vec![("BASELINE_OUT".into(), scratch.join("baseline.ndjson").to_string_lossy().into_owned())],
    };
    let demo_fn = bins.need("demo-fn")?;
    let (init_runs, invokes, rss_secs, rt_n) = if opts.quick { (10, 100, 2, 1000) } else { (40, 500, 5, 3000) };
    let mut rows = Vec::new();

    // tandem as a user gets it: the default (adaptive) flush and delay bound.
    let tandem_default = Subject {
        env: tandem_with("").env.into_iter().filter(|(k, _)| k != "TANDEM_FLUSH").collect(),
        ..tandem_with("")
    };
    match opts.only.as_deref() {
        None => {}
        Some("billed") => {
            rows.extend(billed_rows(&demo_fn, &tandem_default, &baseline, opts.quick).await?);
            return report(&rows, bins, &tandem_bin, out_dir, &scratch);
        }
        Some("guard") => {
            rows.extend(crate::guard_bench::rows(&tandem_bin, &scratch, opts.quick).await?.into_iter().map(Row::from));
            return report(&rows, bins, &tandem_bin, out_dir, &scratch);
        }
        Some("secrets") => {
            let secrets = crate::secrets_bench::rows(bins, &tandem_bin, &scratch, opts.quick).await?;
            rows.extend(secrets.into_iter().map(Row::from));
            return report(&rows, bins, &tandem_bin, out_dir, &scratch);
        }
        Some("receiver") => {
            let receiver = crate::receiver_bench::rows(bins, &tandem_bin, &scratch, opts.quick).await?;
            rows.extend(receiver.into_iter().map(Row::from));
            return report(&rows, bins, &tandem_bin, out_dir, &scratch);
        }
        Some("init") => {
            rows.push(init_row(bins, &tandem_with("adaptive"), &baseline, init_runs).await?.0);
            return report(&rows, bins, &tandem_bin, out_dir, &scratch);
        }
        Some(other) => return Err(format!("unknown group of rows `{other}` (billed, guard, secrets, receiver, init)")),
    }

    let (row, b_init) = init_row(bins, &tandem_with("adaptive"), &baseline, init_runs).await?;
    rows.push(row);

    let event = r#"{"order":7}"#;
    eprintln!("bench: post-runtime extension duration ({invokes} invocations each)");
    let b_over = extension::post_runtime(&demo_fn, &baseline, invokes, event).await?;
    for (flush, target) in [("adaptive", Some(0.15)), ("end", None)] {
        let t_over = extension::post_runtime(&demo_fn, &tandem_with(flush), invokes, event).await?;
        rows.push(Row {
            metric: format!("post-runtime duration per invoke, `{flush}` flush to a local HTTP sink"),
            unit: "ms",
            tandem: dist(&t_over),
            baseline: dist(&b_over),
            ratio: Some(t_over.median() / b_over.median()),
            target: target.map_or("— (flushes before `next` by design)".into(), |t| format!("≤ {t} ms p50")),
            met: target.map(|t| t_over.median() <= t),
            json: json!({"flush": flush, "tandem": samples_json(&t_over), "baseline": samples_json(&b_over)}),
        });
    }

    rows.extend(billed_rows(&demo_fn, &tandem_default, &baseline, opts.quick).await?);

    eprintln!("bench: memory and CPU (idle, then {rss_secs} s at 10,000 log lines per second)");
    let t_load = extension::load(bins, &tandem_with("adaptive"), 10_000, rss_secs).await?;
    let b_load = extension::load(bins, &baseline, 10_000, rss_secs).await?;
    rows.push(Row {
        metric: "RSS idle".into(),
        unit: "MiB",
        tandem: fmt(t_load.idle_mib),
        baseline: fmt(b_load.idle_mib),
        ratio: Some(t_load.idle_mib / b_load.idle_mib),
        target: "≤ 6 MiB".into(),
        met: Some(t_load.idle_mib <= 6.0),
        json: json!({"tandem": t_load.idle_mib, "baseline": b_load.idle_mib}),
    });
    rows.push(Row {
        metric: "RSS peak at 10,000 lines/s".into(),
        unit: "MiB",
        tandem: fmt(t_load.peak_mib),
        baseline: fmt(b_load.peak_mib),
        ratio: Some(t_load.peak_mib / b_load.peak_mib),
        target: "≤ 24 MiB".into(),
        met: Some(t_load.peak_mib <= 24.0),
        json: json!({"tandem": t_load.peak_mib, "baseline": b_load.peak_mib}),
    });
    rows.push(Row {
        metric: "extension CPU per 1,000 log lines shipped (tandem: HTTP sink; baseline: file)".into(),
        unit: "ms",
        tandem: fmt(t_load.cpu_ms_per_1k_lines),
        baseline: fmt(b_load.cpu_ms_per_1k_lines),
        ratio: Some(t_load.cpu_ms_per_1k_lines / b_load.cpu_ms_per_1k_lines),
        target: "—".into(),
        met: None,
        json: json!({"tandem": t_load.cpu_ms_per_1k_lines, "baseline": b_load.cpu_ms_per_1k_lines}),
    });

    // The layer ships a static musl build: measure it too, when `cargo xtask layer` made it.
    let musl = bins.dir.parent().map(|t| t.join("x86_64-unknown-linux-musl/release/tandem")).unwrap_or_default();
    if musl.exists() {
        eprintln!("bench: the layer's static musl build");
        let subject = Subject { binary: musl.clone(), ..tandem_with("adaptive") };
        let m_init = extension::init_overhead(bins, &subject, init_runs).await?;
        let m_load = extension::load(bins, &subject, 10_000, rss_secs).await?;
        rows.push(Row {
            metric: "layer build (static musl): extension init, exec to first `next`".into(),
            unit: "ms",
            tandem: dist(&m_init),
            baseline: dist(&b_init),
            ratio: Some(m_init.median() / b_init.median()),
            target: "≤ 2 ms p50 and below the baseline".into(),
            met: Some(m_init.median() <= 2.0 && m_init.median() < b_init.median()),
            json: json!({"tandem_musl": samples_json(&m_init)}),
        });
        rows.push(Row {
            metric: "layer build (static musl): RSS idle / peak at 10,000 lines/s".into(),
            unit: "MiB",
            tandem: format!("{} / {}", fmt(m_load.idle_mib), fmt(m_load.peak_mib)),
            baseline: format!("{} / {}", fmt(b_load.idle_mib), fmt(b_load.peak_mib)),
            ratio: Some(m_load.idle_mib / b_load.idle_mib),
            target: "≤ 6 / ≤ 24 MiB".into(),
            met: Some(m_load.idle_mib <= 6.0 && m_load.peak_mib <= 24.0),
            json: json!({"idle": m_load.idle_mib, "peak": m_load.peak_mib}),
        });
        rows.push(Row {
            metric: "layer build (static musl): CPU per 1,000 log lines shipped".into(),
            unit: "ms",
            tandem: fmt(m_load.cpu_ms_per_1k_lines),
            baseline: fmt(b_load.cpu_ms_per_1k_lines),
            ratio: Some(m_load.cpu_ms_per_1k_lines / b_load.cpu_ms_per_1k_lines),
            target: "—".into(),
            met: None,
            json: json!({"tandem_musl": m_load.cpu_ms_per_1k_lines}),
        });
        if let Some(z) = size_of(&musl) {
            rows.push(Row {
                metric: "layer build (static musl): stripped binary, x86_64".into(),
                unit: "MiB",
                tandem: fmt(z as f64 / 1024.0 / 1024.0),
                baseline: "—".into(),
                ratio: None,
                target: "≤ 4 MiB".into(),
                met: Some(z as f64 / 1024.0 / 1024.0 <= 4.0),
                json: json!({"bytes": z}),
            });
        }
    }

    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    let t_size = size_of(&tandem_bin).unwrap_or(0);
    let b_size = size_of(&baseline.binary).unwrap_or(0);
    rows.push(Row {
        metric: "stripped binary, x86_64".into(),
        unit: "MiB",
        tandem: fmt(mib(t_size)),
        baseline: fmt(mib(b_size)),
        ratio: Some(t_size as f64 / b_size as f64),
        target: "≤ 4 MiB".into(),
        met: Some(mib(t_size) <= 4.0),
        json: json!({"tandem_bytes": t_size, "baseline_bytes": b_size}),
    });
    let layer = bins.dir.parent().map(|t| t.join("layer")).unwrap_or_default();
    for arch in ["x86_64", "arm64"] {
        if let Some(z) = size_of(&layer.join(format!("tandem-{arch}.zip"))) {
            rows.push(Row {
                metric: format!("layer zip, {arch}"),
                unit: "MiB",
                tandem: fmt(mib(z)),
                baseline: "—".into(),
                ratio: None,
                target: "—".into(),
                met: None,
                json: json!({"arch": arch, "bytes": z}),
            });
        }
    }

    eprintln!("bench: pipeline throughput (telemetry JSON in, OTLP protobuf out, one core)");
    for row in throughput::rows(opts.quick)? {
        rows.push(Row::from(row));
    }

    eprintln!("bench: emulator invoke round trip ({rt_n} invocations each)");
    let emu = roundtrip::emulator(bins, rt_n, true).await?;
    let emu_nf = roundtrip::emulator(bins, rt_n, false).await?;
    let min = roundtrip::minimal(bins, rt_n).await?;
    for (label, f) in [("freezing between invokes", &emu), ("without freezing", &emu_nf)] {
        rows.push(Row {
            metric: format!(
                "emulator invoke round trip, no-op runtime, {label} (baseline: minimal Runtime API server)"
            ),
            unit: "ms",
            tandem: dist(&f.latency),
            baseline: dist(&min.latency),
            ratio: Some(f.latency.median() / min.latency.median()),
            target: "≤ 0.3 ms p50".into(),
            met: Some(f.latency.median() <= 0.3),
            json: json!({"emulator": samples_json(&f.latency), "minimal": samples_json(&min.latency)}),
        });
        rows.push(Row {
            metric: format!("emulator invokes per second, {label}"),
            unit: "1/s",
            tandem: fmt(f.per_second),
            baseline: fmt(min.per_second),
            ratio: Some(f.per_second / min.per_second),
            target: "≥ 3,000".into(),
            met: Some(f.per_second >= 3000.0),
            json: json!({"emulator": f.per_second, "minimal": min.per_second}),
        });
    }

    rows.extend(crate::guard_bench::rows(&tandem_bin, &scratch, opts.quick).await?.into_iter().map(Row::from));
    rows.extend(crate::secrets_bench::rows(bins, &tandem_bin, &scratch, opts.quick).await?.into_iter().map(Row::from));
    rows.extend(crate::receiver_bench::rows(bins, &tandem_bin, &scratch, opts.quick).await?.into_iter().map(Row::from));
    report(&rows, bins, &tandem_bin, out_dir, &scratch)
}

/// The added billed time per invocation (the post-runtime `extensionOverhead`, cold
/// start included) of tandem with its defaults and of the baseline, measured side by
/// side in two environments, with invocations 1 s and 15 s apart and the environment
/// frozen in between, as Lambda runs a function with light traffic.
async fn billed_rows(function: &Path, tandem: &Subject, baseline: &Subject, quick: bool) -> Result<Vec<Row>, String> {
    let event = r#"{"order":7}"#;
    let mut rows = Vec::new();
    for (gap_s, n) in if quick { [(1, 6), (15, 3)] } else { [(1, 12), (15, 6)] } {
        eprintln!("bench: added billed time, {n} invocations {gap_s} s apart (about {} s)", gap_s * (n - 1));
        let gap = std::time::Duration::from_secs(gap_s);
        let (t, b) = tokio::join!(
            extension::post_runtime_paced(function, tandem, 0, n as usize, gap, event),
            extension::post_runtime_paced(function, baseline, 0, n as usize, gap, event)
        );
        let (t, b) = (t?, b?);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (tm, bm) = (mean(&t), mean(&b));
        rows.push(Row {
            metric: format!(
                "added billed time per invocation (post-runtime, cold start included), `adaptive` defaults, {n} invocations {gap_s} s apart: mean, median (max)"
            ),
            unit: "ms",
            tandem: format!("{}, {}", fmt(tm), dist_max(&t)),
            baseline: format!("{}, {}", fmt(bm), dist_max(&b)),
            ratio: None,
            target: "≤ 1 ms mean (below the 60 s delay bound: never waits for runtimeDone)".into(),
            met: Some(tm <= 1.0),
            json: json!({"gap_s": gap_s, "tandem_ms": t, "baseline_ms": b, "tandem_mean": tm, "baseline_mean": bm}),
        });
    }
    Ok(rows)
}

/// `median (max)` of a few samples.
fn dist_max(v: &[f64]) -> String {
    let s = Samples::new(v.to_vec());
    format!("{} (max {})", fmt(s.median()), fmt(s.pct(100.0)))
}

/// Writes `results.md` and `results.json` and prints the table; true when every target is met.
fn report(rows: &[Row], bins: &Bins, tandem_bin: &Path, out_dir: &Path, scratch: &Path) -> Result<bool, String> {
    let machine = machine();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured {} on {} ({} cores, {} GiB, Linux {}), release builds, by `cargo xtask bench`.\n",
        machine["date"].as_str().unwrap_or_default().get(..10).unwrap_or_default(),
        machine["cpu"].as_str().unwrap_or_default(),
        machine["cores"],
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or_default()
    );
    let _ = writeln!(md, "| metric | unit | tandem: median (p99) | baseline: median (p99) | ratio | target | met |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = r.ratio.filter(|x| x.is_finite()).map_or("—".into(), |x| format!("{x:.2}×"));
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.metric, r.unit, r.tandem, r.baseline, ratio, r.target, met
        );
    }
    let _ = writeln!(
        md,
        "\ntandem: `{}`.",
        tandem_bin
            .strip_prefix(bins.dir.parent().and_then(|t| t.parent()).unwrap_or(Path::new("")))
            .unwrap_or(tandem_bin)
            .display()
    );
    let _ = writeln!(
        md,
        "Baseline: `benches/baseline-extension`, an extension on the `lambda-extension` crate that writes every telemetry record to a file, run in the same emulator; for the round trip, a minimal hyper Runtime API server with the same no-op runtime."
    );
    let results = json!({
        "machine": machine,
        "rows": rows.iter().map(|r| json!({"metric": r.metric, "unit": r.unit, "tandem": r.tandem, "baseline": r.baseline, "ratio": r.ratio, "target": r.target, "met": r.met, "data": r.json})).collect::<Vec<_>>(),
    });
    std::fs::write(out_dir.join("results.md"), &md).map_err(|e| format!("cannot write results.md: {e}"))?;
    std::fs::write(out_dir.join("results.json"), serde_json::to_vec_pretty(&results).unwrap_or_default())
        .map_err(|e| format!("cannot write results.json: {e}"))?;
    println!("{md}");
    println!("bench: wrote {} and {}", out_dir.join("results.md").display(), out_dir.join("results.json").display());
    let _ = std::fs::remove_dir_all(scratch);
    Ok(rows.iter().all(|r| r.met != Some(false)))
}

fn samples_json(s: &Samples) -> serde_json::Value {
    json!({"median": s.median(), "p99": s.p99()})
}

impl From<PlainRow> for Row {
    fn from(p: PlainRow) -> Row {
        Row {
            metric: p.metric,
            unit: p.unit,
            tandem: fmt(p.tandem),
            baseline: p.baseline.map_or("—".into(), fmt),
            ratio: p.baseline.map(|b| p.tandem / b),
            target: p.target.map_or("—".into(), |t| format!("≥ {}", fmt(t))),
            met: p.target.map(|t| p.tandem >= t),
            json: p.json,
        }
    }
}
