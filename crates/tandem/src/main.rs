//! `tandem`: the extension binary (`/opt/extensions/tandem`).
//!
//! - `tandem` runs the extension (started by Lambda, or by tandem-emulator);
//! - `tandem check-config` validates the configuration offline (the `TANDEM_*` and
//!   `OTEL_*` variables and the `TANDEM_CONFIG` file), prints what would be used and
//!   every problem on one line each; exit status 0 when clean, 1 otherwise;
//! - `tandem --version`, `tandem --help`.
//!
//! Arguments are parsed by hand (no argument-parsing crate: the binary stays small and
//! starts fast). One current-thread tokio runtime: the least memory and start-up cost,
//! and an extension's work is I/O-bound. A bad configuration never stops the
//! extension: it falls back (see `config`) and says why at init.

use std::process::ExitCode;
use std::sync::Arc;
use tandem::config::Config;

const HELP: &str = "\
tandem: an AWS Lambda extension that turns the function's telemetry into logs,
metrics and traces, and delivers them without loss.

Usage:
  tandem                 run the extension (Lambda starts it from /opt/extensions)
  tandem check-config    validate the configuration from the environment and
                         TANDEM_CONFIG; exit 0 when clean, 1 otherwise
  tandem wrap <cmd>...   (as AWS_LAMBDA_EXEC_WRAPPER) export TANDEM_SECRET_ENV's
                         values from the secrets cache, then exec <cmd>
  tandem --version       print the version
  tandem --help          print this help

Settings (environment variables, or keys of the TANDEM_CONFIG TOML file):
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => run(),
        ["check-config"] => check_config(),
        #[cfg(feature = "secrets")]
        ["wrap", ..] => {
            // Only returns when the runtime could not be started (the line says why).
            eprintln!("{}", tandem::secrets::wrap::run(&args[1..], |k| std::env::var(k).ok()));
            ExitCode::FAILURE
        }
        ["--version" | "-V" | "version"] => {
            println!("tandem {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["--help" | "-h" | "help"] | ["check-config", "--help" | "-h"] => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("tandem: unexpected arguments {other:?}\n\n{}", help());
            ExitCode::from(2)
        }
    }
}

fn help() -> String {
    let mut s = HELP.to_owned();
    for (key, what) in tandem::config::SETTINGS {
        s.push_str(&format!("  {key:<37} {what}\n"));
    }
    s
}

fn run() -> ExitCode {
    let (config, problems) = Config::load(|k| std::env::var(k).ok());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(r) => r,
        Err(e) => {
            tandem_sdk::log_line(format_args!("cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // The secrets cache listens before tandem registers, so the function's INIT finds it.
        #[cfg(feature = "secrets")]
        let _secrets = tandem::secrets::start(|k| std::env::var(k).ok());
        tandem::app::run(config, problems).await
    });
    // Never wait for a stuck task (a DNS lookup, a request) past SHUTDOWN's deadline.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tandem_sdk::log_line(format_args!("stopped: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn check_config() -> ExitCode {
    let (config, problems) = Config::load(|k| std::env::var(k).ok());
    let mut lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.extend(config.compile_rules().1.iter().map(ToString::to_string));
    lines.extend(tandem::delivery::Delivery::new(&config, Arc::default()).1);
    print!("{}", config.describe());
    #[cfg(feature = "secrets")]
    {
        let (secrets, secret_problems) = tandem::secrets::settings::Settings::from_env(|k| std::env::var(k).ok());
        print!("{}", secrets.describe());
        secrets.beyond_aws_caps().iter().for_each(|n| println!("note: {n}"));
        lines.extend(secret_problems);
    }
    if lines.is_empty() {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    for l in &lines {
        println!("problem: {l}");
    }
    println!("{} problem(s): tandem would run with the values shown above", lines.len());
    ExitCode::FAILURE
}
