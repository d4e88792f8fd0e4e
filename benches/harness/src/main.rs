//! `tandem-harness`: the demo and the benchmarks, run by `cargo xtask demo` and
//! `cargo xtask bench` after they built everything in release.

mod bench;
mod demo;
mod extension;
mod faults;
mod guard_bench;
mod minimal_server;
mod otlp_receiver;
mod receiver_bench;
mod roundtrip;
mod secrets_bench;
mod sink_server;
mod soak;
mod stats;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;

/// Where the release binaries are.
pub struct Bins {
    pub dir: PathBuf,
    pub noop_runtime: PathBuf,
}

impl Bins {
    fn from_dir(dir: PathBuf) -> Result<Self, String> {
        let need = |name: &str| {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(format!("{} is missing (build it in release first; `cargo xtask bench` does)", p.display()))
            }
        };
        Ok(Bins { noop_runtime: need("noop-runtime")?, dir })
    }

    /// A release binary by name, with a clear error when it was not built.
    pub fn need(&self, name: &str) -> Result<PathBuf, String> {
        let p = self.dir.join(name);
        if p.exists() {
            Ok(p)
        } else {
            Err(format!("{} is missing (build it in release first)", p.display()))
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bins_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default();
    let bins = match Bins::from_dir(bins_dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tandem-harness: {e}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        Some("demo") => {
            let n = match flag(&args, "--invocations").map(|v| v.parse::<u64>()) {
                None => 300,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    eprintln!("tandem-harness: --invocations takes a positive number");
                    return ExitCode::from(2);
                }
            };
            let out = flag(&args, "--out").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/demo"));
            match demo::run(&bins, n, &out).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tandem-harness: demo failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some("bench") => {
            let out = flag(&args, "--out").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/bench"));
            let quick = args.iter().any(|a| a == "--quick");
            let only = flag(&args, "--only");
            match bench::run(&bins, &out, bench::Options { quick, only }).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tandem-harness: bench failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some("throughput") => match throughput::rows(args.iter().any(|a| a == "--quick")) {
            Ok(rows) => {
                for r in rows {
                    println!("{}: {:.1} {} (baseline {:?})", r.metric, r.tandem, r.unit, r.baseline.map(|b| b.round()));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tandem-harness: {e}");
                ExitCode::from(1)
            }
        },
        Some("roundtrip") => {
            let n = 3000;
            for (name, r) in [
                ("emulator, freeze", roundtrip::emulator(&bins, n, true).await),
                ("emulator, no freeze", roundtrip::emulator(&bins, n, false).await),
                ("minimal server", roundtrip::minimal(&bins, n).await),
            ] {
                match r {
                    Ok(f) => println!(
                        "{name}: p50 {:.3} ms p99 {:.3} ms, {:.0} invokes/s",
                        f.latency.median(),
                        f.latency.p99(),
                        f.per_second
                    ),
                    Err(e) => println!("{name}: failed: {e}"),
                }
            }
            ExitCode::SUCCESS
        }
        Some("soak") => {
            let minutes = match flag(&args, "--minutes").map(|v| v.parse::<f64>()) {
                None => 2.0,
                Some(Ok(m)) if m > 0.0 && m.is_finite() => m,
                Some(_) => {
                    eprintln!("tandem-harness: --minutes takes a positive number");
                    return ExitCode::from(2);
                }
            };
            let seed = match flag(&args, "--seed").map(|v| v.parse::<u64>()) {
                None => 14,
                Some(Ok(s)) => s,
                Some(Err(_)) => {
                    eprintln!("tandem-harness: --seed takes a number");
                    return ExitCode::from(2);
                }
            };
            let out = flag(&args, "--out").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/soak"));
            match soak::run(&bins, &soak::Options { minutes, seed, out }).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tandem-harness: soak failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            eprintln!("usage: tandem-harness <demo [--invocations N] [--out DIR] | bench [--quick] [--only billed|guard|secrets|receiver|init] [--out DIR] | throughput [--quick] | roundtrip | soak [--minutes N] [--seed S] [--out DIR]>");
            ExitCode::from(2)
        }
    }
}
