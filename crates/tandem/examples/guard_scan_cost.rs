//! The CPU one scan of the guard costs with 1, 10 and 50 processes in its scope (the
//! scan as the guard runs it, in steady state: each process's details read once), on
//! this machine: `cargo run --release -p tandem --example guard_scan_cost`.
//! Figures for the README's Guard section; a measurement, so not a test.

fn main() {
    use tandem::guard::{engine::Engine, policy::Policy, scan, Mode};
    let cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    };
    let host = scan::stats().len();
    for n in [1usize, 10, 50] {
        let mut children: Vec<_> =
            (0..n).map(|_| std::process::Command::new("/bin/sleep").arg("30").spawn().expect("spawn sleep")).collect();
        let mut engine = Engine::new(Mode::Detect, Policy::default(), false, std::process::id(), 0);
        let (scope, reading) = scan::read(&engine);
        engine.judge(&scope, &reading);
        assert!(scope.len() >= n, "the children are in scope");
        let scans = 500;
        let (cpu0, wall0) = (cpu_ticks(), std::time::Instant::now());
        for _ in 0..scans {
            let (scope, reading) = scan::read(&engine);
            engine.judge(&scope, &reading);
        }
        let cpu_ms = (cpu_ticks() - cpu0) as f64 * 10.0 / scans as f64;
        let wall_ms = wall0.elapsed().as_secs_f64() * 1000.0 / scans as f64;
        println!("{n} processes in scope ({host} in /proc): {cpu_ms:.3} ms CPU, {wall_ms:.3} ms wall per scan");
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
