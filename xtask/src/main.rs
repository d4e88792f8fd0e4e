//! `cargo xtask`: the project's developer commands (`cargo xtask help`).
//! Each command lives in its own module; this file only dispatches.

mod bench;
mod demo;
mod deploy;
mod fuzz;
mod layer;
mod new_extension;
mod setup;
mod soak;
mod template_check;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup                  install what the tests need (Python venv with awslambdaric, curl, bash, cargo-nextest)
  demo [--invocations N] build in release and run the demo: the emulator runs a real function with
                         the tandem extension delivering to a file and an OTLP receiver
  test [nextest args]    setup, build every binary of the workspace, then `cargo nextest run --workspace [args]`
  bench [--quick]        build in release and run the benchmarks (tandem vs a lambda-extension
                         baseline, the emulator vs a minimal server): target/bench/results.{md,json}
  layer [--arch x86_64|arm64|all] [--libc gnu|musl] [--smoke]
                         build the tandem layer zips (target/layer/tandem-<arch>.zip);
                         --smoke runs each in the emulator (arm64 under qemu)
  new-extension NAME [--logs|--telemetry] [--dir PATH] [--bin-name BIN] [--render-var KEY=VALUE]...
                         generate an extension project on tandem-sdk from templates/extension (what
                         `cargo lambda new NAME --extension --template templates/extension` does)
  template-check         generate both flavours of templates/extension with cargo-lambda and with
                         new-extension (the same files), build each layer and run its test
  fuzz [--time S] [--target NAME]
                         run the cargo-fuzz targets of fuzz/ (nightly), S seconds each (default 60),
                         from the checked-in seed corpus; a crash fails and leaves its input in fuzz/artifacts/
  soak [--minutes N] [--seed S]
                         build in release and run the no-loss soak (default 2 minutes): tandem delivering
                         to a file and to faulty http/otlp receivers, with kill -9, timeouts, crashes, OOMs
  check-deploy           validate deploy/ (cfn-lint on the SAM template; terraform fmt, and
                         terraform validate when its providers can be installed)
  help                   this text";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("setup") => setup::run(&rest),
        Some("test") => test::run(&rest),
        Some("layer") => layer::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("soak") => soak::run(&rest),
        Some("check-deploy") => deploy::run(&rest),
        Some("new-extension") => new_extension::run(&rest),
        Some("template-check") => template_check::run(&rest),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(util::Failure::usage(format!("unknown command `{other}`\n\n{USAGE}"))),
        None => Err(util::Failure::usage(USAGE.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("xtask: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
