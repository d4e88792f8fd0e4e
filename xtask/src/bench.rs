//! `cargo xtask bench [--quick]`: builds everything in release (and the layer zips, to
//! report their sizes and to measure the static musl build that the layer ships), then
//! runs the benchmarks (benches/harness/src/bench.rs), which write
//! `target/bench/results.md` and `target/bench/results.json`. `--quick` runs fewer
//! repetitions (for a smoke check of the harness, not for figures).

use crate::layer::{self, Arch, Libc};
use crate::setup::Apt;
use crate::util::{self, Failure, Result};

pub fn run(args: &[String]) -> Result<()> {
    let mut harness_args = vec!["bench".to_owned()];
    for a in args {
        match a.as_str() {
            "--quick" => harness_args.push("--quick".into()),
            other => return Err(Failure::usage(format!("unknown bench argument `{other}`"))),
        }
    }
    crate::demo::build_release()?;
    let mut apt = Apt::default();
    for arch in [Arch::X86_64, Arch::Arm64] {
        layer::build(arch, Libc::Gnu, &mut apt)?;
    }
    // The static musl build, measured next to the layer's for the README's comparison.
    layer::build(Arch::X86_64, Libc::Musl, &mut apt)?;
    let harness = util::target_dir().join("release").join("tandem-harness");
    util::run_status(
        std::process::Command::new(harness).current_dir(util::workspace_root()).args(&harness_args),
        "the benchmarks",
    )
}
