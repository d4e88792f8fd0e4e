//! cli: the `tandem-emulator` command: `serve` (environments behind the Invoke API, as
//! many as `--concurrency`, see `pool`) and `invoke` (init, N invocations of one event,
//! shutdown; for scripts).

use crate::config::{extensions_in, Config};
use crate::environment::Environment;
use crate::pool::{OnEvent, Pool, PoolConfig, PoolEvent};
use crate::telemetry::ConsoleOutput;
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "tandem-emulator",
    version,
    about = "A local AWS Lambda execution environment with the Runtime, Extensions, Telemetry and Logs APIs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the environment and accept invocations on the Invoke API until Ctrl-C.
    Serve(ServeArgs),
    /// Init, invoke N times with one event, shut down; responses go to stdout, logs to stderr.
    Invoke(InvokeArgs),
}

#[derive(Args, Debug)]
pub struct EnvArgs {
    /// The runtime: an executable path, or a command line (`python3 -m awslambdaric app.handler`).
    #[arg(long)]
    pub runtime: String,
    /// The handler (`_HANDLER`).
    #[arg(long, default_value = "")]
    pub handler: String,
    /// Start every executable in DIR as an external extension (like /opt/extensions).
    #[arg(long, value_name = "DIR")]
    pub extensions_dir: Option<PathBuf>,
    /// An external extension executable (repeatable).
    #[arg(long = "extension", value_name = "PATH")]
    pub extensions: Vec<PathBuf>,
    /// A layer (directory or layer .zip; repeatable), merged in order onto /opt as
    /// Lambda merges layers; its extensions/* are started.
    #[arg(long = "layer", value_name = "PATH")]
    pub layers: Vec<PathBuf>,
    /// The function's code (directory or .zip), on /var/task (LAMBDA_TASK_ROOT, the runtime's directory).
    #[arg(long, value_name = "PATH")]
    pub code: Option<PathBuf>,
    /// A private /tmp of this size; the default with --layer or --code is 512 (else the host's /tmp).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(512..=10240))]
    pub ephemeral_storage_mb: Option<u64>,
    /// A function environment variable (repeatable); extensions see it too.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, and the name in the Invoke API's path).
    #[arg(long, default_value = "function")]
    pub function_name: String,
    /// The function's memory in MB (128 to 10240): its limit and the REPORT's Memory Size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(128..=10240))]
    pub memory_mb: u64,
    /// Function timeout in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// Init limit in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub init_timeout: f64,
    /// Do not freeze the processes between invocations.
    #[arg(long)]
    pub no_freeze: bool,
    /// The region (`AWS_REGION`, `AWS_DEFAULT_REGION`).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The account id in the function's ARN and in the extensions' register answer.
    #[arg(long, default_value = "012345678912")]
    pub account_id: String,
    /// LAMBDA_TASK_ROOT and the runtime's working directory (default: /var/task with
    /// --code, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub task_root: Option<PathBuf>,
    /// Address of the Runtime API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub runtime_api: SocketAddr,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Where the Invoke API listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The most environments at once: when all are busy a new one starts (a cold start,
    /// with its own processes and /tmp), up to N; then requests queue (429 when full).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// Shut an environment down (SHUTDOWN spindown) once idle for S seconds (default: never).
    #[arg(long, value_name = "S")]
    pub idle_timeout: Option<f64>,
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The event: a file, or `-` for stdin (default `{}`).
    #[arg(long)]
    pub event: Option<String>,
    /// How many times to invoke.
    #[arg(short = 'n', long = "count", default_value_t = 1)]
    pub count: u32,
    /// Write the lifecycle timeline (one self-contained HTML page) to FILE at the end.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not K=V"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 900.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{what} must be between 0 and 900 seconds, not {v}"))
    }
}

impl EnvArgs {
    pub fn to_config(&self, console: ConsoleOutput) -> Result<Config, String> {
        let mut cfg = Config::new(Config::parse_runtime(&self.runtime)?);
        cfg.handler = self.handler.clone();
        cfg.function_name = self.function_name.clone();
        cfg.memory_mb = self.memory_mb;
        cfg.timeout = secs(self.timeout, "--timeout")?;
        cfg.init_timeout = secs(self.init_timeout, "--init-timeout")?;
        cfg.freeze = !self.no_freeze;
        cfg.region = self.region.clone();
        cfg.account_id = self.account_id.clone();
        // The current directory, as `python3 -m awslambdaric app.handler` expects (the
        // library's default, the runtime's directory, would be the interpreter's here).
        cfg.task_root = match (&self.task_root, &self.code) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(_)) => None,
            (None, None) => {
                Some(std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?)
            }
        };
        cfg.runtime_api = self.runtime_api;
        cfg.env = self.env.clone();
        cfg.console = console;
        // The CLI keeps no copy of delivered bodies: it may run for a long time.
        cfg.record_bodies = false;
        if let Some(dir) = &self.extensions_dir {
            cfg.extensions =
                extensions_in(dir).map_err(|e| format!("cannot read --extensions-dir {}: {e}", dir.display()))?;
        }
        cfg.extensions.extend(self.extensions.iter().cloned());
        cfg.layers = self.layers.clone();
        cfg.code = self.code.clone();
        let packaged = !cfg.layers.is_empty() || cfg.code.is_some();
        cfg.ephemeral_storage_mb = self.ephemeral_storage_mb.or(packaged.then_some(512));
        if cfg.extensions.len() > crate::lifecycle::MAX_EXTENSIONS {
            return Err(format!(
                "at most {} extensions can run, {} were given",
                crate::lifecycle::MAX_EXTENSIONS,
                cfg.extensions.len()
            ));
        }
        Ok(cfg)
    }
}

/// Runs the command line; the exit status says whether every invocation succeeded.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Invoke(args) => invoke(args).await,
        Command::Serve(args) => serve(args).await,
    }
}

fn describe(env: &Environment) -> String {
    let sandbox = env.config().sandbox().map(|s| format!(", in {}", s.describe())).unwrap_or_default();
    format!(
        "Runtime API on {}, memory {} MB measured by {}, freeze by {}{sandbox}",
        env.runtime_api(),
        env.config().memory_mb,
        env.memory_method(),
        if !env.config().freeze {
            "nothing (--no-freeze)"
        } else if env.freezes_with_cgroup() {
            "the cgroup freezer"
        } else {
            "SIGSTOP/SIGCONT"
        }
    )
}

/// In `serve` the console is stdout: a failed init's cause (the emulator's own notes,
/// such as a runtime that cannot be started) goes to stderr as well.
async fn init_failure_to_stderr(env: &Environment, who: &str) {
    let Some((status, error_type)) = env.init_outcome() else {
        return;
    };
    if status == tandem_wire::Status::Success {
        return;
    }
    env.flush_console().await;
    eprintln!("tandem-emulator: {who}the init failed: {}", error_type.as_deref().unwrap_or("unknown error"));
    for note in env.console_lines().iter().filter(|l| l.starts_with("tandem-emulator: ")) {
        eprintln!("{note}");
    }
}

async fn invoke(args: InvokeArgs) -> ExitCode {
    let cfg = match args.env.to_config(ConsoleOutput::Stderr) {
        // The timeline shows the log lines the subscribers received.
        Ok(c) => Config { record_bodies: args.timeline.is_some(), ..c },
        Err(e) => {
            eprintln!("tandem-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let event = match args.event.as_deref() {
        None => b"{}".to_vec(),
        Some("-") => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                eprintln!("tandem-emulator: cannot read the event from stdin: {e}");
                return ExitCode::from(2);
            }
            buf
        }
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("tandem-emulator: cannot read the event {path}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let env = match Environment::start(cfg).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tandem-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("tandem-emulator: {}", describe(&env));
    let mut failed = false;
    let event = bytes::Bytes::from(event);
    for _ in 0..args.count {
        match env.invoke(event.clone()).await {
            Ok(out) => {
                failed |= out.result.function_error.is_some();
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&out.result.payload);
                let _ = stdout.write_all(b"\n");
                let _ = stdout.flush();
            }
            Err(e) => {
                eprintln!("tandem-emulator: {e}");
                failed = true;
            }
        }
    }
    env.shutdown().await;
    if let Some(path) = &args.timeline {
        let title = format!("tandem-emulator: {} ({} invocation(s))", env.config().function_name, args.count);
        let page = crate::timeline::page(&title, &[crate::timeline::data(&env, "environment")], false);
        match std::fs::write(path, page) {
            Ok(()) => eprintln!("tandem-emulator: timeline written to {}", path.display()),
            Err(e) => {
                eprintln!("tandem-emulator: cannot write the timeline {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let mut cfg = match args.env.to_config(ConsoleOutput::Stdout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let concurrency = args.concurrency as usize;
    if concurrency > 1 {
        if cfg.runtime_api.port() != 0 {
            eprintln!("tandem-emulator: --runtime-api needs port 0 with --concurrency above 1 (one Runtime API per environment)");
            return ExitCode::from(2);
        }
        // Each environment has its own /tmp, as in Lambda.
        cfg.ephemeral_storage_mb = cfg.ephemeral_storage_mb.or(Some(512));
    }
    let idle_timeout = match args.idle_timeout.map(|s| secs(s, "--idle-timeout")).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tandem-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tandem-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let on_event: OnEvent = Arc::new(|event: PoolEvent<'_>| match event {
        PoolEvent::Started { id, env } => {
            eprintln!("tandem-emulator: {id} started (cold start): {}", describe(env));
            let (id, env) = (id.to_owned(), env.clone());
            tokio::spawn(async move { init_failure_to_stderr(&env, &format!("{id}: ")).await });
        }
        PoolEvent::IdleShutdown { id } => eprintln!("tandem-emulator: {id} idle: shutting it down (spindown)"),
    });
    let pool = Arc::new(Pool::new(cfg, PoolConfig { concurrency, idle_timeout }, Some(on_event)));
    if let Err(e) = pool.prewarm().await {
        eprintln!("tandem-emulator: {e}");
        return ExitCode::from(2);
    }
    let addr = listener.local_addr().unwrap_or(args.listen);
    eprintln!(
        "tandem-emulator: up to {concurrency} environment(s){}; invoke with: curl -XPOST http://{addr}/2015-03-31/functions/function/invocations -d '{{}}'",
        idle_timeout.map(|t| format!(", each shut down after {} s idle", t.as_secs_f64())).unwrap_or_default()
    );
    let server = tokio::spawn(crate::invoke_api::serve_pool(listener, pool.clone()));
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem-emulator: cannot watch SIGTERM: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("tandem-emulator: shutting down");
    server.abort();
    pool.shutdown().await;
    ExitCode::SUCCESS
}
