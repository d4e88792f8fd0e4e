//! `cargo xtask demo [--invocations N]`: builds tandem, tandem-emulator, the demo
//! function and the harness in release, then runs the demo (see
//! benches/harness/src/demo.rs): the emulator runs a real function with the tandem
//! extension, which delivers to a file and to an OTLP receiver; a summary follows.

use crate::util::{self, Failure, Result};

/// The release binaries the demo and the benchmarks run.
pub const PACKAGES: &[&str] =
    &["tandem", "tandem-lambda-emulator", "example-functions", "baseline-extension", "tandem-harness"];

pub fn build_release() -> Result<()> {
    let mut cargo = util::cargo();
    cargo.current_dir(util::workspace_root()).args(["build", "--release", "--bins"]);
    for p in PACKAGES {
        cargo.args(["-p", p]);
    }
    util::run_status(&mut cargo, "cargo build --release")
}

pub fn run(args: &[String]) -> Result<()> {
    let mut harness_args = vec!["demo".to_owned()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--invocations" => match it.next() {
                Some(n) => harness_args.extend(["--invocations".to_owned(), n.clone()]),
                None => return Err(Failure::usage("--invocations takes a number")),
            },
            other => return Err(Failure::usage(format!("unknown demo argument `{other}`"))),
        }
    }
    build_release()?;
    let harness = util::target_dir().join("release").join("tandem-harness");
    util::run_status(
        std::process::Command::new(harness).current_dir(util::workspace_root()).args(&harness_args),
        "the demo",
    )
}
