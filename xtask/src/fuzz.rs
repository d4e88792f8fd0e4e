//! `cargo xtask fuzz [--time S] [--target NAME]`: runs the cargo-fuzz (libFuzzer)
//! targets of `fuzz/` on the nightly toolchain, each for S seconds (default 60), from
//! its seed corpus in `fuzz/corpus/<target>` (checked in) plus a working corpus in
//! `target/fuzz-corpus/<target>` that grows between runs. Prints, per target, the
//! executions, the coverage reached and whether it crashed; a crash leaves its input in
//! `fuzz/artifacts/<target>/` and fails the command (make it a regression test, then
//! fix it). cargo-fuzz is installed, pinned, when missing.

use crate::util::{self, Failure, Result};
use std::process::Command;

/// Pinned so every machine fuzzes with the same driver.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Every target of `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: [&str; 5] = ["wire_telemetry", "wire_requests", "tandem_pipeline", "tandem_config", "emulator_api"];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--time" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s > 0)
                    .ok_or_else(|| Failure::usage("--time takes a number of seconds"))?
            }
            "--target" => only = Some(it.next().cloned().ok_or_else(|| Failure::usage("--target takes a name"))?),
            other => return Err(Failure::usage(format!("fuzz: unknown argument `{other}`"))),
        }
    }
    if let Some(t) = &only {
        if !TARGETS.contains(&t.as_str()) {
            return Err(Failure::usage(format!("fuzz: no target `{t}` (targets: {})", TARGETS.join(", "))));
        }
    }
    ensure_tools()?;
    let root = util::workspace_root();
    let mut report = Vec::new();
    for target in TARGETS.iter().filter(|t| only.as_deref().is_none_or(|o| o == **t)) {
        let work = util::target_dir().join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&work).map_err(|e| Failure::new(format!("cannot create {}: {e}", work.display())))?;
        let seeds = root.join("fuzz").join("corpus").join(target);
        println!("fuzz: {target} for {seconds} s");
        let output = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", target, "--target-dir"])
            .arg(util::target_dir().join("fuzz"))
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .output()
            .map_err(|e| Failure::new(format!("cannot run cargo fuzz: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let execs = stat(&stderr, "stat::number_of_executed_units:");
        let coverage = last_cov(&stderr);
        report.push(format!(
            "{target}: {} executions, coverage {}, {}",
            execs.unwrap_or(0),
            coverage.unwrap_or(0),
            if output.status.success() { "no crash" } else { "CRASHED" }
        ));
        if !output.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
            for line in &report {
                println!("fuzz: {line}");
            }
            return Err(Failure::new(format!(
                "fuzz target {target} failed; its input is in fuzz/artifacts/{target}/ (reproduce with `cd fuzz && cargo +nightly fuzz run {target} <file>`)"
            )));
        }
    }
    for line in &report {
        println!("fuzz: {line}");
    }
    Ok(())
}

/// The nightly toolchain (for libFuzzer's sanitizer flags) and cargo-fuzz.
fn ensure_tools() -> Result<()> {
    let toolchains = util::probe("rustup", ["toolchain", "list"]).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        return Err(Failure::new("fuzzing needs the nightly toolchain (`rustup toolchain install nightly`)"));
    }
    let have = util::probe("cargo", ["fuzz", "--version"]).unwrap_or_default();
    if !have.contains(CARGO_FUZZ_VERSION) {
        println!("fuzz: cargo install cargo-fuzz {CARGO_FUZZ_VERSION}");
        util::run_status(
            Command::new("cargo").args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION]),
            "cargo install cargo-fuzz",
        )?;
    }
    Ok(())
}

/// The number after `key` in libFuzzer's final statistics.
fn stat(stderr: &str, key: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.trim().strip_prefix(key)).and_then(|v| v.trim().parse().ok())
}

/// The last `cov: N` libFuzzer printed (edges covered).
fn last_cov(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.split("cov: ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzers_final_statistics() {
        let stderr = "#2\tINITED cov: 12 ft: 13 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                      #1024\tpulse  cov: 340 ft: 900 corp: 40/2Kb lim: 12 exec/s: 512 rss: 40Mb\n\
                      Done 2048 runs in 2 second(s)\n\
                      stat::number_of_executed_units: 2048\n\
                      stat::peak_rss_mb:              41\n";
        assert_eq!(stat(stderr, "stat::number_of_executed_units:"), Some(2048));
        assert_eq!(last_cov(stderr), Some(340));
        assert_eq!(stat("", "stat::number_of_executed_units:"), None);
    }
}
