//! `cargo xtask soak [--minutes N] [--seed S]`: builds in release (as `demo` and
//! `bench` do), makes sure the Python venv with awslambdaric exists, then runs the soak
//! (benches/harness/src/soak.rs): the Python function with tandem delivering to a file
//! and to faulty HTTP and OTLP receivers, with kill -9s, timeouts, crashes and OOM
//! kills, for N minutes (default 2). Fails when a line is lost where the design
//! promises delivery. Output in target/soak.

use crate::util::{self, Failure, Result};

pub fn run(args: &[String]) -> Result<()> {
    let mut harness_args = vec!["soak".to_owned()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--minutes" | "--seed" => match it.next() {
                Some(v) => harness_args.extend([a.clone(), v.clone()]),
                None => return Err(Failure::usage(format!("{a} takes a number"))),
            },
            other => return Err(Failure::usage(format!("unknown soak argument `{other}`"))),
        }
    }
    crate::setup::ensure_venv_python()?;
    crate::demo::build_release()?;
    let harness = util::target_dir().join("release").join("tandem-harness");
    util::run_status(
        std::process::Command::new(harness).current_dir(util::workspace_root()).args(&harness_args),
        "the soak",
    )
}
